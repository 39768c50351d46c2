"""Input drift on declared input features, against a reference window.

Declaring features
------------------
A task declares the input features worth watching with a method ``input_features()`` that
returns a plain mapping from an input key to its kind (no import of this package needed)::

    def input_features(self) -> dict[str, str]:
        return {"channel": "categorical", "message": "text"}

* ``numeric``: the value itself (a number) is watched: population stability index (PSI) over
  the reference's deciles and the two-sample Kolmogorov-Smirnov test.
* ``categorical``: the value as a string: PSI over the categories and the rate of categories
  the reference never saw.
* ``text``: two features, ``<key>.length`` (numeric: characters) and ``<key>.words`` (the
  rate of words, lower-case letters only, absent from the reference's vocabulary).

Statistics
----------
* ``PSI = sum_i (c_i - r_i) ln(c_i / r_i)`` over bins (or categories) with the reference's
  and the current window's shares ``r_i`` and ``c_i``, each floored at ``epsilon`` so that an
  empty bin counts without dividing by zero. Usual reading: < 0.1 stable, 0.1-0.2 moderate,
  > 0.2 a shift (the default alert).
* KS: ``D = max_x |F_ref(x) - F_cur(x)|``; p-value from Kolmogorov's limiting distribution
  ``Q(sqrt(n m / (n + m)) D)``, ``Q(t) = 2 sum_k (-1)^(k-1) exp(-2 k^2 t^2)`` (scipy's
  ``kstwobign``). The p-value of one look; looking at every request inflates false alerts,
  hence the small default ``ks_alpha``.
* Unseen rate: the share of the current window's values (categories or words) not in the
  reference.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from hyperagents.exceptions import ConfigError
from hyperagents.service._settings import Settings

__all__ = [
    "DriftMonitor",
    "DriftSettings",
    "FeatureDrift",
    "InputFeature",
    "declared_features",
    "input_features",
    "ks_2samp",
    "psi_categorical",
    "psi_numeric",
    "unseen_rate",
]

FeatureKind = Literal["numeric", "categorical", "words"]
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class InputFeature:
    """One watched feature: its name, the input key it reads and its kind."""

    name: str
    key: str
    kind: FeatureKind

    def value(self, inputs: Mapping[str, Any]) -> Any:
        """This feature's value for a request's ``inputs`` (None when missing or unusable)."""
        raw = inputs.get(self.key)
        if raw is None:
            return None
        if self.kind == "categorical":
            return str(raw)
        if self.kind == "words":
            return tuple(_WORD.findall(str(raw).lower()))
        if self.name.endswith(".length"):
            return float(len(str(raw)))
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            return None
        return float(raw)


def input_features(declaration: Mapping[str, str]) -> tuple[InputFeature, ...]:
    """The features of a declaration (see the module docstring).

    Args:
        declaration: Input key to kind: ``numeric``, ``categorical`` or ``text``.

    Returns:
        The features, in the declaration's order.

    Raises:
        ConfigError: A kind is unknown or a key is not a non-empty string.
    """
    features: list[InputFeature] = []
    for key, kind in declaration.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"input feature keys must be non-empty strings, not {key!r}")
        if kind == "text":
            features.append(InputFeature(f"{key}.length", key, "numeric"))
            features.append(InputFeature(f"{key}.words", key, "words"))
        elif kind in ("numeric", "categorical"):
            features.append(InputFeature(key, key, kind))  # type: ignore[arg-type]
        else:
            raise ConfigError(
                f"input feature {key!r}: unknown kind {kind!r}; use numeric, categorical or text"
            )
    return tuple(features)


def declared_features(task: object) -> tuple[InputFeature, ...]:
    """The features ``task`` declares with ``input_features()`` (none when it declares none).

    Raises:
        ConfigError: The declaration is not a mapping or is invalid.
    """
    declare = getattr(task, "input_features", None)
    if declare is None:
        return ()
    declaration = declare()
    if not isinstance(declaration, Mapping):
        raise ConfigError(f"input_features() must return a mapping, not {declaration!r}")
    return input_features(declaration)


def _shares(counts: np.ndarray[Any, Any], epsilon: float) -> np.ndarray[Any, Any]:
    shares: np.ndarray[Any, Any] = np.maximum(counts / counts.sum(), epsilon)
    return shares


def psi_numeric(
    reference: Sequence[float], current: Sequence[float], *, bins: int = 10, epsilon: float = 1e-4
) -> float:
    """Population stability index of a numeric feature over the reference's quantile bins.

    Args:
        reference: The reference window's values (not empty).
        current: The current window's values (not empty).
        bins: Number of quantile bins (ties may merge some).
        epsilon: Floor of a bin's share.

    Returns:
        The PSI (0 when the two windows fill the bins alike).

    Raises:
        ConfigError: A window is empty or ``bins`` < 2.
    """
    if not len(reference) or not len(current) or bins < 2:
        raise ConfigError("psi needs two non-empty windows and at least 2 bins")
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    size = len(edges) + 1
    r = _shares(np.bincount(np.searchsorted(edges, ref, side="right"), minlength=size), epsilon)
    c = _shares(np.bincount(np.searchsorted(edges, cur, side="right"), minlength=size), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_categorical(
    reference: Iterable[str], current: Iterable[str], *, epsilon: float = 1e-4
) -> float:
    """Population stability index of a categorical feature over the union of categories.

    Raises:
        ConfigError: A window is empty.
    """
    ref, cur = Counter(reference), Counter(current)
    if not ref or not cur:
        raise ConfigError("psi needs two non-empty windows")
    names = sorted(set(ref) | set(cur))
    r = _shares(np.array([ref[k] for k in names], dtype=float), epsilon)
    c = _shares(np.array([cur[k] for k in names], dtype=float), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_2samp(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value.

    Returns:
        ``(D, p)``: the largest gap between the two empirical distribution functions and
        ``Q(sqrt(n m / (n + m)) D)`` (see the module docstring).

    Raises:
        ConfigError: A window is empty.
    """
    if not len(reference) or not len(current):
        raise ConfigError("ks needs two non-empty windows")
    a = np.sort(np.asarray(reference, dtype=float))
    b = np.sort(np.asarray(current, dtype=float))
    pooled = np.concatenate([a, b])
    gap = np.searchsorted(a, pooled, side="right") / len(a)
    gap = gap - np.searchsorted(b, pooled, side="right") / len(b)
    d = float(np.max(np.abs(gap)))
    t = math.sqrt(len(a) * len(b) / (len(a) + len(b))) * d
    return d, _kolmogorov_sf(t)


def _kolmogorov_sf(t: float) -> float:
    """P(K > t) for Kolmogorov's distribution K."""
    if t < 0.2:
        return 1.0  # the series converges slowly here; the true value is above 0.99999
    k = np.arange(1, 101, dtype=float)
    total = 2.0 * float(np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k * k * t * t)))
    return min(1.0, max(0.0, total))


def unseen_rate(reference: Iterable[str], current: Iterable[str]) -> float:
    """The share of ``current``'s values (with repeats) that ``reference`` never holds
    (0 for an empty ``current``)."""
    seen = set(reference)
    values = list(current)
    if not values:
        return 0.0
    return sum(1 for v in values if v not in seen) / len(values)


class DriftSettings(Settings):
    """How input drift is measured and when a feature counts as drifted."""

    reference_size: int = Field(
        default=500, ge=10, description="requests in the reference window (the first ones seen)"
    )
    window: int = Field(default=500, ge=10, description="requests in the current (rolling) window")
    min_current: int = Field(
        default=250,
        ge=1,
        description="requests the current window needs before drift is judged (PSI of 10 "
        "bins on 100 values reads about 0.1 with no drift at all)",
    )
    bins: int = Field(
        default=10, ge=2, le=100, description="quantile bins of a numeric feature's PSI"
    )
    epsilon: float = Field(default=1e-4, gt=0, lt=0.1, description="floor of a bin's share in PSI")
    psi_alert: float = Field(default=0.2, gt=0, description="PSI above which a feature has drifted")
    ks_alpha: float = Field(
        default=0.001,
        gt=0,
        lt=1,
        description="KS p-value below which a numeric feature has drifted",
    )
    unseen_alert: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="unseen category / word rate above which it has drifted",
    )


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift figures (None where a statistic does not apply)."""

    name: str
    kind: FeatureKind
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None
    unseen_rate: float | None
    drifted: bool
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "psi": self.psi,
            "ks_statistic": self.ks_statistic,
            "ks_pvalue": self.ks_pvalue,
            "unseen_rate": self.unseen_rate,
            "drifted": self.drifted,
            "reasons": list(self.reasons),
        }


class DriftMonitor:
    """Input drift of declared features: the first ``reference_size`` requests (or those given
    to :meth:`set_reference`) are the reference, the last ``window`` requests the current one.

    Args:
        features: The watched features (see :func:`input_features`).
        settings: Window sizes and alert levels (defaults when None).
    """

    def __init__(
        self, *, features: Sequence[InputFeature], settings: DriftSettings | None = None
    ) -> None:
        self.features = tuple(features)
        self.settings = settings or DriftSettings()
        self._reference: dict[str, list[Any]] = {f.name: [] for f in self.features}
        self._current: dict[str, deque[Any]] = {
            f.name: deque(maxlen=self.settings.window) for f in self.features
        }
        self._reference_full = False

    def observe(self, inputs: Mapping[str, Any]) -> None:
        """Count one request's inputs (missing or unusable values are skipped)."""
        for feature in self.features:
            value = feature.value(inputs)
            if value is None:
                continue
            if self._reference_full:
                self._current[feature.name].append(value)
            else:
                self._reference[feature.name].append(value)
        if not self._reference_full:
            sizes = [len(v) for v in self._reference.values()]
            self._reference_full = bool(sizes) and max(sizes) >= self.settings.reference_size

    def set_reference(self, inputs: Iterable[Mapping[str, Any]]) -> None:
        """Make these requests' inputs the reference and empty the current window (e.g. the
        requests the new champion was checked on, after a promotion)."""
        self._reference = {f.name: [] for f in self.features}
        for request in inputs:
            for feature in self.features:
                value = feature.value(request)
                if value is not None:
                    self._reference[feature.name].append(value)
        for window in self._current.values():
            window.clear()
        self._reference_full = True

    def report(self) -> tuple[FeatureDrift, ...]:
        """Each feature's drift now (features without enough data yet are left out)."""
        out: list[FeatureDrift] = []
        for feature in self.features:
            ref, cur = self._reference[feature.name], list(self._current[feature.name])
            if not ref or len(cur) < self.settings.min_current:
                continue
            out.append(self._judge(feature, ref, cur))
        return tuple(out)

    def _judge(self, feature: InputFeature, ref: list[Any], cur: list[Any]) -> FeatureDrift:
        s = self.settings
        psi = ks_d = ks_p = unseen = None
        if feature.kind == "numeric":
            psi = psi_numeric(ref, cur, bins=s.bins, epsilon=s.epsilon)
            ks_d, ks_p = ks_2samp(ref, cur)
        elif feature.kind == "categorical":
            psi = psi_categorical(ref, cur, epsilon=s.epsilon)
            unseen = unseen_rate(ref, cur)
        else:
            vocabulary = {word for words in ref for word in words}
            unseen = unseen_rate(vocabulary, (word for words in cur for word in words))
        reasons = []
        if psi is not None and psi > s.psi_alert:
            reasons.append(f"PSI {psi:.3f} > {s.psi_alert}")
        if ks_p is not None and ks_p < s.ks_alpha:
            reasons.append(f"KS p {ks_p:.2g} < {s.ks_alpha} (D {ks_d:.3f})")
        if unseen is not None and unseen > s.unseen_alert:
            reasons.append(f"unseen rate {unseen:.3f} > {s.unseen_alert}")
        return FeatureDrift(
            feature.name, feature.kind, psi, ks_d, ks_p, unseen, bool(reasons), tuple(reasons)
        )
