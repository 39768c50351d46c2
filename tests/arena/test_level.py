"""The arena as level 4: a run of the level records a variant per round within its evaluation
budget, never shows the held-out suite to an agent, resumes after a kill or a stop as if never
stopped, sits in ``experiment --levels`` beside levels 1-3 with every champion scored on the
held-out suite, and is refused for a task without an oracle."""

from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from arena_helpers import RecordingSandbox, level_variants, live_email_task
from hyperagents.archive import search_evaluations
from hyperagents.arena import (
    ArenaLevel,
    arena_suite,
    champion_heldout,
    heldout_cases,
    level_preset,
)
from hyperagents.exceptions import ConfigError, SandboxError
from hyperagents.reports import ExperimentSpec, build_report, run_experiment
from hyperagents.runs import StartRequest, apply_level
from hyperagents.storages import (
    BaseStorage,
    InMemoryStorage,
    RDBStorage,
    RunStatus,
    VariantState,
)
from hyperagents.tasks import load_task

from cli_helpers import cli

CONFIG = {"sandbox": "process", "max_evaluations": 20}


def _drive(store: BaseStorage, *, rounds: int = 3, **kwargs: Any) -> int:
    task = load_task("email_validation", {})
    record = ArenaLevel().drive(
        task=task, name="lv", seed=0, storage=store, config=CONFIG, generations=rounds, **kwargs
    )
    return record.id


def test_the_arena_level_is_a_preset_with_a_driver_not_a_mode() -> None:
    preset = level_preset()
    assert preset.level == "arena" and preset.mode is None and preset.driver is not None
    with pytest.raises(ConfigError, match="not a mode of the run engine"):
        apply_level("arena", {})
    with pytest.raises(ConfigError, match="hyperagents run --level arena"):
        StartRequest(task="email_validation", level="arena").run_config()


def test_a_run_of_the_level_records_a_variant_per_round_within_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = RecordingSandbox(kind="process")
    monkeypatch.setattr("hyperagents.arena._engine.arena_sandbox", lambda *a, **k: sandbox)
    store = InMemoryStorage()
    run_id = _drive(store, rounds=10)
    record = store.get_run(run_id)
    assert (record.mode, record.status) == ("arena", RunStatus.COMPLETE)
    variants = store.list_variants(run_id)
    rounds = store.list_events(run_id, kinds=["arena.round"])
    assert [v.generation for v in variants] == list(range(len(rounds) + 1))
    assert all(v.state is VariantState.COMPLETE and "val" in v.scores for v in variants)
    assert [v.parent_id for v in variants] == [None] + [v.id for v in variants[:-1]]
    # Each round's variant costs the round's code agent evaluations (+ its val, if new).
    spent = [int(e.data["evaluations"]["screens"] + e.data["evaluations"]["scores"]
                 + e.data["evaluations"]["children"]) for e in rounds]  # fmt: skip
    for variant, before, after in zip(variants[1:], [0, *spent[:-1]], spent, strict=True):
        new_val = variant.program_id != store.get_variant(variant.parent_id or 0).program_id
        assert search_evaluations(variant) == after - before + new_val
    total = sum(search_evaluations(v) + ("test" in v.scores) for v in variants)
    assert total <= CONFIG["max_evaluations"] and len(rounds) < 10  # the budget ended it
    # The held-out suite never entered the sandbox while the agents played.
    task = load_task("email_validation", {})
    heldout = {case["input"] for case in heldout_cases(task, seed=0, size=300)}
    assert not any(heldout & strings for strings in sandbox.seen)
    scored = champion_heldout(store, run_id, task=task, seed=0, size=300, sandbox="process")
    assert scored is not None and 0.0 <= scored["heldout"] <= 1.0


def test_a_killed_or_stopped_run_resumes_as_one_never_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = InMemoryStorage()
    whole_id = _drive(whole)
    killed = InMemoryStorage()
    monkeypatch.setattr(
        "hyperagents.arena._engine.arena_sandbox",
        lambda *a, **k: RecordingSandbox(fail_at=9, kind="process"),
    )
    with pytest.raises(SandboxError):
        _drive(killed)
    assert killed.get_run(1).status is RunStatus.FAILED
    monkeypatch.undo()
    asked = []
    stopped_id = _drive(killed, stop=lambda: asked.append(1) or len(asked) > 1)
    assert killed.get_run(stopped_id).status is RunStatus.STOPPED
    _drive(killed)
    assert killed.get_run(stopped_id).status is RunStatus.COMPLETE
    assert level_variants(killed, stopped_id) == level_variants(whole, whole_id)


def test_an_experiment_compares_the_levels_on_the_heldout_suite(tmp_path: Path) -> None:
    store = InMemoryStorage()
    spec = ExperimentSpec.parse(
        name="lv", task="email_validation", levels="autoresearch,arena", seeds=2,
        generations=20, config=CONFIG,
    )  # fmt: skip
    records = run_experiment(spec, storage=store, workers=2)
    assert [(r.name, r.arm, r.mode, r.status) for r in records] == [
        ("lv-autoresearch-s0", "autoresearch", "frozen-meta", RunStatus.STOPPED),
        ("lv-autoresearch-s1", "autoresearch", "frozen-meta", RunStatus.STOPPED),
        ("lv-arena-s0", "arena", "arena", RunStatus.COMPLETE),
        ("lv-arena-s1", "arena", "arena", RunStatus.COMPLETE),
    ]
    # Each champion scored on the held-out suite is its run's best val variant at the equal
    # budget (the search evaluations of the run that made the fewest).
    spent = [sum(search_evaluations(v) for v in store.list_variants(r.id)) for r in records]
    for r in records:
        scored = store.list_events(r.id, kinds=["level.heldout"])[-1].data
        made = [v for v in store.list_variants(r.id) if v.generation <= scored["generation"]]
        assert sum(search_evaluations(v) for v in made) <= min(spent)
        assert scored["val"] == max(v.scores.get("val", -1.0) for v in made)
    report = build_report("lv", storage=store, out=tmp_path / "report")
    heldout = report.statistics["heldout"]
    assert set(heldout) == {"autoresearch", "arena"}
    assert all(entry["runs"] == 2 and entry["size"] == 300 for entry in heldout.values())
    costs = report.statistics["costs"]
    assert all(0 < costs[arm]["evaluations"] <= 20 for arm in ("autoresearch", "arena"))
    markdown = (tmp_path / "report" / "report.md").read_text()
    table = markdown.split("## Held-out adversarial suite", 1)[1].split("##", 1)[0]
    assert "| autoresearch | 2 |" in table and "| arena | 2 |" in table
    # Run again: nothing is redone (every run is complete or out of budget, each scored once).
    events = len(store.list_events(records[2].id))
    run_experiment(spec, storage=store, workers=2)
    assert len(store.list_events(records[2].id)) == events


def test_a_task_without_an_oracle_is_refused(tmp_path: Path) -> None:
    spec = ExperimentSpec.parse(
        name="x", task="shipping", levels="arena", seeds=1, generations=2, config=CONFIG
    )
    store = InMemoryStorage()
    with pytest.raises(ConfigError, match="needs a task with a trusted oracle"):
        run_experiment(spec, storage=store)
    assert store.list_runs() == []
    db = tmp_path / "r.db"
    refused = cli("run", "--task", "shipping", "--level", "arena", "--storage",
                  f"sqlite:///{db}", cwd=tmp_path)  # fmt: skip
    assert refused.returncode != 0 and "needs a task with a trusted oracle" in refused.stderr
    assert not db.exists()


def test_the_command_line_runs_the_arena_level(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    args = ("run", "--task", "email_validation", "--level", "arena", "-g", "2", "--sandbox",
            "process", "--storage", db, "-q")  # fmt: skip
    done = cli(*args, "--workers", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"status": "complete"' in done.stdout and '"rounds": 2' in done.stdout
    assert '"heldout":' in done.stdout
    store = RDBStorage(db)
    try:  # it played with the workers it was given
        run = store.get_run_by_name("email_validation-arena-s0")
        assert [engine.workers for engine in store.list_engines(run.id)] == [2]
    finally:
        store.close()
    refused = cli(*args, "--selector", "best", cwd=tmp_path)
    assert refused.returncode != 0 and "does not take --selector" in refused.stderr


def test_an_interrupted_experiment_goes_on_with_its_arena_arm() -> None:
    spec = ExperimentSpec.parse(
        name="ki", task="email_validation", levels="autoresearch,arena", seeds=1,
        generations=40, config={**CONFIG, "max_evaluations": 40},
    )  # fmt: skip
    whole = InMemoryStorage()
    run_experiment(spec, storage=whole, workers=2)

    store = InMemoryStorage()

    def interrupt_once_the_arena_played_a_round() -> None:
        while True:
            runs = [r for r in store.list_runs() if r.mode == "arena"]
            if runs and store.list_events(runs[0].id, kinds=["arena.round"]):
                _thread.interrupt_main()  # Ctrl-C
                return
            time.sleep(0.05)

    threading.Thread(target=interrupt_once_the_arena_played_a_round, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec, storage=store, workers=2)
    arena = store.get_run_by_name("ki-arena-s0")
    assert arena.status is RunStatus.STOPPED  # after the round in flight
    whole_arena = whole.get_run_by_name("ki-arena-s0").id
    assert len(store.list_variants(arena.id)) < len(whole.list_variants(whole_arena))
    records = run_experiment(spec, storage=store, workers=2)
    assert all(r.status in (RunStatus.STOPPED, RunStatus.COMPLETE) for r in records)
    assert level_variants(store, arena.id) == level_variants(whole, whole_arena)


def test_a_task_wrapped_for_live_data_plays_the_arena_level() -> None:
    # The service's live wrapper hands on the arena protocol (arena(), oracle()) it wraps.
    live = live_email_task("a..b@example.org", valid=False)
    ArenaLevel().check(live)
    store = InMemoryStorage()
    record = ArenaLevel().drive(
        task=live, name="live", seed=0, storage=store, config=CONFIG, generations=1
    )
    assert record.status is RunStatus.COMPLETE and record.task == "email_validation"
    (round_one,) = store.list_events(record.id, kinds=["arena.round"])
    suite = {case["input"]: case for case in arena_suite(store, record.id)}
    assert suite["a..b@example.org"]["valid"] is False  # the live example is in the suite
    assert round_one.data["proposed"] > 0 and len(store.list_variants(record.id)) == 2
