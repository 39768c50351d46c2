"""The routes that show runs: the runs page (and its export), and a run's overview, archive,
lineage, export and the labels people posted for it."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from hyperagents.dashboard import _views as views
from hyperagents.dashboard._deps import RunDep, ServiceDep, StorageDep, require_token
from hyperagents.dashboard._responses import (
    attachment,
    error_response,
    json_response,
    safe_filename,
)
from hyperagents.runs import EXPORT_COLUMNS, csv_text, run_export, variant_row

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_token)])


def _unknown_format(fmt: str) -> Response:
    return error_response(404, f"unknown export format {fmt!r} (csv or json)")


@router.get("/api/runs")
def runs(service: ServiceDep) -> Response:
    """Every run, one row each, and the engines this dashboard started that still run."""
    storage = service.storage
    rows = [views.run_row(storage, r) for r in storage.list_runs()]
    return json_response({"runs": rows, "engines": service.engines()})


@router.get("/api/runs.{fmt}")
def export_runs(fmt: str, storage: StorageDep) -> Response:
    """The runs page as a download (csv or json)."""
    rows = [views.run_row(storage, r) for r in storage.list_runs()]
    if fmt == "csv":
        return Response(
            csv_text(rows, views.RUN_COLUMNS),
            media_type="text/csv",
            headers=attachment("runs.csv"),
        )
    if fmt == "json":
        return json_response({"runs": rows}, headers=attachment("runs.json"))
    return _unknown_format(fmt)


@router.get("/api/runs/{run}")
def run_overview(record: RunDep, storage: StorageDep) -> Response:
    """The run's overview: learning curve, budget, champion, progress, latest events."""
    return json_response(views.overview(storage, record))


@router.get("/api/runs/{run}/archive")
def run_archive(record: RunDep, storage: StorageDep) -> Response:
    """Every variant of the run as table rows."""
    return json_response(views.archive(storage, record))


@router.get("/api/runs/{run}/lineage")
def run_lineage(record: RunDep, storage: StorageDep) -> Response:
    """The run's archive as a laid-out tree."""
    return json_response(views.lineage(storage, record))


@router.get("/api/runs/{run}/labels")
def run_labels(record: RunDep, service: ServiceDep) -> Response:
    """The labels posted for the run: the latest output per train instance id."""
    return json_response({"labels": service.labels(record)})


@router.get("/api/runs/{run}/export.{fmt}")
def export_run(record: RunDep, fmt: str, storage: StorageDep) -> Response:
    """The run's variants as a download (csv or json)."""
    variants = storage.list_variants(record.id)
    disposition = attachment(f"{safe_filename(record.name)}.{fmt}")
    if fmt == "csv":
        return Response(
            csv_text((variant_row(v) for v in variants), EXPORT_COLUMNS),
            media_type="text/csv",
            headers=disposition,
        )
    if fmt == "json":
        return json_response(run_export(record, variants), headers=disposition)
    return _unknown_format(fmt)
