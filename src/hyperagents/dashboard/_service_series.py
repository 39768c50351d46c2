"""A service's traffic and quality over time, in a bounded number of equal time buckets (what
the service page charts), with the autopilot's decisions as marks."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hyperagents.dashboard._service_views import (
    DECISION_KINDS,
    MAX_SCAN,
    event_json,
    finite,
    quality_of,
    shadow_quality,
)
from hyperagents.storages import BaseStorage, RequestRecord, ServiceRecord

if TYPE_CHECKING:
    from hyperagents.tasks import Task

__all__ = ["MAX_BUCKETS", "series"]

#: Most buckets one series has.
MAX_BUCKETS = 200
#: Most decisions marked on one series.
_MARKS = 200
_ARMS = ("champion", "candidate", "shadow")


@dataclass
class _Bucket:
    requests: int = 0
    shadow: int = 0
    feedback: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    quality: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in _ARMS})

    def as_json(self, start: datetime, end: datetime) -> dict[str, Any]:
        def mean(values: list[float]) -> float | None:
            return sum(values) / len(values) if values else None

        return {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "requests": self.requests,
            "shadow": self.shadow,
            "feedback": self.feedback,
            "errors": self.errors,
            "latency_p50_s": statistics.median(self.latencies) if self.latencies else None,
            "quality": {arm: mean(v) for arm, v in self.quality.items()},
            "quality_n": {arm: len(v) for arm, v in self.quality.items()},
        }


def _rows(
    storage: BaseStorage, service_id: int, since: datetime | None, until: datetime | None
) -> tuple[list[RequestRecord], bool]:
    """The window's latest :data:`MAX_SCAN` requests, oldest first, and whether older ones
    were left out."""
    rows = storage.list_service_requests(
        service_id, since=since, until=until, newest_first=True, limit=MAX_SCAN + 1
    )
    truncated = len(rows) > MAX_SCAN
    rows = rows[:MAX_SCAN]
    rows.reverse()
    return rows, truncated


def _span(
    rows: list[RequestRecord], since: datetime | None, until: datetime | None, truncated: bool
) -> tuple[datetime, datetime] | None:
    """The time the buckets cover: the window asked for, narrowed to the requests read."""
    if not rows:
        return None if since is None or until is None else (since, until)
    start = rows[0].created_at if since is None or truncated else since
    end = until if until is not None else rows[-1].created_at
    if end <= start:
        end = start + timedelta(seconds=1)
    return start, end


def series(
    storage: BaseStorage,
    service: ServiceRecord,
    task: Task | None,
    *,
    buckets: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Per time bucket: requests served, shadow answers, requests with a label or feedback,
    errors, the median latency, and the mean quality per arm (a shadow answer rated by its
    request's label); the autopilot's decisions in the window as marks. The latest
    :data:`MAX_SCAN` requests of the window are read (``truncated`` says older ones were
    left out, and the buckets start at the oldest one read).

    Raises:
        ServiceNotFoundError: No such service.
        ConfigError: ``buckets`` is not in 1..:data:`MAX_BUCKETS`.
    """
    from hyperagents.exceptions import ConfigError

    if not 1 <= buckets <= MAX_BUCKETS:
        raise ConfigError(f"buckets must be in 1..{MAX_BUCKETS}, not {buckets}")
    rows, truncated = _rows(storage, service.id, since, until)
    span = _span(rows, since, until, truncated)
    if span is None:
        return {"buckets": [], "marks": [], "read": 0, "truncated": False}
    start, end = span
    width = (end - start) / buckets
    bins = [_Bucket() for _ in range(buckets)]
    served = {r.id: r for r in rows if r.arm != "shadow"}
    for request in rows:
        offset = (request.created_at - start) / width
        bucket = bins[min(buckets - 1, max(0, int(offset)))]
        _count(bucket, request, task, served)
    marks = [
        event_json(e)
        for e in storage.list_service_events(
            service.id, kinds=list(DECISION_KINDS), newest_first=True, limit=_MARKS
        )
        if start <= e.created_at <= end
    ]
    return dict(
        finite(
            {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "buckets": [
                    b.as_json(start + width * i, start + width * (i + 1))
                    for i, b in enumerate(bins)
                ],
                "marks": marks[::-1],
                "read": len(rows),
                "truncated": truncated,
            }
        )
    )


def _count(
    bucket: _Bucket, request: RequestRecord, task: Task | None, served: dict[int, RequestRecord]
) -> None:
    if request.arm == "shadow":
        bucket.shadow += 1
        value = shadow_quality(task, request, served.get(request.shadow_of or 0))
        if value is not None:
            bucket.quality["shadow"].append(value)
        return
    bucket.requests += 1
    bucket.feedback += request.has_feedback
    bucket.errors += request.error is not None
    if request.answered:
        bucket.latencies.append(request.latency)
    quality = quality_of(task, request)
    if quality is not None:
        bucket.quality[request.arm].append(quality)
