"""Checks the storage backends share for services: routing, bounded JSON, request filters."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hyperagents.exceptions import StorageError
from hyperagents.storages._common import dumps_json
from hyperagents.storages._service_records import (
    ARMS,
    MAX_ERROR_CHARS,
    MAX_REQUEST_JSON,
    CandidateState,
    RequestRecord,
    ServiceRouting,
)

__all__ = [
    "RequestFilter",
    "bounded_json",
    "check_arm",
    "check_feedback",
    "check_limit",
    "check_routing",
    "cut_error",
]


def bounded_json(value: Any, what: str) -> Any:
    """A deep copy of ``value`` through JSON, at most :data:`MAX_REQUEST_JSON` bytes.

    Raises:
        StorageError: Not JSON-compatible, or too large.
    """
    try:
        text = dumps_json(value)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"{what} is not JSON-compatible: {exc}") from None
    size = len(text.encode())
    if size > MAX_REQUEST_JSON:
        raise StorageError(
            f"{what} is too large: {size} bytes of JSON (at most {MAX_REQUEST_JSON})"
        )
    return json.loads(text)


def check_arm(arm: str) -> str:
    """Return ``arm``.

    Raises:
        StorageError: Not one of :data:`ARMS`.
    """
    if arm not in ARMS:
        raise StorageError(f"unknown arm {arm!r}; one of: {', '.join(ARMS)}")
    return arm


def check_feedback(feedback: float | None) -> float | None:
    """Return a feedback score as a float (None stays None).

    Raises:
        StorageError: Not a number in [0, 1].
    """
    if feedback is None:
        return None
    if isinstance(feedback, bool):
        raise StorageError(f"feedback must be a number in [0, 1], not {feedback!r}")
    try:
        number = float(feedback)
    except (TypeError, ValueError):
        raise StorageError(f"feedback must be a number in [0, 1], not {feedback!r}") from None
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise StorageError(f"feedback must be a number in [0, 1], not {number!r}")
    return number


def cut_error(error: str | None) -> str | None:
    """An error text cut to :data:`MAX_ERROR_CHARS` characters (None stays None)."""
    if error is None:
        return None
    text = str(error)
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 14] + " … (truncated)"


def check_routing(routing: ServiceRouting) -> ServiceRouting:
    """Return ``routing`` with its fields normalised.

    Raises:
        StorageError: A share outside [0, 1], or a candidate in shadow or A/B that is missing
            or is the champion.
    """
    state = CandidateState(routing.candidate_state)
    try:
        share = float(routing.candidate_share)
    except (TypeError, ValueError):
        share = math.nan
    if not 0.0 <= share <= 1.0:
        shown = routing.candidate_share
        raise StorageError(f"a candidate share is a number in [0, 1], not {shown!r}")
    candidate = routing.candidate_id
    if state.answers and (candidate is None or candidate == routing.champion_id):
        raise StorageError(
            f"a candidate in state {state.name} needs a candidate variant other than the champion"
        )
    return ServiceRouting(
        champion_id=int(routing.champion_id),
        candidate_id=None if candidate is None else int(candidate),
        candidate_state=state,
        candidate_share=share,
    )


@dataclass(frozen=True)
class RequestFilter:
    """The filters of ``list_service_requests`` and ``count_service_requests``."""

    after_id: int = 0
    before_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    arms: tuple[str, ...] | None = None
    variant_id: int | None = None
    answered: bool | None = None
    failed: bool | None = None
    with_feedback: bool | None = None

    @classmethod
    def of(
        cls,
        *,
        arms: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        **rest: Any,
    ) -> RequestFilter:
        """The filter of a call's keyword arguments.

        Raises:
            StorageError: A time is naive (not timezone-aware).
        """
        for moment in (since, until):
            if moment is not None and moment.tzinfo is None:
                raise StorageError("a time window needs timezone-aware times (UTC)")
        return cls(arms=None if arms is None else tuple(arms), since=since, until=until, **rest)

    def matches(self, record: RequestRecord) -> bool:
        """Whether ``record`` passes the filter."""
        return (
            record.id > self.after_id
            and (self.before_id is None or record.id < self.before_id)
            and (self.since is None or record.created_at >= self.since)
            and (self.until is None or record.created_at < self.until)
            and (self.arms is None or record.arm in self.arms)
            and (self.variant_id is None or record.variant_id == self.variant_id)
            and (self.answered is None or record.answered == self.answered)
            and (self.failed is None or (record.error is not None) == self.failed)
            and (self.with_feedback is None or record.has_feedback == self.with_feedback)
        )


def check_limit(limit: int | None) -> int | None:
    """Return ``limit``.

    Raises:
        StorageError: A negative limit.
    """
    if limit is not None and limit < 0:
        raise StorageError(f"a limit must be >= 0, not {limit!r}")
    return limit
