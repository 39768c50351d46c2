"""The run engine: modes, staged evaluation, validation, selection, resume, reproducibility."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError, DuplicateError, RunNotFoundError
from hyperagents.program import Program
from hyperagents.runs import Mode, Run, RunConfig
from hyperagents.storages import (
    InMemoryStorage,
    RunSpec,
    RunStatus,
    VariantRecord,
    VariantState,
)

from toytask import META_AGENT, ToyTask


def make_run(
    task: ToyTask | None = None,
    *,
    mode: Mode = Mode.HYPERAGENT,
    seed: int = 0,
    storage: Any = None,
    **config: Any,
) -> Run:
    return Run.create(
        task=task or ToyTask(),
        mode=mode,
        seed=seed,
        storage=storage or InMemoryStorage(),
        config=RunConfig.parse({"subset_size": 10, **config}),
    )


def fingerprint(run: Run) -> list[tuple[Any, ...]]:
    by_id = {v.id: v for v in run.variants()}
    return [
        (
            v.generation,
            by_id[v.parent_id].generation if v.parent_id else None,
            v.state,
            v.program_id,
            tuple(sorted(v.scores.items())),
            v.reason,
        )
        for v in run.variants()
    ]


def test_optimize_records_every_step() -> None:
    run = make_run()
    record = run.optimize(generations=6)
    assert record.status is RunStatus.COMPLETE
    variants = run.variants()
    assert [v.generation for v in variants] == list(range(7))
    assert all(v.state.is_terminal and v.owner is None for v in variants)
    seed = variants[0]
    assert seed.parent_id is None and set(seed.scores) == {"train_subset", "train", "val", "test"}
    complete = [v for v in variants if v.state is VariantState.COMPLETE]
    for v in complete:
        assert {"train_subset", "train", "val"} <= set(v.scores)
        assert 0.0 <= v.scores["val"] <= 1.0
        assert v.metrics["val"]["wall_per_instance"] is not None
        assert v.metrics["val"]["peak_memory_mb"] > 0
        assert v.metrics["val"]["errors"] == 0
        assert v.metrics["timing"]["engine_seconds"] >= 0
    evaluations = {e.stage: e for e in run.storage.list_evaluations(seed.id)}
    assert evaluations["train"].n == 40 and evaluations["train_subset"].n == 10
    assert evaluations["val"].n == 20 and evaluations["test"].n == 20
    kinds = {e.kind for e in run.storage.list_events(run.id)}
    assert {
        "run.created",
        "run.started",
        "variant.created",
        "variant.improved",
        "variant.validated",
        "variant.evaluated",
        "variant.completed",
        "champion.test",
        "run.completed",
    } <= kinds
    champion = run.champion()
    assert champion is not None and "test" in champion.scores
    assert champion.scores["val"] == max(v.scores["val"] for v in complete)


def test_the_toy_meta_agent_improves_the_task_agent() -> None:
    run = make_run(seed=3)
    run.optimize(generations=15)
    seed, champion = run.variants()[0], run.champion()
    assert champion is not None and champion.scores["val"] > seed.scores["val"] + 0.2


def test_same_seed_gives_identical_archive() -> None:
    a, b = make_run(seed=11), make_run(seed=11)
    a.optimize(generations=8)
    b.optimize(generations=8)
    assert fingerprint(a) == fingerprint(b)
    c = make_run(seed=12)
    c.optimize(generations=8)
    assert fingerprint(a) != fingerprint(c)


def test_parallel_generations_are_reproducible() -> None:
    a = make_run(seed=5, parallel_generations=2)
    b = make_run(seed=5, parallel_generations=2)
    a.optimize(generations=8, workers=2)
    b.optimize(generations=8, workers=1)  # fewer workers: same archive
    assert fingerprint(a) == fingerprint(b)


def test_children_failing_the_subset_stage_are_pruned_and_never_parents() -> None:
    sabotage = META_AGENT.replace(
        'open(path, "w").write(source.replace(f\'"t": {t}\', f\'"t": {new}\'))',
        'open(path, "w").write(source.replace(f\'"t": {t}\', \'"t": 2.0\'))',
    )
    run = make_run(ToyTask(meta_agent=sabotage), subset_margin=0.05)
    run.optimize(generations=4)
    children = run.variants()[1:]
    assert children and all(v.state is VariantState.PRUNED for v in children)
    for v in children:
        assert set(v.scores) == {"train_subset"}
        assert "below the parent's" in (v.reason or "")
        assert v.parent_id == run.variants()[0].id


def test_absolute_subset_threshold() -> None:
    run = make_run(subset_threshold=1.01, subset_margin=None)
    run.optimize(generations=2)
    assert all(v.state is VariantState.PRUNED for v in run.variants()[1:])
    assert "below the threshold" in (run.variants()[1].reason or "")


def test_invalid_children_are_stored_with_reason_and_never_parents() -> None:
    broken = META_AGENT.replace(
        "    return {", "    open(path, 'w').write('def solve(:')\n    return {"
    )
    run = make_run(ToyTask(meta_agent=broken))
    run.optimize(generations=3)
    seed_id = run.variants()[0].id
    for v in run.variants()[1:]:
        assert v.state is VariantState.INVALID
        assert "syntax error" in (v.reason or "")
        assert v.program_id is not None
        assert v.parent_id == seed_id


def test_missing_entry_point_is_invalid() -> None:
    renamed = META_AGENT.replace(
        "    return {",
        "    open(path, 'w').write(source.replace('def solve', 'def answer'))\n    return {",
    )
    run = make_run(ToyTask(meta_agent=renamed))
    run.optimize(generations=1)
    assert "does not define a callable 'solve'" in (run.variants()[1].reason or "")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            "    raise ValueError('meta boom')\n",
            "meta agent failed: exception: ValueError: meta boom",
        ),
        ("    return {'nothing': True}\n", "the meta agent made no change"),
    ],
)
def test_failed_improvements_are_recorded_and_the_run_goes_on(body: str, reason: str) -> None:
    meta = "def improve(workspace, report):\n" + body
    run = make_run(ToyTask(meta_agent=meta))
    record = run.optimize(generations=3)
    assert record.status is RunStatus.COMPLETE
    for v in run.variants()[1:]:
        assert v.state is VariantState.FAILED and reason in (v.reason or "")


def test_meta_agent_timeout_is_recorded() -> None:
    meta = "import time\ndef improve(workspace, report):\n    time.sleep(60)\n"
    run = make_run(ToyTask(meta_agent=meta), meta_timeout=1.0)
    run.optimize(generations=1)
    assert "timeout" in (run.variants()[1].reason or "")


def test_hyperagent_mode_keeps_meta_edits_and_frozen_mode_discards_them() -> None:
    hyper = make_run(mode=Mode.HYPERAGENT, selector="best")
    hyper.optimize(generations=4)
    frozen = make_run(mode=Mode.FROZEN_META, selector="best")
    frozen.optimize(generations=4)
    seed_meta = Program({"m": META_AGENT})["m"]
    for v in frozen.variants():
        if v.program_id:
            assert frozen.program(v)["meta_agent.py"] == seed_meta
            assert frozen.program(v)["task_agent.py"] is not None
    steps = {v.meta_info.get("step") for v in frozen.variants()[1:]}
    assert steps == {0.3}
    # In hyperagent mode the meta agent's edit of its own source is kept in the child...
    for v in hyper.variants()[1:]:
        assert v.program_id is not None
        assert b"STEP = 0.27" in hyper.program(v)["meta_agent.py"]
    # ...and a child's meta agent is the one that makes the grandchildren (it compounds).
    job = hyper.ask()
    child = next(v for v in hyper.variants() if v.id == job.parent_id)
    if child.generation > 0:
        assert b"STEP = 0.27" in job.request.program["meta_agent.py"]


def test_no_archive_mode_always_builds_on_the_best() -> None:
    run = make_run(mode=Mode.NO_ARCHIVE, seed=4)
    run.optimize(generations=6)
    variants = run.variants()
    for v in variants[1:]:
        earlier = [
            u for u in variants if u.generation < v.generation and u.state is VariantState.COMPLETE
        ]
        best = min(earlier, key=lambda u: (-u.scores["val"], u.generation))
        assert v.parent_id == best.id
    created = [
        e
        for e in run.storage.list_events(run.id, kinds=["variant.created"])
        if e.data.get("selector")
    ]
    assert all("no-archive" in e.data["selector"] for e in created)


SELECT_FIRST = """def select_parent(archive, seed):
    return min(archive, key=lambda e: e["generation"])["variant_id"]
"""


def test_programs_own_select_parent_is_used() -> None:
    run = make_run(ToyTask(extra={"select_parent.py": SELECT_FIRST}), selector="program")
    run.optimize(generations=4)
    seed_id = run.variants()[0].id
    assert all(v.parent_id == seed_id for v in run.variants()[1:])
    created = run.storage.list_events(run.id, kinds=["variant.created"])
    assert all(e.data.get("selector") == "program" for e in created if e.data.get("selector"))


def test_broken_select_parent_falls_back() -> None:
    broken = "def select_parent(archive, seed):\n    return 'not an id'\n"
    run = make_run(ToyTask(extra={"select_parent.py": broken}), selector="program")
    run.optimize(generations=2)
    assert all(v.parent_id is not None for v in run.variants()[1:])
    fallbacks = run.storage.list_events(run.id, kinds=["selector.fallback"])
    assert fallbacks and "not an eligible id" in fallbacks[0].message


REPORT_DUMPER = META_AGENT.replace(
    "    return {",
    "    open(workspace + '/report.json', 'w').write(json.dumps(report))\n    return {",
)


def test_meta_agent_report_never_shows_test_data_or_targets() -> None:
    task = ToyTask(meta_agent=REPORT_DUMPER)
    run = make_run(task)
    run.optimize(generations=3)
    last = run.variants()[-1]
    report = json.loads(run.program(last)["report.json"])
    text = json.dumps(report)
    assert '"test"' not in text
    assert not any(inst.id in text for inst in task.instances("test"))  # type: ignore[arg-type]
    for item in report["train_inputs"]:
        assert set(item) == {"id", "inputs"}
    assert report["parent"]["scores"] and "test" not in report["parent"]["scores"]
    assert len(report["evaluation"]["results"]) == 40
    assert {"id", "score", "feedback", "output"} == set(report["evaluation"]["results"][0])
    assert report["generation"] == last.generation
    assert report["generations_left"] == 3 - last.generation
    assert all("test" not in a["scores"] for a in report["archive"])


def test_ask_and_tell_by_hand() -> None:
    run = make_run()
    job = run.ask()  # evaluates the seed first
    assert job.generation == 1 and job.parent_id == run.variants()[0].id
    child = job.request.program.with_files(
        {
            "task_agent.py": "PARAMS = {}\n\ndef solve(inputs):\n"
            "    return 'hi' if inputs['x'] > 0.63 else 'lo'\n"
        }
    )
    final = run.tell(job, child)
    assert final.state is VariantState.COMPLETE and final.scores["val"] == 1.0
    assert final.meta_info == {"source": "tell"}


def _orphan(run: Run, generation: int, parent: VariantRecord) -> int:
    return run.storage.create_variant(
        run_id=run.id,
        generation=generation,
        parent_id=parent.id,
        state=VariantState.RUNNING,
        owner=f"{_hostname()}|999999999|1|dead",
    )


def _hostname() -> str:
    import socket

    return socket.gethostname()


def test_resume_takes_over_dead_work_and_matches_an_uninterrupted_run() -> None:
    reference = make_run(seed=21)
    reference.optimize(generations=6)

    run = make_run(seed=21)
    run.optimize(generations=3)
    # Simulate a crash right after generation 4 was asked: its variant exists, owned by a
    # process that is gone, with no program yet.
    by_generation = {v.generation: v for v in reference.variants()}
    parent_generation = next(
        v.generation for v in reference.variants() if v.id == by_generation[4].parent_id
    )
    parent = next(v for v in run.variants() if v.generation == parent_generation)
    _orphan(run, 4, parent)
    resumed = Run.load(run.name, storage=run.storage, task=run.task)
    resumed.optimize(generations=2)
    assert fingerprint(resumed) == fingerprint(reference)
    reclaimed = run.storage.list_events(run.id, kinds=["variant.reclaimed"])
    assert len(reclaimed) == 1


def test_resume_does_not_redo_recorded_stages() -> None:
    run = make_run(seed=2)
    run.optimize(generations=1)
    first = run.variants()[1]
    assert first.program_id is not None
    # A variant that crashed after its train subset was recorded.
    store = run.storage
    orphan_id = _orphan(run, 2, run.variants()[0])
    store.set_variant_program(orphan_id, first.program_id, meta_info={"copied": True})
    store.set_variant_state(orphan_id, VariantState.EVALUATING, expected=VariantState.RUNNING)
    subset = next(e for e in store.list_evaluations(first.id) if e.stage == "train_subset")
    store.add_evaluation(
        variant_id=orphan_id,
        stage="train_subset",
        split="train",
        score=subset.score,
        n=subset.n,
        results=subset.results,
        metrics=subset.metrics,
    )
    before = {e.stage: e.id for e in store.list_evaluations(orphan_id)}
    resumed = Run.load(run.name, storage=store, task=run.task)
    resumed.optimize()
    after = {e.stage: e.id for e in store.list_evaluations(orphan_id)}
    assert after["train_subset"] == before["train_subset"]
    assert store.get_variant(orphan_id).state in (VariantState.COMPLETE, VariantState.PRUNED)
    assert not store.list_events(run.id, kinds=["variant.improved"], variant_id=orphan_id)


def test_live_owner_is_not_robbed() -> None:
    run = make_run()
    run.optimize(generations=1)
    store = run.storage
    live = store.create_variant(
        run_id=run.id,
        generation=2,
        parent_id=run.variants()[0].id,
        state=VariantState.RUNNING,
        owner="otherhost|1|1|x",
    )
    other = Run.load(run.name, storage=store, task=run.task)
    from hyperagents.runs._lease import Lease

    assert Lease(other._ctx).claim_orphans(run.variants()) == []  # fresh heartbeat, other host
    assert store.get_variant(live).owner == "otherhost|1|1|x"


def test_timeout_stops_gracefully_and_resume_continues() -> None:
    run = make_run()
    record = run.optimize(generations=50, timeout=0.0)
    assert record.status is RunStatus.STOPPED
    assert record.target_generations == 50
    done = max(v.generation for v in run.variants())
    assert done < 50
    record = Run.load(run.name, storage=run.storage, task=run.task).optimize(timeout=None)
    assert max(v.generation for v in run.variants()) == 50
    assert record.status is RunStatus.COMPLETE


def test_names_and_errors() -> None:
    store = InMemoryStorage()
    a = Run.create(task=ToyTask(), storage=store)
    b = Run.create(task=ToyTask(), storage=store)
    assert a.name == "toy-hyperagent-s0" and b.name == "toy-hyperagent-s0-2"
    with pytest.raises(DuplicateError):
        Run.create(task=ToyTask(), storage=store, name=a.name)
    with pytest.raises(RunNotFoundError):
        Run.load("nope", storage=store)
    with pytest.raises(ConfigError):
        Run.create(task=ToyTask(), storage=store, mode="sideways")
    with pytest.raises(ConfigError):
        Run.create(task=ToyTask(), storage=store, config={"selector": "psychic"})
    with pytest.raises(ConfigError):
        a.optimize(generations=-1)


def test_summary() -> None:
    run = make_run()
    run.optimize(generations=3)
    info = run.summary()
    assert info["generations"] == 3 and info["target_generations"] == 3
    assert info["champion"]["scores"]["val"] >= info["seed_scores"]["val"]
    assert info["variants"] == 4 and info["status"] == "complete"


def test_stale_heartbeat_from_another_host_is_taken_over() -> None:
    import time

    run = make_run(heartbeat_grace=0.2)
    run.optimize(generations=1)
    store = run.storage
    stuck = store.create_variant(
        run_id=run.id,
        generation=2,
        parent_id=run.variants()[0].id,
        state=VariantState.RUNNING,
        owner="otherhost|1|1|x",
    )
    time.sleep(0.3)
    other = Run.load(run.name, storage=store, task=run.task)
    other.optimize()
    assert store.get_variant(stuck).state.is_terminal
    events = store.list_events(run.id, kinds=["variant.reclaimed"], variant_id=stuck)
    assert events and events[0].data["previous_owner"] == "otherhost|1|1|x"


def test_unchanged_child_is_failed_without_storing_a_clone() -> None:
    meta = "def improve(workspace, report):\n    return {'operator': 'none'}\n"
    run = make_run(ToyTask(meta_agent=meta))
    run.optimize(generations=2)
    for v in run.variants()[1:]:
        assert v.state is VariantState.FAILED and v.program_id is None
        assert v.metrics["improve"]["meta_info"] == {"operator": "none"}


def test_run_without_its_seed_variant_heals() -> None:
    store = InMemoryStorage()
    task = ToyTask()
    program_id = store.put_program(task.seed_program())
    store.create_run(
        RunSpec(
            name="half",
            task="toy",
            mode="hyperagent",
            seed=0,
            config={},
            seed_program_id=program_id,
        )
    )  # a crash right after this
    run = Run.load("half", storage=store, task=task)
    record = run.optimize(generations=2)
    assert record.status is RunStatus.COMPLETE
    assert [v.generation for v in run.variants()] == [0, 1, 2]


def test_resume_in_the_same_process_after_a_failure_does_not_wait() -> None:
    import time

    from hyperagents.exceptions import TaskError

    class Flaky(ToyTask):
        calls = 0

        def aggregate(self, scores: Any) -> float:
            # A task that breaks its protocol is the run's failure (a score() that raises on
            # one output is only that candidate's: it scores the minimum).
            Flaky.calls += 1
            if Flaky.calls == 4:
                raise TaskError("aggregate hiccup")
            return super().aggregate(scores)

    # Work still held by the failed engine would only be taken over once its heartbeat is an
    # hour old: the resume finishes long before, however busy the machine, only if it was let go.
    run = make_run(Flaky(), heartbeat_grace=3600)
    with pytest.raises(TaskError, match="aggregate hiccup"):
        run.optimize(generations=3)
    assert run.record().status is RunStatus.FAILED
    start = time.monotonic()
    again = Run.load(run.name, storage=run.storage, task=run.task)
    assert again.optimize().status is RunStatus.COMPLETE
    assert time.monotonic() - start < 300


def test_a_dead_worker_is_replaced_without_losing_the_run() -> None:
    from hyperagents.sandbox import ProcessSandbox

    class Crashy(ProcessSandbox):
        calls = 0

        def run(self, workspace: Any, request: Any, *, limits: Any) -> Any:
            Crashy.calls += 1
            if Crashy.calls in (4, 9):
                raise RuntimeError("worker thread died")
            return super().run(workspace, request, limits=limits)

    reference = make_run(seed=8)
    reference.optimize(generations=3)
    run = Run.create(
        task=ToyTask(),
        seed=8,
        storage=InMemoryStorage(),
        sandbox=Crashy(),
        config=RunConfig.parse({"subset_size": 10}),
    )
    assert run.optimize(generations=3).status is RunStatus.COMPLETE
    assert fingerprint(run) == fingerprint(reference)
    failed = run.storage.list_events(run.id, kinds=["worker.failed"])
    assert len(failed) == 2 and "worker thread died" in failed[0].message


def test_warm_workers_are_stopped_when_optimize_returns() -> None:
    run = make_run(warm_workers=True)
    run.optimize(generations=2, workers=2)
    assert run._ctx.sandbox.standbys == 0


def test_a_run_can_start_from_another_seed_meta_agent() -> None:
    from hyperagents.improvers import meta_agent_files

    run = make_run(meta_agent="offline")
    seed = run.program(run.variants()[0])
    assert seed.text("meta_agent.py") == (meta_agent_files("offline") or {})["meta_agent.py"]
    assert seed["task_agent.py"] == ToyTask().seed_program()["task_agent.py"]
    with pytest.raises(ConfigError, match="meta agent"):
        make_run(meta_agent="psychic")
