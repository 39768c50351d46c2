"""A child is validated in the process that evaluates its train subset: one sandboxed run where
there were two, the same verdicts and reasons, recorded in one commit with the first stage; a
crash before that commit resumes with nothing recorded twice and nothing lost."""

from __future__ import annotations

import socket
from typing import Any

from hyperagents.evaluation import validate_program
from hyperagents.runs import Run, RunConfig
from hyperagents.sandbox import Limits, ProcessSandbox
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState

from toytask import META_AGENT, CountingSandbox, ToyTask


class Counting(CountingSandbox):
    """Keeps the requests, and tells which validated first or solved some instances only."""

    def validating(self) -> list[dict[str, Any]]:
        """The requests that validated a program before solving."""
        return [r for r in self.requests if "validate" in r]

    def plain_solves_of(self, ids: set[str]) -> list[dict[str, Any]]:
        """The requests that solved exactly the instances ``ids`` without validating."""
        return [
            r
            for r in self.requests
            if r["action"] == "solve"
            and "validate" not in r
            and {i["id"] for i in r["instances"]} == ids
        ]


def make_run(
    task: ToyTask | None = None,
    *,
    seed: int = 0,
    storage: InMemoryStorage | None = None,
    sandbox: Any = None,
) -> Run:
    return Run.create(
        task=task or ToyTask(),
        seed=seed,
        storage=storage or InMemoryStorage(),
        sandbox=sandbox,
        config=RunConfig.parse({"subset_size": 10}),
    )


def fingerprint(run: Run) -> list[tuple[Any, ...]]:
    return [
        (v.generation, v.state, v.program_id, tuple(sorted(v.scores.items())), v.reason)
        for v in run.variants()
    ]


def test_a_child_is_validated_and_scored_on_its_subset_in_one_sandbox_run() -> None:
    sandbox = Counting(ProcessSandbox())
    run = make_run(sandbox=sandbox)
    run.optimize(generations=4)
    actions = [r["action"] for r in sandbox.requests]
    assert "validate" not in actions  # no process of its own for a validation any more
    with_programs = [v for v in run.variants() if v.program_id is not None]
    validating = sandbox.validating()
    assert len(validating) == len(with_programs) == 5
    subset = set(run._ctx.subset())
    assert all({i["id"] for i in r["instances"]} == subset for r in validating)
    assert all(r["action"] == "solve" for r in validating)
    assert not sandbox.plain_solves_of(subset)  # the subset is never solved a second time
    verdicts = run.storage.list_events(run.id, kinds=["variant.validated", "variant.invalid"])
    assert len(verdicts) == len(validating)
    for variant in with_programs:
        subset_record = next(
            e for e in run.storage.list_evaluations(variant.id) if e.stage == "train_subset"
        )
        assert subset_record.n == 10
        timing = variant.metrics["timing"]
        assert 0 < timing["sandbox_seconds"] <= timing["total_seconds"]


def test_an_invalid_child_has_the_reason_a_validation_of_its_own_gives() -> None:
    broken = META_AGENT.replace(
        "    return {", "    open(path, 'w').write('def solve(:')\n    return {"
    )
    renamed = META_AGENT.replace(
        "    return {",
        "    open(path, 'w').write(source.replace('def solve', 'def answer'))\n    return {",
    )
    for meta, expected in [
        (broken, "syntax error"),
        (renamed, "does not define a callable 'solve'"),
    ]:
        sandbox = Counting(ProcessSandbox())
        run = make_run(ToyTask(meta_agent=meta), sandbox=sandbox)
        run.optimize(generations=2)
        children = run.variants()[1:]
        assert len(children) == 2
        for child in children:
            assert child.state is VariantState.INVALID and expected in (child.reason or "")
            alone = validate_program(
                run.program(child),
                entry_points=run.task.entry_points,
                sandbox=ProcessSandbox(),
                limits=Limits(wall_time=60),
            )
            assert child.reason == alone.reason
            (event,) = run.storage.list_events(
                run.id, kinds=["variant.invalid"], variant_id=child.id
            )
            assert event.data["errors"] == list(alone.errors)
            assert not run.storage.list_evaluations(child.id)  # nothing scored
        # the seed's stages, and one run per child that validated it (and solved nothing)
        assert len(sandbox.validating()) == 3


class CrashInTheRecord(InMemoryStorage):
    """Storage whose first write of a child's train subset fails, as if the engine died while
    it recorded the child's verdict and first stage (one transaction)."""

    def __init__(self) -> None:
        super().__init__()
        self.crashed_on: int | None = None

    def add_evaluation(self, **kwargs: Any) -> int:
        if (
            self.crashed_on is None
            and kwargs["stage"] == "train_subset"
            and self.get_variant(kwargs["variant_id"]).generation == 2
        ):
            self.crashed_on = kwargs["variant_id"]
            raise RuntimeError("the engine died while recording the verdict and the subset")
        return super().add_evaluation(**kwargs)


def test_a_crash_while_recording_the_verdict_and_the_subset_records_neither_twice() -> None:
    reference = make_run(seed=4)
    reference.optimize(generations=4)
    storage = CrashInTheRecord()
    sandbox = Counting(ProcessSandbox())
    run = make_run(seed=4, storage=storage, sandbox=sandbox)
    assert run.optimize(generations=4).status is RunStatus.COMPLETE
    assert fingerprint(run) == fingerprint(reference)
    crashed = storage.crashed_on
    assert crashed is not None
    assert storage.get_variant(crashed).state.is_terminal
    assert len(storage.list_events(run.id, kinds=["worker.failed"])) == 1
    # The verdict and the subset are one commit: neither stayed, both were made again, once.
    validated = storage.list_events(run.id, kinds=["variant.validated"], variant_id=crashed)
    assert len(validated) == 1
    stages = [e.stage for e in storage.list_evaluations(crashed)]
    assert stages.count("train_subset") == 1
    with_programs = [v for v in run.variants() if v.program_id is not None]
    assert len(sandbox.validating()) == len(with_programs) + 1
    assert not sandbox.plain_solves_of(set(run._ctx.subset()))


def test_a_crash_before_the_verdict_validates_and_scores_the_child_once() -> None:
    run = make_run(seed=2)
    run.optimize(generations=1)
    first = run.variants()[1]
    assert first.program_id is not None
    store = run.storage
    # A child whose program was recorded when its engine died (still RUNNING, owner gone).
    orphan = store.create_variant(
        run_id=run.id,
        generation=2,
        parent_id=run.variants()[0].id,
        state=VariantState.RUNNING,
        owner=f"{socket.gethostname()}|999999999|1|dead",
    )
    store.set_variant_program(orphan, first.program_id, meta_info={"copied": True})
    sandbox = Counting(ProcessSandbox())
    resumed = Run.load(run.name, storage=store, task=run.task, sandbox=sandbox)
    resumed.optimize()
    assert store.get_variant(orphan).state.is_terminal
    assert len(store.list_events(run.id, kinds=["variant.validated"], variant_id=orphan)) == 1
    assert not store.list_events(run.id, kinds=["variant.improved"], variant_id=orphan)
    assert "train_subset" in {e.stage for e in store.list_evaluations(orphan)}
    assert len(sandbox.validating()) == 1
    assert sandbox.requests[0]["action"] == "solve" and "validate" in sandbox.requests[0]


def _no_train_run(sandbox: Any, **config: Any) -> Run:
    return Run.create(
        task=ToyTask(sizes=(0, 20, 20)),
        seed=3,
        storage=InMemoryStorage(),
        sandbox=sandbox,
        config=RunConfig.parse(config),
    )


def test_without_train_instances_a_child_is_validated_in_the_run_that_scores_val() -> None:
    sandbox = Counting(ProcessSandbox())
    run = _no_train_run(sandbox)
    run.optimize(generations=3)
    val = {i.id for i in run.task.instances("val")}
    with_programs = [v for v in run.variants() if v.program_id is not None]
    validating = sandbox.validating()
    assert len(validating) == len(with_programs) == 4
    assert all({i["id"] for i in r["instances"]} == val for r in validating)
    assert not sandbox.plain_solves_of(val)  # val is never solved a second time
    for variant in with_programs:
        assert variant.state is VariantState.COMPLETE
        records = {e.stage: e for e in run.storage.list_evaluations(variant.id)}
        assert (records["train_subset"].n, records["train"].n, records["val"].n) == (0, 0, 20)
        # the empty stages score as an empty stage always did
        assert records["train_subset"].score == records["train"].score == 0.0
        assert variant.scores["val"] == records["val"].score


def test_a_child_pruned_on_an_empty_subset_is_validated_alone_and_never_scored_on_val() -> None:
    sandbox = Counting(ProcessSandbox())
    run = _no_train_run(sandbox, subset_threshold=0.5)
    run.optimize(generations=2)
    seed, *children = run.variants()
    assert seed.state is VariantState.COMPLETE  # the seed is never pruned
    val = {i.id for i in run.task.instances("val")}
    for child in children:
        assert child.state is VariantState.PRUNED
        assert "threshold" in (child.reason or "")
        stages = [e.stage for e in run.storage.list_evaluations(child.id)]
        assert stages == ["train_subset"]
    # the seed's validation solved val; each child's validated with its empty subset alone
    assert [len(r["instances"]) for r in sandbox.validating()] == [20, 0, 0]
    assert not sandbox.plain_solves_of(val)
