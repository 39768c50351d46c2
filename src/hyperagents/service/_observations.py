"""What a served request becomes for the monitor: an :class:`Observation`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hyperagents.exceptions import ConfigError

__all__ = ["Observation"]


def _finite(
    name: str, value: float, *, low: float | None = None, high: float | None = None
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"observation {name} must be a finite number, not {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"observation {name} must be >= {low}, not {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"observation {name} must be <= {high}, not {value!r}")


@dataclass(frozen=True)
class Observation:
    """One served request as the monitor sees it.

    Attributes:
        time: When the request was answered (seconds, any fixed origin, e.g. the Unix epoch).
        quality: The trusted feedback on the answer in [0, 1] (1 best), or None when no
            feedback or label has been given (yet).
        latency_s: Seconds the answer took.
        error: Whether the champion failed to answer (a crash, a timeout, a malformed output).
        cost_usd: What answering cost (LLM calls), in US dollars.
        inputs: The request's inputs (read-only copy), for input drift.
    """

    time: float
    quality: float | None = None
    latency_s: float = 0.0
    error: bool = False
    cost_usd: float = 0.0
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the values and freeze ``inputs``.

        Raises:
            ConfigError: A value is not finite, out of range or of the wrong type.
        """
        _finite("time", self.time)
        if self.quality is not None:
            _finite("quality", self.quality, low=0.0, high=1.0)
        _finite("latency_s", self.latency_s, low=0.0)
        _finite("cost_usd", self.cost_usd, low=0.0)
        if not isinstance(self.error, bool):
            raise ConfigError(f"observation error must be a bool, not {self.error!r}")
        if not isinstance(self.inputs, Mapping):
            raise ConfigError(f"observation inputs must be a mapping, not {self.inputs!r}")
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))

    def with_quality(self, quality: float | None) -> Observation:
        """This observation with ``quality`` as its feedback.

        Raises:
            ConfigError: ``quality`` is not in [0, 1].
        """
        return Observation(
            time=self.time,
            quality=quality,
            latency_s=self.latency_s,
            error=self.error,
            cost_usd=self.cost_usd,
            inputs=self.inputs,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (``inputs`` must be JSON-able for ``json.dumps`` to accept it)."""
        return {
            "time": self.time,
            "quality": self.quality,
            "latency_s": self.latency_s,
            "error": self.error,
            "cost_usd": self.cost_usd,
            "inputs": dict(self.inputs),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Observation:
        """The observation :meth:`to_json` gave.

        Raises:
            ConfigError: A field is missing, unknown or invalid.
        """
        known = {"time", "quality", "latency_s", "error", "cost_usd", "inputs"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"observation: unknown fields {unknown}")
        if "time" not in data:
            raise ConfigError("observation: time is missing")
        return cls(**dict(data))
