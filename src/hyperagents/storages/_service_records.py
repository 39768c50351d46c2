"""What a service stores: its record, its routing, the requests it answered and its events.

A *service* (``hyperagents serve``) answers live requests with a run's champion. Its routing
(:class:`ServiceRouting`) says which variant answers: the champion, and optionally a candidate
in shadow (answering beside the champion, never to the caller) or under A/B testing (answering a
share of the traffic). Every request is recorded (:class:`RequestRecord`) with the variant and
arm that answered, its output or error, latency and cost, and the feedback attached later.
The contract is in :mod:`hyperagents.storages._base_services`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

__all__ = [
    "ARMS",
    "MAX_ERROR_CHARS",
    "MAX_REQUEST_JSON",
    "CandidateState",
    "RequestRecord",
    "ServiceEventRecord",
    "ServiceRecord",
    "ServiceRouting",
    "ServiceSpec",
    "ServiceStatus",
]

#: The arms a request may be answered by: the champion, the candidate under A/B testing, or
#: the candidate in shadow (its answer is recorded, never returned).
ARMS = ("champion", "candidate", "shadow")
#: Largest inputs, output or label of a request, in bytes of compact JSON.
MAX_REQUEST_JSON = 256 * 1024
#: Longest error text kept for a request (longer ones are cut).
MAX_ERROR_CHARS = 4000


class ServiceStatus(IntEnum):
    """Lifecycle of a service."""

    CREATED = 0  #: created, not serving yet
    SERVING = 1  #: a ``serve`` process answers (or did, until it died)
    STOPPED = 2  #: stopped; serving again resumes it with its records


class CandidateState(IntEnum):
    """Where a service's candidate variant stands."""

    NONE = 0  #: no candidate
    SHADOW = 1  #: the candidate answers beside the champion; only the champion's answer is sent
    AB = 2  #: the candidate answers ``candidate_share`` of the traffic
    PROMOTED = 3  #: the candidate was promoted (it is the champion now)
    ROLLED_BACK = 4  #: the candidate was rolled back (it answers nothing)

    @property
    def answers(self) -> bool:
        """Whether a candidate in this state runs on live requests."""
        return self in (CandidateState.SHADOW, CandidateState.AB)


@dataclass(frozen=True, kw_only=True)
class ServiceRouting:
    """Which variants answer a service's requests (a value object, compared whole by
    :meth:`~hyperagents.storages.BaseStorage.set_service_routing`).

    Attributes:
        champion_id: The variant that answers (and whose answer is sent in shadow mode).
        candidate_id: The candidate variant (None: none).
        candidate_state: Where the candidate stands.
        candidate_share: Share of requests in ``[0, 1]`` the candidate answers under A/B
            testing (which ones: a seeded hash of the request id).
    """

    champion_id: int
    candidate_id: int | None = None
    candidate_state: CandidateState = CandidateState.NONE
    candidate_share: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """A service to create (:meth:`~hyperagents.storages.BaseStorage.create_service`).

    Attributes:
        name: The service's name, unique in the storage.
        run_id: The run whose champion it serves (its task and sandbox settings apply).
        champion_id: The variant that answers at first.
        seed: Seed of the routing hash.
        goal: The operator's goal (JSON), e.g. a metric to hold or maximise.
    """

    name: str
    run_id: int
    champion_id: int
    seed: int = 0
    goal: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceRecord:
    """Snapshot of a service."""

    id: int
    name: str
    run_id: int
    champion_id: int
    candidate_id: int | None
    candidate_state: CandidateState
    candidate_share: float
    seed: int
    goal: dict[str, Any]
    status: ServiceStatus
    created_at: datetime
    updated_at: datetime

    @property
    def routing(self) -> ServiceRouting:
        """The service's routing, as :meth:`set_service_routing` compares it."""
        return ServiceRouting(
            champion_id=self.champion_id,
            candidate_id=self.candidate_id,
            candidate_state=self.candidate_state,
            candidate_share=self.candidate_share,
        )


@dataclass(frozen=True)
class RequestRecord:
    """Snapshot of one served request (one arm's answer to it).

    Attributes:
        id: The request's id (what feedback names).
        service_id: The service that answered.
        variant_id: The variant that answered.
        arm: ``"champion"``, ``"candidate"`` or ``"shadow"``.
        shadow_of: For a shadow answer, the request whose caller got the champion's answer.
        inputs: The request's input (JSON).
        output: The answer (None: an error, or not answered yet).
        error: Why there is no answer (the variant crashed, timed out, answered garbage).
        latency: Seconds the answer took (0 until answered).
        cost: US dollars the answer cost.
        created_at: When the request arrived.
        answered_at: When it was answered (None: still in progress, or lost with its process).
        label: The right answer, as a person or a teacher gave it (JSON; None: none).
        feedback: A score of the answer in ``[0, 1]`` (None: none).
        feedback_by: Who gave the label or feedback.
        feedback_at: When.
    """

    id: int
    service_id: int
    variant_id: int
    arm: str
    shadow_of: int | None
    inputs: Any
    output: Any
    error: str | None
    latency: float
    cost: float
    created_at: datetime
    answered_at: datetime | None
    label: Any
    feedback: float | None
    feedback_by: str | None
    feedback_at: datetime | None

    @property
    def answered(self) -> bool:
        """Whether the request has its answer (or its error)."""
        return self.answered_at is not None

    @property
    def has_feedback(self) -> bool:
        """Whether a label or a feedback score is attached."""
        return self.feedback_at is not None


@dataclass(frozen=True)
class ServiceEventRecord:
    """One entry of a service's log (a trigger, a plan, an A/B decision…)."""

    id: int
    service_id: int
    kind: str
    message: str
    data: dict[str, Any]
    created_at: datetime
