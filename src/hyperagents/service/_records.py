"""The service's application layer over storage: find or create a run's service, attach
feedback, and show requests as JSON (what the HTTP API, the command line and other components
call; none of them writes service records another way)."""

from __future__ import annotations

import json
from typing import Any

from hyperagents.archive import champion_of
from hyperagents.exceptions import (
    RequestNotFoundError,
    RunStateError,
    ServiceNotFoundError,
    StorageError,
)
from hyperagents.runs import find_run
from hyperagents.storages import (
    BaseStorage,
    RequestRecord,
    ServiceRecord,
    ServiceSpec,
)

__all__ = [
    "attach_feedback",
    "find_service",
    "parse_label",
    "request_json",
    "service_for_run",
]


def find_service(storage: BaseStorage, ref: str | int) -> ServiceRecord:
    """A service by name, or by id when no service has that (all-digit) name.

    Raises:
        ServiceNotFoundError: No such service.
    """
    if isinstance(ref, int):
        return storage.get_service(ref)
    try:
        return storage.get_service_by_name(ref)
    except ServiceNotFoundError:
        if not ref.isdigit():
            raise
        return storage.get_service(int(ref))


def service_for_run(
    storage: BaseStorage, run: str, *, name: str | None = None, seed: int = 0
) -> ServiceRecord:
    """The service of a run: the one named ``name`` (default: the run's name) if it exists,
    else a new one serving the run's champion, so that serving again keeps every record.

    Raises:
        RunNotFoundError: No such run.
        RunStateError: The run has no champion yet (no complete variant), or the service
            called ``name`` serves another run.
    """
    record = find_run(storage, run)
    wanted = name or record.name
    try:
        found = storage.get_service_by_name(wanted)
    except ServiceNotFoundError:
        found = None
    if found is not None:
        if found.run_id != record.id:
            raise RunStateError(f"service {wanted!r} serves another run (id {found.run_id})")
        return found
    champion = champion_of(storage.list_variants(record.id))
    if champion is None:
        raise RunStateError(f"run {record.name!r} has no champion yet: nothing to serve")
    spec = ServiceSpec(name=wanted, run_id=record.id, champion_id=champion.id, seed=seed)
    return storage.get_service(storage.create_service(spec))


def parse_label(text: str) -> Any:
    """A label typed on the command line: JSON when it parses, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def attach_feedback(
    storage: BaseStorage,
    request_id: int,
    *,
    label: Any = None,
    score: float | None = None,
    by: str,
    service_id: int | None = None,
) -> RequestRecord:
    """Attach a label and/or a score in [0, 1] to a served request (replacing earlier ones).

    Args:
        service_id: Refuse a request of another service (as if it did not exist).

    Returns:
        The request with its feedback.

    Raises:
        RequestNotFoundError: No such request (in that service).
        StorageError: Neither a label nor a score, a score outside [0, 1], or a label that is
            not JSON or too large.
    """
    if label is None and score is None:
        raise StorageError("give a label, a score in [0, 1], or both")
    if service_id is not None:
        request = storage.get_service_request(request_id)
        if request.service_id != service_id:
            raise RequestNotFoundError(f"request {request_id} not found in this service")
    storage.set_request_feedback(request_id, label=label, feedback=score, by=by)
    return storage.get_service_request(request_id)


def request_json(record: RequestRecord) -> dict[str, Any]:
    """A request as the HTTP API and ``--json`` show it."""

    def when(moment: Any) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "id": record.id,
        "variant": record.variant_id,
        "arm": record.arm,
        "shadow_of": record.shadow_of,
        "inputs": record.inputs,
        "output": record.output,
        "error": record.error,
        "latency_s": record.latency,
        "cost": record.cost,
        "created_at": when(record.created_at),
        "answered_at": when(record.answered_at),
        "label": record.label,
        "feedback": record.feedback,
        "feedback_by": record.feedback_by,
        "feedback_at": when(record.feedback_at),
    }
