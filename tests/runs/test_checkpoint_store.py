"""The newest checkpoint of each training, kept in the run's storage for a resumed run (on
any machine that reaches the database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperagents.runs import Run, delete_run
from hyperagents.runs._checkpoints import CheckpointStore, training_key
from hyperagents.storages import BaseStorage, InMemoryStorage, RDBStorage

from toytask import ToyTask


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> BaseStorage:
    if request.param == "memory":
        return InMemoryStorage()
    return RDBStorage(f"sqlite:///{tmp_path / 'run.db'}")


def _child(storage: BaseStorage, name: str = "r") -> tuple[int, int]:
    run = Run.create(task=ToyTask(), storage=storage, name=name, seed=0)
    child = storage.create_variant(run_id=run.id, generation=1, parent_id=None)
    return run.id, child


def test_the_newest_checkpoint_of_the_same_training_is_given_back(storage: BaseStorage) -> None:
    run, child = _child(storage)
    store = CheckpointStore.of(storage)
    key = training_key("p1", [{"inputs": {"x": 1}, "output": "a"}], 7, {"steps": 10})
    assert store.load(run, child, key) is None
    store.save(run, child, key, 5, {"state.pt": b"five"})
    store.save(run, child, key, 9, {"state.pt": b"nine", "extra.json": b"{}"})
    assert store.load(run, child, key) == (9, {"extra.json": b"{}", "state.pt": b"nine"})
    other = training_key("p1", [{"inputs": {"x": 1}, "output": "a"}], 8, {"steps": 10})
    assert other != key and store.load(run, child, other) is None  # another training's
    sibling = storage.create_variant(run_id=run, generation=2, parent_id=None)
    assert store.load(run, sibling, key) is None
    store.drop(run, child)
    assert store.load(run, child, key) is None
    store.drop(run, child)  # nothing to drop: no error


def test_an_unreadable_checkpoint_starts_the_training_over(tmp_path: Path) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'run.db'}")
    try:
        run, child = _child(storage)
        store = CheckpointStore.of(storage)
        store.save(run, child, "k", 5, {"state.pt": b"x" * 100})
        (kept,) = (tmp_path / "run.db.artifacts" / "checkpoints").iterdir()
        kept.write_bytes(b"y" * 100)
        assert store.load(run, child, "k") is None  # corrupt: not used, only logged
        store.save(run, child, "k", 6, {"state.pt": b"z"})
        assert store.load(run, child, "k") == (6, {"state.pt": b"z"})
    finally:
        storage.close()


def test_the_old_local_folder_is_not_used(tmp_path: Path) -> None:
    """Versions before storage revision 0012 kept checkpoints in ``<database>.checkpoints/``;
    such a file is ignored, and nothing is written there now."""
    storage = RDBStorage(f"sqlite:///{tmp_path / 'run.db'}")
    try:
        run, child = _child(storage)
        old = tmp_path / "run.db.checkpoints"
        old.mkdir()
        (old / f"run{run}-variant{child}.zip").write_bytes(b"an old layout's checkpoint")
        store = CheckpointStore.of(storage)
        assert store.load(run, child, "k") is None
        store.save(run, child, "k", 1, {"a": b"1"})
        assert [p.name for p in old.iterdir()] == [f"run{run}-variant{child}.zip"]
        assert store.load(run, child, "k") == (1, {"a": b"1"})
    finally:
        storage.close()


def test_deleting_a_run_removes_its_checkpoints_and_no_other_runs(storage: BaseStorage) -> None:
    run, child = _child(storage, "doomed")
    other_run, other_child = _child(storage, "kept")
    store = CheckpointStore.of(storage)
    store.save(run, child, "k", 5, {"state.pt": b"x"})
    store.save(other_run, other_child, "k", 5, {"state.pt": b"another run's"})
    delete_run(storage, storage.get_run(run))
    assert store.load(other_run, other_child, "k") == (5, {"state.pt": b"another run's"})
    assert [r.name for r in storage.list_runs()] == ["kept"]
    assert store.load(run, child, "k") is None  # the run is gone: nothing to resume
