"""A simulated drifting stream of ``support`` requests, with the trusted team of each.

Built on the ``support`` task's generator (:func:`hyperagents.tasks.support.draw_request`):
seeded, it yields :class:`StreamRequest` s (the inputs a client sends, the ground-truth team
that becomes the feedback, an arrival time) and, at a known change point, changes:

* ``mix``: the request mix: the share of *hard* requests (those settled only by the routing
  rules) rises from 0.4 to ``after_hard_share`` and the channels shift to ``after_channels``
  (input drift that the channel feature shows);
* ``rule``: a routing rule: from the change point the teams of ``relabel`` are handled by
  others (default: refunds go to billing), so the same inputs get new labels (concept drift,
  invisible in the inputs);
* ``both``: both at once.

The stationary stream of the same seed (``change_at=None``) is the same requests without the
change; before the change point, the two streams are identical. Arrival times have
exponential gaps of mean ``1 / rate`` seconds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hyperagents.service._settings import Settings
from hyperagents.tasks.support import CATEGORIES, CHANNELS, HARD_SHARE, draw_request

__all__ = ["StreamRequest", "StreamSettings", "simulated_stream"]


class StreamSettings(Settings):
    """The simulated stream (see the module docstring)."""

    seed: int = Field(default=0, ge=0, description="the stream's random seed")
    length: int = Field(default=4000, ge=1, description="requests in the stream")
    change_at: int | None = Field(
        default=2000, ge=0, description="index of the first changed request (None: stationary)"
    )
    drift: Literal["mix", "rule", "both"] = Field(default="both", description="what changes")
    rate: float = Field(default=1.0, gt=0, description="mean requests per second")
    after_hard_share: float = Field(
        default=0.8, ge=0, le=1, description="share of hard requests after a mix change"
    )
    after_channels: dict[str, float] = Field(
        default_factory=lambda: {"email": 0.1, "chat": 0.8, "web form": 0.1},
        description="channel weights after a mix change",
    )
    relabel: dict[str, str] = Field(
        default_factory=lambda: {"refund": "billing"},
        description="team -> team that handles its requests after a rule change",
    )

    @field_validator("after_channels")
    @classmethod
    def _known_channels(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channels {unknown}; the channels are {list(CHANNELS)}")
        if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("channel weights must be >= 0 with a positive sum")
        return value

    @field_validator("relabel")
    @classmethod
    def _known_teams(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted((set(value) | set(value.values())) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown teams {unknown}; the teams are {list(CATEGORIES)}")
        return value

    @model_validator(mode="after")
    def _change_inside(self) -> StreamSettings:
        if self.change_at is not None and self.change_at >= self.length:
            raise ValueError(f"change_at {self.change_at} must be below length {self.length}")
        return self

    def stationary(self) -> StreamSettings:
        """The same stream without the change."""
        return self.model_copy(update={"change_at": None})


@dataclass(frozen=True)
class StreamRequest:
    """One request of the stream."""

    index: int
    time: float  # arrival, in seconds from the stream's start
    inputs: Mapping[str, Any]  # what the client sends: {"message": ..., "channel": ...}
    target: str  # the trusted team (the feedback's label)
    changed: bool  # whether it comes at or after the change point
    hard: bool  # whether it was drawn from the hard templates


def simulated_stream(settings: StreamSettings | None = None) -> Iterator[StreamRequest]:
    """The requests of the stream ``settings`` describes (see the module docstring).

    Args:
        settings: The stream (defaults when None: 4000 requests, changing at 2000).

    Yields:
        The requests, in arrival order.
    """
    s = settings or StreamSettings()
    requests = random.Random(f"hyperagents.service.stream:{s.seed}:requests")
    arrivals = random.Random(f"hyperagents.service.stream:{s.seed}:arrivals")
    time = 0.0
    for index in range(s.length):
        time += arrivals.expovariate(s.rate)
        changed = s.change_at is not None and index >= s.change_at
        mix = changed and s.drift in ("mix", "both")
        request = draw_request(
            requests,
            hard_share=s.after_hard_share if mix else HARD_SHARE,
            channels=s.after_channels if mix else None,
        )
        target = request.category
        if changed and s.drift in ("rule", "both"):
            target = s.relabel.get(target, target)
        yield StreamRequest(
            index=index,
            time=time,
            inputs={"message": request.message, "channel": request.channel},
            target=target,
            changed=changed,
            hard=request.hard,
        )
