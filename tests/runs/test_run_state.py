"""The run state kept in a run's attrs, and the task's meta files: each read in one place."""

from __future__ import annotations

from hyperagents.program import Program
from hyperagents.runs import _attrs
from hyperagents.runs._meta_files import (
    changed_meta_files,
    freeze_meta,
    meta_files,
    transfer_meta,
)
from hyperagents.storages import InMemoryStorage

from toytask import ToyTask


def _store() -> tuple[InMemoryStorage, int]:
    store = InMemoryStorage()
    attrs = _attrs.initial_attrs("toy", {"experiment": "e"}, 7)
    assert attrs == {"task_name": "toy", "experiment": "e", "target_generations": 7}
    run_id = store.create_run(
        name="r", task="toy", mode="hyperagent", seed=0, config={}, seed_program_id="x", attrs=attrs
    )
    return store, run_id


def test_target_and_elapsed_round_trip() -> None:
    store, run_id = _store()
    assert _attrs.target_generations(store.get_run(run_id)) == 7
    assert _attrs.elapsed_seconds(store.get_run(run_id)) == 0.0
    _attrs.store_target(store, run_id, 9)
    _attrs.store_elapsed(store, run_id, 1.5)
    record = store.get_run(run_id)
    assert _attrs.target_generations(record) == 9 and _attrs.elapsed_seconds(record) == 1.5
    assert _attrs.initial_attrs("toy", None, None) == {"task_name": "toy"}


def test_pins_and_bans() -> None:
    store, run_id = _store()
    assert _attrs.pinned_parent(store.get_run(run_id)) is None
    _attrs.store_pin(store, run_id, 4, "ada")
    assert _attrs.pinned_parent(store.get_run(run_id)) == (4, "ada")
    _attrs.clear_pin(store, run_id)
    assert _attrs.pinned_parent(store.get_run(run_id)) is None
    store.update_run_attrs(run_id, {"pinned_parent": {"variant": "4"}})  # malformed: no pin
    assert _attrs.pinned_parent(store.get_run(run_id)) is None
    _attrs.store_banned(store, run_id, [3, 5])
    assert _attrs.banned(store.get_run(run_id)) == [3, 5]
    store.update_run_attrs(run_id, {"banned": [3, "x", None]})
    assert _attrs.banned(store.get_run(run_id)) == [3]
    store.update_run_attrs(run_id, {"banned": "3"})
    assert _attrs.banned(store.get_run(run_id)) == []


def test_meta_files() -> None:
    task = ToyTask()
    assert meta_files(task) == ("meta_agent.py", "select_parent.py")
    seed = Program({"task_agent.py": "a", "meta_agent.py": "m0"})
    child = Program({"task_agent.py": "b", "meta_agent.py": "m1", "select_parent.py": "s"})
    frozen = freeze_meta(child, seed, task)
    assert dict(frozen.items()) == {"task_agent.py": b"b", "meta_agent.py": b"m0"}
    moved = transfer_meta(seed, child, task)
    assert moved["task_agent.py"] == b"a" and moved["select_parent.py"] == b"s"
    assert moved["meta_agent.py"] == b"m1"
    changed = ["task_agent.py", "select_parent.py", "meta_agent.py"]
    assert changed_meta_files(changed, task) == ["select_parent.py", "meta_agent.py"]
