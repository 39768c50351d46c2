"""When to improve: the trigger policy.

A :class:`Trigger` turns the monitor's signals into a decision to start a background
improvement, under the operator's :class:`TriggerPolicy`:

* **signal**: the degradation alarm stands (and, with ``on_drift``, input drift counts too);
* **minimum evidence**: at least ``min_feedback`` feedback values since the last improvement
  started (so that the improvement has live failures to learn from);
* **cool-down**: at least ``cooldown_s`` seconds since the last improvement started;
* **maximum frequency**: fewer than ``max_per_window`` improvements started in the last
  ``frequency_window_s`` seconds;
* **budget**: fewer than ``max_improvements`` improvements in all, and less than
  ``max_cost_usd`` spent on them (costs reported with :meth:`Trigger.record_cost`; the
  autopilot reports every model call an improvement made, planning calls whose run never
  started and improvements cut off by a restart included).

It fires only when every rule allows it; its :class:`TriggerDecision` says why (or why not).
The operator may override: ``force`` fires at the next decision whatever the rules say (once),
``suppress`` never fires until lifted. The state is JSON-able, so a restart resumes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import Field

from hyperagents.exceptions import ConfigError
from hyperagents.service._settings import Settings, parse_settings

__all__ = ["Override", "Trigger", "TriggerDecision", "TriggerPolicy"]


class Override(StrEnum):
    """The operator's override of the trigger."""

    NONE = "none"
    FORCE = "force"  # fire at the next decision, whatever the rules say (once)
    SUPPRESS = "suppress"  # never fire until lifted


class TriggerPolicy(Settings):
    """The rules a trigger follows (see the module docstring)."""

    min_feedback: int = Field(
        default=100, ge=0, description="feedback values since the last improvement started"
    )
    cooldown_s: float = Field(
        default=3600.0, ge=0, description="seconds after an improvement started before another"
    )
    max_per_window: int = Field(
        default=3, ge=1, description="improvements that may start within frequency_window_s"
    )
    frequency_window_s: float = Field(
        default=86400.0, gt=0, description="the window of the maximum frequency, in seconds"
    )
    max_improvements: int | None = Field(
        default=None, ge=0, description="improvements allowed in all (None: no limit)"
    )
    max_cost_usd: float | None = Field(
        default=None, ge=0, description="dollars improvements may spend in all (None: no limit)"
    )
    on_drift: bool = Field(
        default=False,
        description="input drift alone is a signal too (else only quality degradation)",
    )


@dataclass(frozen=True)
class TriggerDecision:
    """Whether to start an improvement now, and why (or why not)."""

    fire: bool
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"fire": self.fire, "reasons": list(self.reasons)}


class Trigger:
    """The trigger policy with its state (see the module docstring).

    Args:
        policy: The rules (defaults when None).
    """

    def __init__(self, *, policy: TriggerPolicy | None = None) -> None:
        self.policy = policy or TriggerPolicy()
        self.feedback_since = 0
        self.starts: list[float] = []
        self.spent_usd = 0.0
        self.override = Override.NONE

    def note_feedback(self, count: int = 1) -> None:
        """Count ``count`` new feedback values (the evidence of the next improvement)."""
        self.feedback_since += count

    def record_start(self, *, now: float) -> None:
        """An improvement started at ``now``: its evidence is used up; a force is consumed."""
        self.starts.append(now)
        self.feedback_since = 0
        if self.override is Override.FORCE:
            self.override = Override.NONE

    def record_cost(self, usd: float) -> None:
        """Add what an improvement spent to the budget's count.

        Raises:
            ConfigError: ``usd`` is negative.
        """
        if usd < 0:
            raise ConfigError(f"an improvement's cost cannot be negative ({usd})")
        self.spent_usd += usd

    def decide(self, *, now: float, degraded: bool, drifted: bool = False) -> TriggerDecision:
        """Whether to start an improvement at ``now``.

        Args:
            now: The current time (seconds, as the observations').
            degraded: Whether the degradation alarm stands.
            drifted: Whether input drift is seen.

        Returns:
            The decision and its reasons: what fired it, or every rule that held it back.
        """
        if self.override is Override.SUPPRESS:
            return TriggerDecision(False, ("suppressed by the operator",))
        blockers = self._blockers(now)
        signals = []
        if degraded:
            signals.append("quality degradation alarm")
        if drifted and self.policy.on_drift:
            signals.append("input drift")
        if self.override is Override.FORCE:
            overruled = [f"overruled: {b}" for b in blockers]
            return TriggerDecision(True, ("forced by the operator", *signals, *overruled))
        if not signals:
            blockers.insert(0, "no degradation" + (" or drift" if self.policy.on_drift else ""))
        if blockers:
            return TriggerDecision(False, tuple(blockers))
        evidence = f"{self.feedback_since} feedback values since the last improvement"
        return TriggerDecision(True, (*signals, evidence))

    def _blockers(self, now: float) -> list[str]:
        p = self.policy
        out = []
        if self.feedback_since < p.min_feedback:
            out.append(f"evidence: {self.feedback_since} feedback values < {p.min_feedback}")
        if self.starts and now - self.starts[-1] < p.cooldown_s:
            left = p.cooldown_s - (now - self.starts[-1])
            out.append(f"cool-down: {left:.0f} s left of {p.cooldown_s:.0f} s")
        recent = sum(1 for t in self.starts if now - t < p.frequency_window_s)
        if recent >= p.max_per_window:
            out.append(
                f"frequency: {recent} improvements in the last {p.frequency_window_s:.0f} s "
                f"(at most {p.max_per_window})"
            )
        if p.max_improvements is not None and len(self.starts) >= p.max_improvements:
            out.append(f"budget: {len(self.starts)} improvements of {p.max_improvements} used")
        if p.max_cost_usd is not None and self.spent_usd >= p.max_cost_usd:
            out.append(f"budget: ${self.spent_usd:.2f} spent of ${p.max_cost_usd:.2f}")
        return out

    def to_json(self) -> dict[str, Any]:
        """The policy and the state as a JSON-able dict."""
        return {
            "policy": self.policy.model_dump(),
            "feedback_since": self.feedback_since,
            "starts": list(self.starts),
            "spent_usd": self.spent_usd,
            "override": self.override.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trigger:
        """The trigger :meth:`to_json` described.

        Raises:
            ConfigError: The policy or a state field is invalid.
        """
        trigger = cls(policy=parse_settings(TriggerPolicy, data.get("policy")))
        try:
            trigger.feedback_since = int(data["feedback_since"])
            trigger.starts = [float(t) for t in data["starts"]]
            trigger.spent_usd = float(data["spent_usd"])
            trigger.override = Override(data["override"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid trigger state: {exc!r}") from exc
        return trigger
