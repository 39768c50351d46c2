"""A manual-approval run driven end to end from the command line: children that would become
champion wait; one is approved (then promoted: champion, test-evaluated, a parent), one is
rejected (never a parent); overrides pin the next parent and ban a lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hyperagents.runs import champion_of
from hyperagents.storages import RDBStorage, VariantState

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_STORAGE"}
    done = subprocess.run(
        [sys.executable, "-m", "hyperagents", *args],
        cwd=cwd,
        env={**env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_manual_approval_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first = _cli(
        tmp_path,
        *("run", "--task", TOY, "--mode", "frozen-meta", "--approval", "manual"),
        *("-g", "10", "-w", "1", "--name", "m", "--subset-size", "10", "--storage", url),
    )
    assert "pending" in first.stdout  # status: states … pending N
    store = RDBStorage(url)
    run = store.get_run_by_name("m")
    waiting = store.list_variants(run.id, states=[VariantState.PENDING])
    assert len(waiting) >= 2
    assert all(v.reason and v.reason.startswith("awaiting approval") for v in waiting)
    assert all("val" in v.scores and "test" not in v.scores for v in waiting)
    # The end of the run lists what waits, why, and how to decide.
    said = " ".join(first.stderr.split())
    assert f"{len(waiting)} variant(s) of m wait for a person's decision:" in said
    for v in waiting:
        assert f"m/{v.generation} (variant {v.id}, val {v.scores['val']:.4f}): {v.reason}" in said
    assert f"hyperagents approve m/{waiting[0].generation} --storage {url} --note WHY" in said
    assert f"hyperagents reject m/{waiting[0].generation} --storage {url} --note WHY" in said
    champion = champion_of(store.list_variants(run.id))
    assert champion is not None and champion.id not in {v.id for v in waiting}
    listed = json.loads(
        _cli(tmp_path, "audit", "m", "--storage", url, "-k", "variant.pending", "-f", "json").stdout
    )
    assert {e["variant_id"] for e in listed["entries"]} == {v.id for v in waiting}
    assert {e["by"] for e in listed["entries"]} == {"approval policy"}

    best, worst = max(waiting, key=lambda v: v.scores["val"]), waiting[0]
    if worst.id == best.id:
        worst = waiting[1]
    _cli(tmp_path, "approve", str(best.id), "--storage", url, "--note", "looks right")
    _cli(tmp_path, "reject", f"m/{worst.generation}", "--storage", url, "-m", "suspicious jump")
    approved, rejected = store.get_variant(best.id), store.get_variant(worst.id)
    assert approved.state is VariantState.COMPLETE
    assert rejected.state is VariantState.REJECTED and rejected.reason is not None
    assert "suspicious jump" in rejected.reason and "command line" in rejected.reason
    again = subprocess.run(
        [sys.executable, "-m", "hyperagents", "approve", str(worst.id), "--storage", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1 and "not waiting for approval" in again.stderr

    # Promoted: the approved child is the champion once the run goes on, and gets its test.
    _cli(tmp_path, "resume", "m", "-g", "10", "--storage", url)
    variants = store.list_variants(run.id)
    champion = champion_of(variants)
    assert champion is not None and champion.scores["val"] >= approved.scores["val"]
    approved = store.get_variant(best.id)
    assert "test" in approved.scores  # it was the champion when the run settled it
    # Rejected: never used as a parent.
    assert not any(v.parent_id == worst.id for v in variants)
    trail = [
        (e["kind"], e["by"])
        for e in json.loads(
            _cli(
                tmp_path, "audit", "m", "--storage", url, "--variant", str(best.id), "-f", "json"
            ).stdout
        )["entries"]
    ]
    kinds = [k for k, _ in trail]
    assert (
        kinds.index("variant.pending")
        < kinds.index("variant.approved")
        < kinds.index("champion.test")
    )
    assert any(k == "variant.approved" and "command line" in by for k, by in trail)
    store.close()


def test_pin_and_ban_steer_parent_selection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    _cli(
        tmp_path,
        "run",
        "--task",
        TOY,
        "-g",
        "6",
        "-w",
        "1",
        "--name",
        "p",
        "--subset-size",
        "10",
        "--storage",
        url,
    )
    store = RDBStorage(url)
    run = store.get_run_by_name("p")
    complete = [v for v in store.list_variants(run.id) if v.state is VariantState.COMPLETE]
    pinned = complete[1] if len(complete) > 1 else complete[0]
    _cli(tmp_path, "pin", str(pinned.id), "--storage", url)
    _cli(tmp_path, "resume", "p", "-g", "1", "--storage", url)
    newest = store.list_variants(run.id)[-1]
    assert newest.parent_id == pinned.id and newest.generation == 7
    assert store.get_run(run.id).pinned_parent is None  # used once
    banned = complete[-1]
    if banned.parent_id is None:
        return
    _cli(tmp_path, "ban", str(banned.id), "--storage", url, "-m", "dead end")
    _cli(tmp_path, "resume", "p", "-g", "8", "--storage", url)
    variants = store.list_variants(run.id)
    lineage = {banned.id}
    for v in variants:
        if v.parent_id in lineage:
            lineage.add(v.id)
    assert not any(v.parent_id in lineage for v in variants if v.generation > 7)
    kinds = [e.kind for e in store.list_events(run.id)]
    assert "variant.pinned" in kinds and "variant.banned" in kinds
    store.close()
