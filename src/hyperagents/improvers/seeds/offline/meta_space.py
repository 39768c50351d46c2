"""The task agent's search space: the parameters ``PARAM_SPACE`` declares for ``PARAMS``.

Each parameter is a float or int between bounds (optionally in log space), a bool, or a choice
among values; operators move in unit coordinates (``to_unit``/``from_unit``) and every value is
coerced back into the space (``clip``).
"""

from __future__ import annotations

import math
from typing import Any

from meta_source import round_sig


# Plain classes rather than dataclasses: every sandboxed process imports this module afresh,
# and creating a dataclass costs about half a millisecond of CPU.
class Dim:
    """One declared parameter: its type, bounds or choices, and the input features it acts on.

    Attributes:
        name: The parameter's name in ``PARAMS``.
        kind: ``float``, ``int``, ``bool`` or ``choice``.
        features: Input features the parameter acts on (``PARAM_SPACE``'s ``feature``).
        low: Lower bound (numeric kinds).
        high: Upper bound (numeric kinds).
        log: Whether steps are taken in log space (``scale: log``, positive bounds).
        choices: The values of a ``choice`` parameter.
    """

    __slots__ = ("choices", "features", "high", "kind", "log", "low", "name")

    def __init__(
        self,
        name: str,
        kind: str,
        features: tuple[str, ...] = (),
        low: float = 0.0,
        high: float = 1.0,
        log: bool = False,
        choices: list[Any] | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.features = features
        self.low = low
        self.high = high
        self.log = log
        self.choices: list[Any] = [] if choices is None else choices

    def __repr__(self) -> str:
        return f"Dim({self.name!r}, {self.kind!r})"

    @property
    def numeric(self) -> bool:
        """Whether the parameter is a float or an int."""
        return self.kind in ("float", "int")

    @property
    def mutable(self) -> bool:
        """Whether the parameter can take more than one value."""
        if self.kind == "bool":
            return True
        if self.kind == "choice":
            return len(self.choices) > 1
        if self.kind == "int":
            return math.floor(self.high) - math.ceil(self.low) >= 1
        return self.high > self.low

    def clip(self, value: Any) -> Any:
        """Return ``value`` coerced into the space (clipped, rounded, or the first choice)."""
        if self.kind == "bool":
            return bool(value)
        if self.kind == "choice":
            return value if value in self.choices else self.choices[0]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = self.from_unit(0.5) if self.mutable else self.low
        if not math.isfinite(number):
            number = self.low
        if self.kind == "int":
            low, high = math.ceil(self.low), math.floor(self.high)
            return int(min(max(round(number), low), high))
        rounded = round_sig(min(max(number, self.low), self.high))
        return min(max(rounded, self.low), self.high)

    def to_unit(self, value: Any) -> float:
        """Map a numeric value to ``[0, 1]`` (in log space for ``scale: log``)."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return 0.5
        if not math.isfinite(number) or self.high <= self.low:
            return 0.5
        if self.log:
            number = max(number, self.low)
            span = math.log(self.high) - math.log(self.low)
            return min(max((math.log(number) - math.log(self.low)) / span, 0.0), 1.0)
        return min(max((number - self.low) / (self.high - self.low), 0.0), 1.0)

    def from_unit(self, unit: float) -> Any:
        """Map a unit coordinate back to a value of the space (clipped and rounded)."""
        unit = min(max(unit, 0.0), 1.0)
        if self.log:
            raw = math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        else:
            raw = self.low + unit * (self.high - self.low)
        return self.clip(raw)


def build_space(raw: dict[Any, Any], params: dict[Any, Any]) -> dict[str, Dim]:
    """Parse ``PARAM_SPACE`` defensively; keep the parameters present in both literals."""
    space: dict[str, Dim] = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or name not in params or not isinstance(spec, dict):
            continue
        dim = _dim(name, spec, params[name])
        if dim is not None:
            space[name] = dim
    return space


def _dim(name: str, spec: dict[Any, Any], value: Any) -> Dim | None:
    """The parameter ``name`` declared by ``spec`` (its kind guessed from ``value`` if the spec
    does not say it), or None if its choices or bounds are unusable."""
    kind = spec.get("type")
    if kind not in ("float", "int", "bool", "choice"):
        if isinstance(spec.get("choices"), list | tuple):
            kind = "choice"
        elif isinstance(value, bool):
            kind = "bool"
        elif isinstance(value, int):
            kind = "int"
        else:
            kind = "float"
    feature = spec.get("feature", ())
    if isinstance(feature, str):
        features: tuple[str, ...] = (feature,)
    elif isinstance(feature, list | tuple):
        features = tuple(str(item) for item in feature)
    else:
        features = ()
    if kind == "choice":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            return None
        return Dim(name=name, kind=str(kind), features=features, choices=list(choices))
    if kind in ("float", "int"):
        low, high = as_float(spec.get("low")), as_float(spec.get("high"))
        if low is None or high is None or high < low:
            return None
        log = spec.get("scale") == "log" and low > 0.0
        return Dim(name=name, kind=str(kind), features=features, low=low, high=high, log=log)
    return Dim(name=name, kind=str(kind), features=features)


def as_float(value: Any) -> float | None:
    """Return ``value`` as a finite float, or ``None``."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
