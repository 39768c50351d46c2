"""What of the autopilot survives a restart: its state, JSON in the service's log.

The :class:`~hyperagents.service.Autopilot` records a :class:`PilotState` (with its settings,
which the dashboard reads) as a ``STATE_EVENT`` entry at every change of stage, and a new
process reads the latest one back (see the autopilot's module docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hyperagents.service._steering import Stage

__all__ = ["PilotState"]


@dataclass
class PilotState:
    """What survives a restart (JSON in the service's log).

    Attributes:
        stage: What the autopilot does.
        epoch_from: The watch reads requests with larger ids.
        cursor: The last request read.
        test_from: The test reads requests with larger ids.
        candidate: The variant under test.
        improvements: Improvements started.
        commands_seen: The last operator's command applied.
        trigger: The trigger's state.
        last_plans: The latest improvement's last plans.
        improving_from: The log entry the latest improvement began with (its spend follows).
        resumed: The ``improving_from`` of an improvement resumed after a restart (one that
            is cut off again is not resumed twice; 0: none).
    """

    stage: Stage = Stage.WATCHING
    epoch_from: int = 0
    cursor: int = 0
    test_from: int = 0
    candidate: int | None = None
    improvements: int = 0
    commands_seen: int = 0
    trigger: dict[str, Any] = field(default_factory=dict)
    last_plans: list[dict[str, Any]] = field(default_factory=list)
    improving_from: int = 0
    resumed: int = 0

    def to_json(self) -> dict[str, Any]:
        """The state as a JSON object."""
        return {
            "stage": self.stage.value,
            "epoch_from": self.epoch_from,
            "cursor": self.cursor,
            "test_from": self.test_from,
            "candidate": self.candidate,
            "improvements": self.improvements,
            "commands_seen": self.commands_seen,
            "trigger": self.trigger,
            "last_plans": self.last_plans,
            "improving_from": self.improving_from,
            "resumed": self.resumed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PilotState:
        """The state a :meth:`to_json` object holds (missing fields: their defaults).

        Raises:
            ValueError: An unknown stage or a field of the wrong kind.
        """
        return cls(
            stage=Stage(data.get("stage", Stage.WATCHING.value)),
            epoch_from=int(data.get("epoch_from", 0)),
            cursor=int(data.get("cursor", 0)),
            test_from=int(data.get("test_from", 0)),
            candidate=data.get("candidate"),
            improvements=int(data.get("improvements", 0)),
            commands_seen=int(data.get("commands_seen", 0)),
            trigger=dict(data.get("trigger") or {}),
            last_plans=list(data.get("last_plans") or []),
            improving_from=int(data.get("improving_from") or 0),
            resumed=int(data.get("resumed") or 0),
        )
