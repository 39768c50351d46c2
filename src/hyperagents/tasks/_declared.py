"""A task agent's declared search space, read and written by trusted code (baseline arms).

The offline meta agent reads ``PARAMS`` and ``PARAM_SPACE`` inside the sandbox. The baseline
arms of an experiment (random search, Optuna) do the same in the engine: they draw values from
the space the *seed* declares and write them into the seed's ``PARAMS`` literal. This module is
that reading and writing, done without running the file: :func:`declared_space` parses the two
literals (refusing a space with any problem :func:`param_space_errors` names), and
:meth:`DeclaredSpace.write` rewrites only the source spans of the values that change, so a
child's diff shows exactly those values and every other byte of the file is kept.
"""

from __future__ import annotations

import ast
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hyperagents.exceptions import ConfigError
from hyperagents.tasks._param_space import param_space_errors, space_kind, top_level_assignments

__all__ = ["DeclaredParam", "DeclaredSpace", "declared_space"]


@dataclass(frozen=True)
class DeclaredParam:
    """One parameter of ``PARAM_SPACE``.

    Attributes:
        name: Its key in ``PARAMS``.
        kind: ``"float"``, ``"int"``, ``"bool"`` or ``"choice"``.
        low: Lower bound (float and int).
        high: Upper bound (float and int).
        log: Whether its scale is logarithmic.
        choices: The values a ``choice`` may take (``(False, True)`` for a bool).
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def fixed(self) -> bool:
        """Whether the parameter can take only one value (nothing to search)."""
        if self.kind in ("choice", "bool"):
            return len(self.choices) < 2
        if self.kind == "int":
            return math.floor(self.high) <= math.ceil(self.low)
        return self.high <= self.low

    def uniform(self, rng: random.Random) -> Any:
        """A uniform draw (log-uniform on a log scale) from the parameter's range."""
        if self.kind in ("choice", "bool"):
            return self.choices[rng.randrange(len(self.choices))]
        if self.kind == "int":
            low, high = math.ceil(self.low), math.floor(self.high)
            if self.log and low >= 1:
                # Log-uniform over the integers: each value gets the mass of [k - 0.5, k + 0.5).
                lo, hi = math.log(low - 0.5), math.log(high + 0.5)
                value = round(math.exp(lo + rng.random() * (hi - lo)))
                return int(min(max(value, low), high))
            return rng.randint(low, high)
        if self.log:
            return math.exp(math.log(self.low) + rng.random() * math.log(self.high / self.low))
        return self.low + rng.random() * (self.high - self.low)


@dataclass(frozen=True)
class DeclaredSpace:
    """The parameters a task agent declares and its current values.

    Attributes:
        params: The searchable parameters, in ``PARAM_SPACE``'s order (fixed ones left out).
        values: Every value of ``PARAMS`` as the source has it.
    """

    params: tuple[DeclaredParam, ...]
    values: Mapping[str, Any]

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A uniform draw of every searchable parameter."""
        return {p.name: p.uniform(rng) for p in self.params}

    def write(self, source: str, values: Mapping[str, Any]) -> str:
        """``source`` with the ``PARAMS`` entries named in ``values`` set to them.

        Only the spans of the changed values are rewritten (as ``repr``), so the rest of the
        file stays byte for byte as it was.

        Raises:
            ConfigError: A name that is not a searchable parameter, or a source whose
                ``PARAMS`` is not the dict literal this space was read from.
        """
        known = {p.name for p in self.params}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"not searchable parameters: {', '.join(unknown)}")
        node = _params_node(source)
        spans: list[tuple[int, int, str]] = []
        offsets = _line_offsets(source)
        for key, value in zip(node.keys, node.values, strict=True):
            if not isinstance(key, ast.Constant) or not isinstance(key.value, str):
                continue
            if key.value not in values:
                continue
            new = values[key.value]
            if _same(new, self.values.get(key.value)):
                continue
            start = _offset(source, offsets, value.lineno, value.col_offset)
            end = _offset(source, offsets, value.end_lineno or 0, value.end_col_offset or 0)
            spans.append((start, end, _literal(new)))
        for start, end, text in sorted(spans, reverse=True):
            source = source[:start] + text + source[end:]
        return source


def declared_space(source: str) -> DeclaredSpace:
    """The search space the ``PARAMS``/``PARAM_SPACE`` literals of ``source`` declare.

    Raises:
        ConfigError: The source does not parse, declares no ``PARAM_SPACE``, has any of the
            problems :func:`param_space_errors` names, or no parameter that can vary.
    """
    errors = param_space_errors(source)
    if errors:
        raise ConfigError("the declared search space has problems: " + "; ".join(errors))
    try:
        nodes = top_level_assignments(ast.parse(source))
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise ConfigError(f"the task agent does not parse: {exc}") from None
    if "PARAM_SPACE" not in nodes:
        raise ConfigError("the task agent declares no PARAM_SPACE: there is nothing to search")
    space = ast.literal_eval(nodes["PARAM_SPACE"])
    values = ast.literal_eval(nodes["PARAMS"])
    params = tuple(
        param
        for name, spec in space.items()
        if not (param := _param(name, spec, values[name])).fixed
    )
    if not params:
        raise ConfigError("no parameter of PARAM_SPACE can take more than one value")
    return DeclaredSpace(params, dict(values))


def _param(name: str, spec: dict[str, Any], value: Any) -> DeclaredParam:
    """One validated ``PARAM_SPACE`` entry as a :class:`DeclaredParam`."""
    kind = space_kind(spec, value)
    assert kind is not None  # validated
    if kind == "bool":
        return DeclaredParam(name, kind, choices=(False, True))
    if kind == "choice":
        return DeclaredParam(name, kind, choices=tuple(spec["choices"]))
    low, high = float(spec["low"]), float(spec["high"])
    return DeclaredParam(name, kind, low, high, spec.get("scale") == "log")


def _params_node(source: str) -> ast.Dict:
    """The ``PARAMS`` dict literal of ``source``."""
    try:
        node = top_level_assignments(ast.parse(source)).get("PARAMS")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        node = None
    if not isinstance(node, ast.Dict):
        raise ConfigError("the task agent's PARAMS is not a dict literal")
    return node


def _same(a: Any, b: Any) -> bool:
    """Whether two parameter values are the same value of the same type."""
    return type(a) is type(b) and a == b


def _literal(value: Any) -> str:
    """Python source for a parameter value (a float keeps its exact value)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"a parameter value must be finite, got {value!r}")
    return repr(value)


def _line_offsets(source: str) -> list[int]:
    """The character offset of the start of each line (1-based lines at index ``line - 1``)."""
    # The line ends the parser counts (not str.splitlines's, which also splits on \f, \x1c...).
    return [0, *(match.end() for match in re.finditer(r"\r\n|\r|\n", source))]


def _offset(source: str, offsets: list[int], line: int, col: int) -> int:
    """The character offset of ``ast``'s (line, UTF-8 byte column) position."""
    start = offsets[line - 1]
    end = offsets[line] if line < len(offsets) else len(source)
    text = source[start:end]
    return start + len(text.encode("utf-8")[:col].decode("utf-8", errors="ignore"))
