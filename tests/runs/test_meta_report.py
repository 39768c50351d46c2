"""The archive part of a meta agent's report is bounded: summaries of the latest variants, the
few ``meta_info`` keys meta agents read, as many entries as fit in ``report_archive_bytes``."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hyperagents.improvers import ImproveResult
from hyperagents.runs import Run, RunConfig
from hyperagents.runs._report import (
    SUMMARY_KEYS,
    SUMMARY_TEXT_CHARS,
    SUMMARY_VALUE_BYTES,
    archive_summary,
)
from hyperagents.storages import InMemoryStorage, VariantRecord, VariantState

from toytask import TUNABLE_TASK_AGENT, ToyTask


def offline_like_info(generation: int) -> dict[str, Any]:
    """A meta_info as large as the offline agent's (about 2 KB), plus a long summary."""
    params = {f"p{i}": i * 0.1 + generation for i in range(20)}
    return {
        "agent": "offline-meta-agent",
        "operator": "perturb",
        "changes": {"p1": [0.1, 0.2]},
        "params": params,
        "meta": {f"k{i}": i / 3 for i in range(20)},
        "adaptation": {"step_scale": [0.1, 0.2, 0.3]},
        "evidence": [{"variant": i, "outcome": "success", "weight": 0.5} for i in range(20)],
        "summary": "x" * 5000,
        "reason": "r",
    }


def variants(n: int) -> list[VariantRecord]:
    return [
        VariantRecord(
            id=1000 + g,
            run_id=1,
            generation=g,
            parent_id=None if g == 0 else 1000 + g // 2,
            program_id="p",
            state=VariantState.COMPLETE if g % 7 else VariantState.INVALID,
            scores={"train": 0.5, "val": 0.25, "test": 0.9},
            meta_info=offline_like_info(g) if g else {"seed": True},
        )
        for g in range(n)
    ]


def test_a_large_archive_gives_bounded_summaries_of_its_latest_variants() -> None:
    archive = variants(1000)
    whole = json.dumps([{"meta_info": dict(v.meta_info)} for v in archive[-500:]])
    shown = archive_summary(archive, entries=500, max_bytes=64 * 1024)
    size = len(json.dumps(shown))
    assert size <= 64 * 1024 < len(whole)
    # The latest that fit, in order, with run-local ids.
    assert [e["generation"] for e in shown] == list(range(1000 - len(shown), 1000))
    assert len(shown) > 50
    last = shown[-1]
    assert last["variant_id"] == 999 and last["parent_id"] == 499
    assert last["state"] == "complete" and last["scores"] == {"train": 0.5, "val": 0.25}
    assert next(e for e in shown if e["generation"] == 994)["state"] == "invalid"
    info = last["meta_info"]
    assert set(info) <= {*SUMMARY_KEYS, "omitted"}
    assert info["operator"] == "perturb" and info["changes"] == {"p1": [0.1, 0.2]}
    assert info["params"] == archive[-1].meta_info["params"]  # what the offline agent reads
    assert info["summary"] == "x" * (SUMMARY_TEXT_CHARS - 1) + "…"
    assert "meta" not in info and "evidence" not in info and "agent" not in info


def test_a_value_too_large_is_left_out_and_named() -> None:
    big = [VariantRecord(1, 1, 0, None, "p", VariantState.COMPLETE, meta_info={"operator": "o"})]
    huge = {f"p{i}": i for i in range(SUMMARY_VALUE_BYTES)}
    big.append(VariantRecord(2, 1, 1, 1, "p", VariantState.COMPLETE, meta_info={"params": huge}))
    shown = archive_summary(big, entries=10, max_bytes=10_000)
    assert shown[1]["meta_info"] == {"omitted": ["params"]}
    assert shown[0]["meta_info"] == {"operator": "o"} and shown[1]["parent_id"] == 0


def test_a_structural_edit_record_is_shown_for_crossover() -> None:
    """The offline agent's record of a code edit (bounded by the agent) reaches other jobs."""
    record = {"kind": "lift", "function": "solve", "old": "2.5", "new": 'PARAMS["solve_c1"]'}
    info = {"operator": "structure", "structure": record, "meta": {"big": "x" * 5000}}
    archive = [VariantRecord(1, 1, 0, None, "p", VariantState.COMPLETE, meta_info=info)]
    shown = archive_summary(archive, entries=10, max_bytes=10_000)
    assert shown[0]["meta_info"] == {"operator": "structure", "structure": record}


def test_the_limits_cut_exactly() -> None:
    archive = variants(30)
    every = archive_summary(archive, entries=30, max_bytes=10**9)
    assert len(every) == 30
    cap = len(json.dumps(every[-4:]))
    assert archive_summary(archive, entries=30, max_bytes=cap) == every[-4:]
    assert archive_summary(archive, entries=30, max_bytes=cap - 1) == every[-3:]
    assert archive_summary(archive, entries=2, max_bytes=10**9) == every[-2:]
    assert archive_summary(archive, entries=0, max_bytes=10**9) == []
    assert archive_summary(archive, entries=30, max_bytes=1) == []


def test_entries_kept_from_earlier_reports_give_the_same_summary_in_fresh_objects() -> None:
    archive = variants(300)
    cache: dict[Any, str] = {}
    fresh = archive_summary(archive, entries=200, max_bytes=64 * 1024)
    first = archive_summary(archive, entries=200, max_bytes=64 * 1024, cache=cache)
    assert first == fresh and cache
    first[-1]["meta_info"]["operator"] = "changed by whoever got the report"
    first[-1]["scores"].clear()
    again = archive_summary(archive, entries=200, max_bytes=64 * 1024, cache=cache)
    assert again == fresh
    # What an entry shows changes with the variant's reported state and scores.
    settled = [*archive[:-1], replace(archive[-1], scores={"val": 0.75})]
    changed = archive_summary(settled, entries=200, max_bytes=64 * 1024, cache=cache)
    assert changed[-1]["scores"] == {"val": 0.75}
    assert changed == archive_summary(settled, entries=200, max_bytes=64 * 1024)


def test_the_engine_gives_meta_agents_the_bounded_archive() -> None:
    run = Run.create(
        task=ToyTask(task_agent=TUNABLE_TASK_AGENT),
        seed=0,
        storage=InMemoryStorage(),
        config=RunConfig.parse({"subset_size": 10, "report_archive_bytes": 3000}),
    )
    run.optimize(0)
    for generation in range(1, 9):
        job = run.ask()
        edit = TUNABLE_TASK_AGENT.replace('"t": 0.2', f'"t": 0.{generation + 1}')
        child = job.request.program.with_files({"task_agent.py": edit})
        run.tell(job, ImproveResult(program=child, meta_info=offline_like_info(generation)))
    report = run.ask().request.report
    archive = report["archive"]
    assert len(json.dumps(archive)) <= 3000
    assert 0 < len(archive) < 9 and archive[-1]["generation"] == 8
    assert archive[-1]["meta_info"]["changes"] == {"p1": [0.1, 0.2]}
    # The parent's own meta_info is given whole.
    parent = report["parent"]
    by_generation = {v.generation: v for v in run.variants()}
    assert parent["meta_info"] == dict(by_generation[parent["generation"]].meta_info)
