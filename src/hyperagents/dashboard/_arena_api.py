"""The route of an arena's series: the suite's growth and the code agents' score drops and
recoveries, round by round (for the arena's page and plots)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from hyperagents.arena import arena_series
from hyperagents.dashboard._deps import RunDep, StorageDep, require_token
from hyperagents.dashboard._responses import error_response, json_response
from hyperagents.storages import BaseStorage, RunRecord

__all__ = ["arena_view", "router"]

router = APIRouter(dependencies=[Depends(require_token)])


def arena_view(storage: BaseStorage, record: RunRecord) -> dict[str, Any]:
    """An arena's series, per round: suite size and cases added, each code agent's score
    before the round, on the grown suite (the drop) and after its children (the recovery),
    the test agents' hard cases, replacements; then the held-out result and the failures."""
    series = arena_series(storage, record.id)
    heldout = storage.list_events(record.id, kinds=["arena.heldout"], newest_first=True, limit=1)
    failures = storage.list_events(record.id, kinds=["arena.agent_failed"])
    return {
        "run": record.name,
        "config": dict(record.config),
        "rounds": [
            {
                "round": s["round"],
                "suite_size": s["suite_size"],
                "added": s["added"],
                "proposed": s["proposed"],
                "before": s["scores_before"],
                "drop": s["scores_grown"],
                "after": s["scores"],
                "test_hard": s["test_hard"],
                "champion": s["champion"],
                "champion_score": s["champion_score"],
                "replaced": s.get("replaced", []),
                "evaluations": s["evaluations"],
            }
            for s in series
        ],
        "heldout": dict(heldout[0].data) if heldout else None,
        "failures": [dict(event.data) for event in failures[-200:]],
    }


@router.get("/api/runs/{run}/arena")
def arena(record: RunDep, storage: StorageDep) -> Response:
    """An arena's round-by-round series (400 for a run that is not an arena)."""
    if record.mode != "arena":
        return error_response(400, f"run {record.name!r} is not an arena")
    return json_response(arena_view(storage, record))
