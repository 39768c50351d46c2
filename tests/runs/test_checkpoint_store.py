"""The newest checkpoint of each training, kept beside the database for a resumed run."""

from __future__ import annotations

from pathlib import Path

from hyperagents.runs import Run, delete_run
from hyperagents.runs._checkpoints import CheckpointStore, training_key
from hyperagents.storages import InMemoryStorage, RDBStorage

from toytask import ToyTask


def test_the_newest_checkpoint_of_the_same_training_is_given_back(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "ck")
    key = training_key("p1", [{"inputs": {"x": 1}, "output": "a"}], 7, {"steps": 10})
    assert store.load(1, 2, key) is None
    store.save(1, 2, key, 5, {"state.pt": b"five"})
    store.save(1, 2, key, 9, {"state.pt": b"nine", "extra.json": b"{}"})
    assert store.load(1, 2, key) == (9, {"extra.json": b"{}", "state.pt": b"nine"})
    other = training_key("p1", [{"inputs": {"x": 1}, "output": "a"}], 8, {"steps": 10})
    assert other != key and store.load(1, 2, other) is None  # another training's: not used
    assert store.load(1, 3, key) is None


def test_drop_removes_it_and_what_a_killed_write_left(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(1, 2, "k", 5, {"state.pt": b"x"})
    store.save(1, 3, "k", 5, {"state.pt": b"y"})
    (tmp_path / ".run1-variant2.zip.abc123.tmp").write_bytes(b"half")
    store.drop(1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1-variant3.zip"]
    (tmp_path / "run1-variant3.zip").write_bytes(b"not a zip")
    assert store.load(1, 3, "k") is None  # unreadable: the training starts over


def test_it_lives_beside_a_sqlite_file_and_nowhere_in_memory(tmp_path: Path) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'run.db'}")
    try:
        assert storage.local_folder("checkpoints") == tmp_path.resolve() / "run.db.checkpoints"
    finally:
        storage.close()
    memory = RDBStorage("sqlite:///:memory:")
    try:
        assert memory.local_folder("checkpoints") is None
    finally:
        memory.close()
    assert not CheckpointStore.of(InMemoryStorage()).enabled
    CheckpointStore.of(InMemoryStorage()).save(1, 2, "k", 1, {"a": b""})  # kept nowhere


def test_deleting_a_run_removes_its_checkpoints_and_no_other_runs(tmp_path: Path) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'run.db'}")
    try:
        run = Run.create(task=ToyTask(), storage=storage, name="doomed", seed=0)
        folder = storage.local_folder("checkpoints")
        assert folder is not None
        store = CheckpointStore.of(storage)
        store.save(run.id, 2, "k", 5, {"state.pt": b"x"})
        store.save(run.id + 1, 2, "k", 5, {"state.pt": b"another run's"})
        (folder / f".run{run.id}-variant3.zip.abc123.tmp").write_bytes(b"half")
        (folder / f"run{run.id}0-variant1.zip").write_bytes(b"run ten times the id")
        delete_run(storage, run.record())
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [f"run{run.id + 1}-variant2.zip", f"run{run.id}0-variant1.zip"]
        )
    finally:
        storage.close()
