"""The service under drift: ``hyperagents serve RUN --improve`` fed a drifting support stream.

One episode (:func:`episode`): a ``support`` run (offline: the seed agent's keyword fallback,
its seed evaluated) in a SQLite file is served by ``hyperagents serve --improve`` in a process
of its own; a client sends the requests of :func:`~hyperagents.service.simulated_stream` over
loopback HTTP, one after another, and attaches each request's trusted team as its label right
after the answer (the feedback a support desk would give). At the change point the stream's
mix and routing rule change, so the keyword champion's accuracy drops. The autopilot should
notice, improve in the background while the champion keeps answering, test the candidate in
shadow then A/B, and promote it or roll it back.

Measured per episode: requests sent, answered, refused (an HTTP error other than an agent's
failure) and recorded by the service (lost = sent - recorded); the request index and seconds
at which the autopilot's decisions came (improving, testing, A/B, promoted / rolled back / no
candidate / failed); accuracy before the change, after it until the decision, and after the
decision. A stationary stream (no change point) of the same length measures false triggers.

Used by ``benchmarks/bench_service.py --drift`` and by its end-to-end test.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hyperagents.runs import Run, RunConfig
from hyperagents.service import STATE_EVENT, StreamSettings, simulated_stream
from hyperagents.storages import RDBStorage
from hyperagents.testing.service import service_server

#: The autopilot's decisions, as its log names them.
DECISIONS = ("promoted", "rolled_back", "no_candidate", "failed", "no_data")

#: Settings for a short episode on the shared 2-core machine (see the README's autopilot).
FAST_AUTOPILOT: dict[str, Any] = {
    "monitor": {"detector": {"warmup": 100, "level": 30.0}},
    "trigger": {"min_feedback": 100, "cooldown_s": 3600.0},
    "test": {"min_samples": 50, "shadow_samples": 100, "traffic_share": 0.5},
    "generations": 3,
    "max_seconds": 600.0,
    "live_examples": 300,
    "holdout_fraction": 0.25,
    "max_replans": 0,
    "feedback_wait_s": 5.0,
    "poll_s": 0.5,
}


@dataclass
class Episode:
    """What one episode measured (see the module docstring)."""

    seed: int
    drift: bool
    sent: int = 0
    answered: int = 0
    refused: int = 0
    recorded: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    accuracy: dict[str, float | None] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.recorded

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((d for d in self.decisions if d["kind"] == kind), None)

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "lost": self.lost}


def build(tmp: Path, *, seed: int) -> str:
    """A SQLite storage holding a ``support`` run (no model) with its seed evaluated."""
    url = f"sqlite:///{tmp / f'drift-{seed}.db'}"
    storage = RDBStorage(url)
    try:
        run = Run.create(
            task="support", name="served", seed=seed, storage=storage, config=RunConfig.parse({})
        )
        run.optimize(0)
    finally:
        storage.close()
    return url


def episode(
    tmp: Path,
    *,
    seed: int,
    length: int,
    change_at: int | None,
    after: int = 300,
    autopilot: dict[str, Any] | None = None,
    workers: int = 2,
) -> Episode:
    """Serve a drifting (or, with ``change_at`` None, stationary) stream to the autopilot.

    The stream stops early ``after`` requests past a final decision.
    """
    url = build(tmp, seed=seed)
    settings = tmp / f"autopilot-{seed}.json"
    settings.write_text(json.dumps({**FAST_AUTOPILOT, **(autopilot or {}), "seed": seed}))
    found = Episode(seed=seed, drift=change_at is not None)
    stream = simulated_stream(StreamSettings(seed=seed, length=length, change_at=change_at))
    started = time.monotonic()
    storage = RDBStorage(url)
    extra = ["--improve", "--autopilot", str(settings)]
    rows: list[tuple[int, bool, float]] = []  # index, correct, seconds
    try:
        with service_server(url, "served", workers=workers, extra_args=extra) as (base, _):
            service = storage.list_services()[0].id
            with httpx.Client(base_url=base, timeout=120) as client:
                decided_at: int | None = None
                for request in stream:
                    correct = _ask(client, request.inputs, request.target, found)
                    rows.append((request.index, correct, time.monotonic() - started))
                    if request.index % 25 == 0:
                        _decisions(storage, service, found, request.index, started)
                        if decided_at is None and any(
                            d["kind"] in DECISIONS for d in found.decisions
                        ):
                            decided_at = request.index
                    if decided_at is not None and request.index >= decided_at + after:
                        break
            _decisions(storage, service, found, rows[-1][0] if rows else 0, started)
            found.recorded = storage.count_service_requests(service, arms=["champion", "candidate"])
    finally:
        storage.close()
    found.seconds = time.monotonic() - started
    found.accuracy = _accuracy(rows, change_at, found)
    return found


def _ask(client: httpx.Client, inputs: Any, target: str, found: Episode) -> bool:
    """Send one request and label it; whether the answer was right."""
    found.sent += 1
    reply = client.post("/api/service/answer", json={"inputs": dict(inputs)})
    body = (
        reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
    )
    request_id = body.get("request_id")
    if reply.status_code not in (200, 502) or request_id is None:
        found.refused += 1
        return False
    found.answered += 1
    label = client.post(f"/api/service/requests/{request_id}/feedback", json={"label": target})
    if label.status_code != 200:
        found.refused += 1
    output = body.get("output")
    return isinstance(output, str) and output.strip().lower() == target


def _decisions(
    storage: RDBStorage, service: int, found: Episode, index: int, started: float
) -> None:
    """The autopilot's log entries not seen yet, stamped with the stream's index and time."""
    seen = {d["id"] for d in found.decisions}
    for event in storage.list_service_events(service):
        kind = event.kind.removeprefix("autopilot.")
        if event.id in seen or not event.kind.startswith("autopilot.") or event.kind == STATE_EVENT:
            continue
        found.decisions.append(
            {
                "id": event.id,
                "kind": kind,
                "index": index,
                "seconds": round(time.monotonic() - started, 1),
                "message": event.message[:200],
            }
        )


def _accuracy(
    rows: list[tuple[int, bool, float]], change_at: int | None, found: Episode
) -> dict[str, float | None]:
    """Accuracy of the answers sent before the change, after it until the final decision
    (``during``), and after the decision."""
    final = next((d for d in found.decisions if d["kind"] in DECISIONS), None)
    cut = final["index"] if final is not None else None
    change = change_at if change_at is not None else len(rows)

    def mean(selected: list[bool]) -> float | None:
        return round(sum(selected) / len(selected), 3) if selected else None

    return {
        "before": mean([c for i, c, _ in rows if i < change]),
        "during": mean([c for i, c, _ in rows if i >= change and (cut is None or i < cut)]),
        "after": mean([c for i, c, _ in rows if cut is not None and i >= cut]),
    }
