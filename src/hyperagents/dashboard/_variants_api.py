"""The routes that show one variant: its detail, a file, its diff (and the diff as a ZIP), its
LLM transcript, and what trying it offers to start from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from hyperagents.dashboard import _views as views
from hyperagents.dashboard._deps import (
    OptionalId,
    ServiceDep,
    StorageDep,
    VariantDep,
    require_token,
)
from hyperagents.dashboard._responses import attachment, json_response
from hyperagents.exceptions import VariantNotFoundError

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_token)])

FilePath = Annotated[str, Query(min_length=1, max_length=1000)]


@router.get("/api/variants/{variant_id}")
def variant(record: VariantDep, storage: StorageDep) -> Response:
    """Everything about the variant but file contents and the LLM transcript."""
    return json_response(views.variant_detail(storage, record))


@router.get("/api/variants/{variant_id}/file")
def variant_file(record: VariantDep, storage: StorageDep, path: FilePath) -> Response:
    """One file of the variant's program, highlighted (looked up in its manifest only)."""
    if record.program_id is None:
        raise VariantNotFoundError(f"variant {record.id} has no program")
    return json_response(views.file_view(storage.get_program(record.program_id), path))


@router.get("/api/variants/{variant_id}/diff")
def variant_diff(record: VariantDep, storage: StorageDep, against: OptionalId = None) -> Response:
    """The variant's changes from its parent (or from ``against``), highlighted."""
    base, old, new = views.diff_sides(storage, record, against)
    query = "" if against is None else f"?against={against}"
    return json_response(
        {
            "variant": record.id,
            "against": None if base is None else base.id,
            **views.diff(old, new),
            "download": f"/api/variants/{record.id}/diff.zip{query}",
        }
    )


@router.get("/api/variants/{variant_id}/diff.zip")
def variant_diff_download(
    record: VariantDep, storage: StorageDep, against: OptionalId = None
) -> Response:
    """Both sides of the diff as a ZIP file (what a diff too large to show offers)."""
    base, old, new = views.diff_sides(storage, record, against)
    name = f"variant-{record.id}" + ("" if base is None else f"-vs-{base.id}")
    return Response(
        views.diff_archive(old, new),
        media_type="application/zip",
        headers=attachment(f"{name}.zip"),
    )


@router.get("/api/variants/{variant_id}/llm")
def variant_llm(record: VariantDep, storage: StorageDep) -> Response:
    """The variant's LLM transcript: every attempt."""
    calls = storage.list_llm_calls(record.run_id, variant_id=record.id)
    return json_response({"calls": views.llm_calls(calls)})


@router.get("/api/variants/{variant_id}/try")
def try_info(record: VariantDep, service: ServiceDep) -> Response:
    """What trying the variant offers to start from (a train instance's inputs)."""
    return json_response(service.try_example(record))
