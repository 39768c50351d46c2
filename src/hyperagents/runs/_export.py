"""Flat rows of variants and runs: what ``export``, the report and the dashboard show.

The champion is the archive view's (:func:`hyperagents.archive.champion_of`, re-exported here).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hyperagents.archive import ArchiveView, champion_of
from hyperagents.constitution import objective
from hyperagents.runs._config import RunConfig
from hyperagents.runs._crew import engine_label
from hyperagents.storages import RunRecord, VariantRecord
from hyperagents.tasks import stored_task_options

__all__ = [
    "EXPORT_COLUMNS",
    "champion_of",
    "csv_cell",
    "csv_text",
    "run_export",
    "run_identity",
    "run_info",
    "run_summary",
    "variant_row",
]

#: The columns of :func:`variant_row`, in order.
EXPORT_COLUMNS = (
    "variant_id",
    "generation",
    "parent_id",
    "state",
    "reason",
    "train_subset",
    "train",
    "val",
    "test",
    "wall_per_instance",
    "cpu_seconds",
    "peak_memory_mb",
    "errors",
    "operator",
    "program_id",
    "created_at",
    "alignment",
    "objective",
    "engine",
    "worker",
)


def variant_row(v: VariantRecord) -> dict[str, Any]:
    """One variant as a flat row: scores per stage, summed costs, operator, state."""
    evals = {k: m for k, m in v.metrics.items() if k in ("train_subset", "train", "val")}
    last = evals.get("val") or evals.get("train") or evals.get("train_subset") or {}
    return {
        "variant_id": v.id,
        "generation": v.generation,
        "parent_id": v.parent_id,
        "state": v.state.name.lower(),
        "reason": v.reason,
        **{stage: v.scores.get(stage) for stage in ("train_subset", "train", "val", "test")},
        "wall_per_instance": last.get("wall_per_instance"),
        "cpu_seconds": sum(float(m.get("cpu_seconds") or 0) for m in evals.values()),
        "peak_memory_mb": max(
            (float(m.get("peak_memory_mb") or 0) for m in evals.values()), default=None
        ),
        "errors": sum(int(m.get("errors") or 0) for m in evals.values()),
        "operator": v.meta_info.get("operator"),
        "program_id": v.program_id,
        "created_at": v.created_at.isoformat() if v.created_at else None,
        "alignment": (v.metrics.get("constitution") or {}).get("alignment"),
        "objective": objective(v.scores, v.metrics),
        "engine": engine_label(v.engine) or None,  # host:pid of the engine that made it
        "worker": v.worker,
    }


def run_identity(record: RunRecord) -> dict[str, Any]:
    """Who a run is: id, name, task (and the task options it was created with), mode, seed
    and status."""
    return {
        "id": record.id,
        "name": record.name,
        "task": record.task,
        "task_options": stored_task_options(record.config),
        "mode": record.mode,
        "seed": record.seed,
        "status": record.status.name.lower(),
    }


def run_info(record: RunRecord) -> dict[str, Any]:
    """A run's identity, config, state and free-form attributes as JSON."""
    return {
        **run_identity(record),
        "config": dict(record.config),
        "task_name": record.task_name,
        "experiment": record.experiment,
        "arm": record.arm,
        "target_generations": record.target_generations,
        "elapsed_seconds": record.elapsed_seconds,
        "pinned_parent": record.pinned_parent,
        "pinned_by": record.pinned_by,
        "banned": sorted(record.banned),
        "attrs": dict(record.attrs),
        "created_at": record.created_at.isoformat(),
    }


def run_export(record: RunRecord, variants: Iterable[VariantRecord]) -> dict[str, Any]:
    """A run and all its variants (rows plus scores, metrics and meta info) as JSON."""
    return {
        "run": run_info(record),
        "variants": [
            {
                **variant_row(v),
                "scores": dict(v.scores),
                "metrics": dict(v.metrics),
                "meta_info": dict(v.meta_info),
            }
            for v in variants
        ],
    }


def run_summary(
    record: RunRecord, view: ArchiveView, config: RunConfig, llm_usage: Mapping[str, Any]
) -> dict[str, Any]:
    """What :meth:`Run.summary` says: best scores per split, archive size, generations, counts
    by state, time, budgets and the LLM's use (``llm_usage`` as the storage counts it)."""
    best = view.champion()
    seed = view.seed()
    counts = view.state_counts()
    return {
        "run": record.name,
        "task": record.task,
        "task_options": stored_task_options(record.config),
        "mode": record.mode,
        "level": config.level,
        "seed": record.seed,
        "status": record.status.name.lower(),
        "generations": view.last_generation(),
        "target_generations": record.target_generations,
        "archive_size": counts.get("complete", 0),
        "variants": len(view),
        "states": counts,
        "champion": None
        if best is None
        else {"variant_id": best.id, "generation": best.generation, "scores": dict(best.scores)},
        "seed_scores": dict(seed.scores) if seed else {},
        "best_scores": view.best_scores(),
        "elapsed_seconds": record.elapsed_seconds,
        "evaluations": view.evaluations(),
        "max_seconds": config.max_seconds,
        "max_evaluations": config.max_evaluations,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "llm": _llm_summary(config, llm_usage),
        "training": training_totals(config, view),
    }


def training_totals(config: RunConfig, variants: Iterable[VariantRecord]) -> dict[str, Any] | None:
    """The run's levers and what its children chose and trained: children per lever taken,
    trainings per state (done, failed, skipped), examples per source over the trained ones
    (None: no child recorded a choice, e.g. a baseline arm)."""
    levers: dict[str, int] = {}
    states: dict[str, int] = {}
    sources: dict[str, int] = {}
    for variant in variants:
        record = variant.metrics.get("training")
        if not isinstance(record, Mapping):
            continue
        lever = str(record.get("lever"))
        levers[lever] = levers.get(lever, 0) + 1
        state = str(record.get("state"))
        if state != "none":
            states[state] = states.get(state, 0) + 1
        if state == "done":
            for source, n in (record.get("sources") or {}).items():
                sources[source] = sources.get(source, 0) + int(n)
    if not levers:
        return None
    return {"levers": config.levers, "chosen": levers, "trainings": states, "sources": sources}


def _llm_summary(config: RunConfig, usage: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's LLM use and budgets (None for a run without a model)."""
    if config.llm is None and config.replay_of is None and not (usage["calls"] or usage["errors"]):
        return None
    return {
        "model": config.llm,
        "replay_of": config.replay_of,
        **usage,
        "max_cost": config.max_cost,
        "max_tokens": config.max_tokens,
    }


#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` fit for a CSV cell a spreadsheet opens: text starting like a formula (``=``,
    ``+``, ``-``, ``@``, tab, carriage return) gets a leading single quote, so it is shown, never
    evaluated. Numbers and other values are unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text with a header (missing values empty; text cells that a spreadsheet
    would take for a formula quoted, see :func:`csv_cell`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: csv_cell(value) for key, value in row.items()})
    return buffer.getvalue()
