"""The run state stored with a run (typed fields, read through the run context), and the
meta files (one rule, the task's): each read in one place."""

from __future__ import annotations

from hyperagents.program import Program
from hyperagents.runs import Run
from hyperagents.runs._meta_files import (
    changed_meta_files,
    freeze_meta,
    meta_files,
    transfer_meta,
)
from hyperagents.storages import InMemoryStorage

from toytask import ToyTask


def _run(store: InMemoryStorage) -> Run:
    return Run.create(
        task=ToyTask(), name="r", storage=store, generations=7, experiment="e", arm="a"
    )


def test_a_new_run_stores_its_state_in_typed_fields() -> None:
    store = InMemoryStorage()
    record = _run(store).record()
    assert (record.task_name, record.experiment, record.arm) == ("toy", "e", "a")
    assert (record.target_generations, record.elapsed_seconds) == (7, 0.0)
    assert "target_generations" not in record.attrs


def test_target_elapsed_and_steering_go_through_the_context() -> None:
    store = InMemoryStorage()
    ctx = _run(store)._ctx
    ctx.store_target(9)
    ctx.store_elapsed(1.5)
    record = ctx.record()
    assert ctx.target_generations(record) == 9 and ctx.elapsed_seconds(record) == 1.5
    assert ctx.take_steering() == ([], None)
    seed = store.list_variants(ctx.run_id)[0]
    store.pin_parent(seed.id, by="ada")
    assert ctx.take_steering() == ([], (seed.id, "ada"))
    assert ctx.take_steering() == ([], None)  # a pin is used once
    # A record read before the pin was used up (another engine, an earlier ask): the pin it
    # shows is not used again.
    store.pin_parent(seed.id, by="ada")
    stale = ctx.record()
    assert ctx.take_steering(stale) == ([], (seed.id, "ada"))
    assert ctx.take_steering(stale) == ([], None)


def test_meta_files() -> None:
    task = ToyTask()
    assert meta_files(task) == ["meta_agent.py", "planner.py", "reviewer.py", "select_parent.py"]
    seed = Program({"task_agent.py": "a", "meta_agent.py": "m0", "meta_tools.py": "t0"})
    child = Program(
        {"task_agent.py": "b", "meta_agent.py": "m1", "select_parent.py": "s", "meta_x.py": "x"}
    )
    assert meta_files(task, seed, child) == [
        "meta_agent.py",
        "meta_tools.py",
        "meta_x.py",
        "planner.py",
        "reviewer.py",
        "select_parent.py",
    ]
    frozen = freeze_meta(child, seed, task)
    assert dict(frozen.items()) == {
        "task_agent.py": b"b",
        "meta_agent.py": b"m0",
        "meta_tools.py": b"t0",
    }
    moved = transfer_meta(seed, child, task)
    assert moved["task_agent.py"] == b"a" and moved["select_parent.py"] == b"s"
    assert moved["meta_agent.py"] == b"m1" and moved["meta_x.py"] == b"x"
    assert "meta_tools.py" not in moved  # the meta agent's modules move as a whole
    changed = ["task_agent.py", "select_parent.py", "meta_agent.py", "meta_x.py"]
    assert changed_meta_files(changed, task) == ["select_parent.py", "meta_agent.py", "meta_x.py"]
