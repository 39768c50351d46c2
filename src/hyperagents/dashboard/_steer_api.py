"""The routes that change things, each a call of the application service: start, stop, resume
and delete a run; approve, reject, pin and ban a variant; try a variant's task agent; post a
label for a train instance (training data).

Engines run in processes of their own, started by the service: they keep going when the
dashboard stops, and the dashboard never runs agent code itself.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from hyperagents.dashboard import _views as views
from hyperagents.dashboard._bodies import (
    TRY_BODY_LIMIT,
    DecisionBody,
    DeleteBody,
    LabelBody,
    ResumeBody,
    StartBody,
    StopBody,
    TryBody,
)
from hyperagents.dashboard._deps import (
    CallerDep,
    RemoteDep,
    RunDep,
    ServiceDep,
    VariantDep,
    require_token,
)
from hyperagents.dashboard._responses import error_response, json_response
from hyperagents.runs import Decision, ResumeRequest, StartRequest

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_token)])


@router.post("/api/runs", status_code=201)
def start(body: StartBody, service: ServiceDep, remote: RemoteDep) -> Response:
    """Create a run and start an engine process that drives it."""
    request = StartRequest(**body.model_dump(), attrs={"started_from": "dashboard"})
    record = service.start_detached(request, remote=remote)
    return json_response(views.run_row(service.storage, record), 201)


@router.post("/api/runs/{run}/stop")
def stop(
    record: RunDep, service: ServiceDep, who: CallerDep, body: StopBody | None = None
) -> Response:
    """Stop a run: gracefully, or at once (``now``)."""
    stopped = service.stop(record, who=who, now=body is not None and body.now)
    return json_response(views.run_row(service.storage, stopped.run) | {"message": stopped.message})


@router.post("/api/runs/{run}/resume")
def resume(record: RunDep, body: ResumeBody, service: ServiceDep, remote: RemoteDep) -> Response:
    """Start an engine process that continues a run."""
    request = ResumeRequest(
        run=record.id, generations=body.generations, workers=body.workers, join=body.join
    )
    resumed = service.resume_detached(request, remote=remote)
    return json_response(views.run_row(service.storage, resumed), 202)


@router.delete("/api/runs/{run}")
def delete(record: RunDep, body: DeleteBody, service: ServiceDep) -> Response:
    """Delete a run, its name typed to confirm."""
    service.delete(record, confirm=body.confirm)
    return json_response({"deleted": record.name})


@router.post("/api/runs/{run}/labels", status_code=201)
def post_label(record: RunDep, body: LabelBody, service: ServiceDep, who: CallerDep) -> Response:
    """Post a person's label for a train instance of the run (never val or test)."""
    stored = service.post_label(record, body.instance_id, body.output, who=who)
    return json_response(stored, 201)


@router.post("/api/variants/{variant_id}/try", max_body_size=TRY_BODY_LIMIT)
def try_it(record: VariantDep, body: TryBody, service: ServiceDep) -> Response:
    """Run the variant's task agent on an input, in its run's sandbox."""
    return json_response(service.try_variant(record, body.inputs))


# after /try: the same path shape, matched in order
@router.post("/api/variants/{variant_id}/{decision}")
def decide(
    record: VariantDep,
    decision: str,
    service: ServiceDep,
    who: CallerDep,
    body: DecisionBody | None = None,
) -> Response:
    """Approve, reject, pin or ban a variant."""
    try:
        chosen = Decision(decision)
    except ValueError:
        return error_response(404, f"unknown decision {decision!r}")
    note = body.note if body is not None else None
    decided = service.decide(record, chosen, who=who, note=note)
    return json_response(views.variant_detail(service.storage, decided))
