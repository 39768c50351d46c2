"""What the dashboard's state-changing requests may send (anything else is refused: 422), and
how large a body may be."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hyperagents.runs import TRY_INPUT_LIMIT, Mode

__all__ = [
    "BODY_LIMIT",
    "TRY_BODY_LIMIT",
    "DecisionBody",
    "DeleteBody",
    "Empty",
    "LoginBody",
    "OverrideBody",
    "ResumeBody",
    "ServiceDecisionBody",
    "StartBody",
    "StopBody",
    "TryBody",
]

#: Largest request body (bytes) of every request but "try it"'s: the forms are small.
BODY_LIMIT = 64 * 1024
#: Largest body of a "try it" request: the input and the JSON around it.
TRY_BODY_LIMIT = TRY_INPUT_LIMIT + 4 * 1024


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBody(_Body):
    """A new run, as the start form describes it."""

    task: str = Field(min_length=1, max_length=200)
    mode: Mode | None = Field(None, description="default: the level's, else hyperagent")
    level: str | None = Field(None, max_length=20, description="a level preset (runs.LEVELS)")
    generations: int = Field(30, ge=0, le=100_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    name: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
    workers: int = Field(1, ge=1, le=256)
    sandbox: str | None = Field(None, max_length=20)
    llm: str | None = Field(None, max_length=500)
    max_cost: float | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=0)
    meta: str | None = Field(None, max_length=20)


class StopBody(_Body):
    """How to stop: ``now`` kills the engine (and its sandboxes) instead of letting it finish."""

    now: bool = False


class DecisionBody(_Body):
    """Why a person decided (recorded)."""

    note: str | None = Field(None, max_length=2000)


class ServiceDecisionBody(_Body):
    """A person's decision on a service's candidate: promote it, or roll it back; why."""

    promote: bool
    note: str | None = Field(None, max_length=500)


class OverrideBody(_Body):
    """The operator's command to a service's autopilot: force the next improvement, suppress
    improvements, or lift either."""

    override: Literal["force", "suppress", "none"]


class ResumeBody(_Body):
    """How far to resume a run, with how many workers, and whether to join the engines that
    drive it (PostgreSQL)."""

    generations: int | None = Field(None, ge=0, le=100_000)
    workers: int | None = Field(None, ge=1, le=256)
    join: bool = False


class DeleteBody(_Body):
    """The run's name, typed to confirm deleting it."""

    confirm: str = Field(max_length=300)


class LabelBody(_Body):
    """A person's label for a train instance (training data of the ``people`` source)."""

    instance_id: str = Field(..., min_length=1, max_length=500)
    output: Any = None


class TryBody(_Body):
    """The input a variant's task agent is tried on."""

    inputs: Any = None


class LoginBody(_Body):
    """The token, typed into the page."""

    token: str = Field(max_length=1000)


class Empty(_Body):
    """No fields."""
