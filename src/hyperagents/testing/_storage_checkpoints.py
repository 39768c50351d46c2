"""Conformance tests of training checkpoints: the newest one of each variant's training.

Whatever a backend does with their bytes (files beside SQLite, large objects in PostgreSQL,
bytes in memory), a checkpoint reads back byte for byte, a put replaces the previous one
whole or not at all, and drops and run deletions remove them.

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import random
import threading

import pytest

from hyperagents.exceptions import RunNotFoundError, StorageError, VariantNotFoundError
from hyperagents.storages import BaseStorage
from hyperagents.testing._storage_base import StorageTestBase

__all__ = ["CheckpointTests", "checkpoint_files"]

#: Bytes of the model file of :func:`checkpoint_files` (several chunks of a large object).
LARGE = 2_500_000


def checkpoint_files(step: int, *, large: int = LARGE) -> dict[str, bytes]:
    """The files of a training's checkpoint at ``step``: a model, an optimiser's state, a
    small JSON file and an empty one (random bytes from ``step``)."""
    rng = random.Random(step)
    return {
        "model.safetensors": rng.randbytes(large),
        "optimizer.pt": rng.randbytes(large // 5),
        "state.json": f'{{"step": {step}}}'.encode(),
        "empty.bin": b"",
    }


def _fail() -> None:
    raise RuntimeError("rolled back")


class CheckpointTests(StorageTestBase):
    """Conformance tests of checkpoints."""

    def test_a_checkpoint_reads_back_byte_for_byte(self, storage: BaseStorage) -> None:
        run = self._run(storage)
        variant = self._variant(storage, run, 1)
        assert storage.get_checkpoint(run, variant) is None
        files = checkpoint_files(7)
        storage.put_checkpoint(run, variant, key="k1", step=7, files=files)
        found = storage.get_checkpoint(run, variant)
        assert found is not None
        assert (found.run_id, found.variant_id, found.key, found.step) == (run, variant, "k1", 7)
        assert dict(found.files) == files
        assert found.size == sum(len(data) for data in files.values())
        assert found.saved_at.tzinfo is not None
        assert storage.get_checkpoint(run, variant, key="k1") == found
        assert storage.get_checkpoint(run, variant, key="another training") is None
        assert storage.get_checkpoint(run, self._variant(storage, run, 2)) is None

    def test_a_put_replaces_the_checkpoint_whole(self, storage: BaseStorage) -> None:
        run = self._run(storage)
        variant = self._variant(storage, run, 1)
        storage.put_checkpoint(run, variant, key="k", step=1, files=checkpoint_files(1))
        newer = {"weights.bin": b"\x02" * 1000}
        storage.put_checkpoint(run, variant, key="k2", step=2, files=newer)
        found = storage.get_checkpoint(run, variant)
        assert found is not None and (found.key, found.step) == ("k2", 2)
        assert dict(found.files) == newer  # none of the older one's files
        storage.put_checkpoint(run, variant, key="k2", step=2, files=newer)  # the same again
        again = storage.get_checkpoint(run, variant)
        assert again is not None and (again.step, dict(again.files)) == (2, newer)

    def test_a_failed_transaction_keeps_the_previous_checkpoint(self, storage: BaseStorage) -> None:
        run = self._run(storage)
        variant = self._variant(storage, run, 1)
        storage.put_checkpoint(run, variant, key="k", step=1, files=checkpoint_files(1))

        def replace_then_fail() -> None:
            storage.put_checkpoint(run, variant, key="k", step=2, files=checkpoint_files(2))
            found = storage.get_checkpoint(run, variant)
            assert found is not None and found.step == 2  # seen inside the transaction
            raise RuntimeError("the process died before the commit")

        with pytest.raises(RuntimeError, match="died"):
            storage.atomically(replace_then_fail)
        found = storage.get_checkpoint(run, variant)
        assert found is not None and found.step == 1
        assert dict(found.files) == checkpoint_files(1)
        storage.put_checkpoint(run, variant, key="k", step=3, files=checkpoint_files(3))
        again = storage.get_checkpoint(run, variant)
        assert again is not None and dict(again.files) == checkpoint_files(3)

    def test_a_rolled_back_drop_or_run_deletion_keeps_the_checkpoint(
        self, storage: BaseStorage
    ) -> None:
        run = self._run(storage)
        variant = self._variant(storage, run, 1)
        files = checkpoint_files(1)
        storage.put_checkpoint(run, variant, key="k", step=1, files=files)

        def drop_then_fail() -> None:
            storage.drop_checkpoint(run, variant)
            _fail()

        def delete_then_fail() -> None:
            storage.delete_run(run)
            _fail()

        def all_then_fail() -> None:
            for nested in (drop_then_fail, delete_then_fail):  # savepoints, undone
                with pytest.raises(RuntimeError):
                    storage.atomically(nested)
            storage.put_checkpoint(run, variant, key="k", step=2, files={"w": b"2"})
            storage.put_checkpoint(run, variant, key="k", step=3, files={"w": b"3"})
            assert storage.drop_checkpoint(run, variant)
            storage.delete_run(run)
            _fail()

        for block in (drop_then_fail, delete_then_fail, all_then_fail):
            with pytest.raises(RuntimeError, match="rolled back"):
                storage.atomically(block)
            found = storage.get_checkpoint(run, variant)
            assert found is not None and (found.step, dict(found.files)) == (1, files)
        storage.atomically(lambda: storage.drop_checkpoint(run, variant))
        assert storage.get_checkpoint(run, variant) is None

    def test_a_checkpoint_put_in_a_transaction_commits_with_it(self, storage: BaseStorage) -> None:
        run = self._run(storage)
        variant = self._variant(storage, run, 1)
        storage.put_checkpoint(run, variant, key="k", step=1, files={"a": b"1"})

        def replace_and_log() -> None:
            storage.put_checkpoint(run, variant, key="k", step=2, files={"a": b"2"})
            storage.add_event(run, "training.checkpoint", variant_id=variant)

        storage.atomically(replace_and_log)
        found = storage.get_checkpoint(run, variant)
        assert found is not None and (found.step, dict(found.files)) == (2, {"a": b"2"})
        assert [e.kind for e in storage.list_events(run)] == ["training.checkpoint"]

    def test_drop_removes_it(self, storage: BaseStorage) -> None:
        run = self._run(storage)
        variant, other = self._variant(storage, run, 1), self._variant(storage, run, 2)
        storage.put_checkpoint(run, variant, key="k", step=1, files=checkpoint_files(1))
        storage.put_checkpoint(run, other, key="k", step=4, files={"w": b"other"})
        assert storage.drop_checkpoint(run, variant) is True
        assert storage.get_checkpoint(run, variant) is None
        assert storage.drop_checkpoint(run, variant) is False
        kept = storage.get_checkpoint(run, other)
        assert kept is not None and dict(kept.files) == {"w": b"other"}

    def test_deleting_a_run_removes_its_checkpoints_only(self, storage: BaseStorage) -> None:
        doomed, kept = self._run(storage, "doomed"), self._run(storage, "kept")
        doomed_variant = self._variant(storage, doomed, 1)
        kept_variant = self._variant(storage, kept, 1)
        storage.put_checkpoint(doomed, doomed_variant, key="k", step=1, files={"w": b"d"})
        storage.put_checkpoint(kept, kept_variant, key="k", step=2, files=checkpoint_files(2))
        storage.delete_run(doomed)
        with pytest.raises(RunNotFoundError):
            storage.get_checkpoint(doomed, doomed_variant)
        found = storage.get_checkpoint(kept, kept_variant)
        assert found is not None and dict(found.files) == checkpoint_files(2)

    def test_missing_runs_and_variants(self, storage: BaseStorage) -> None:
        run, other = self._run(storage, "a"), self._run(storage, "b")
        variant = self._variant(storage, run, 1)
        elsewhere = self._variant(storage, other, 1)
        with pytest.raises(RunNotFoundError):
            storage.put_checkpoint(999, variant, key="k", step=1, files={})
        for call in (
            lambda: storage.put_checkpoint(run, 999, key="k", step=1, files={}),
            lambda: storage.put_checkpoint(run, elsewhere, key="k", step=1, files={}),
            lambda: storage.get_checkpoint(run, elsewhere),
            lambda: storage.drop_checkpoint(run, 999),
        ):
            with pytest.raises(VariantNotFoundError):
                call()
        with pytest.raises(RunNotFoundError):
            storage.get_checkpoint(999, variant)

    def test_bad_checkpoints_are_refused_and_change_nothing(self, storage: BaseStorage) -> None:
        run = self._run(storage)
        variant = self._variant(storage, run, 1)
        storage.put_checkpoint(run, variant, key="k", step=1, files={"a": b"1"})
        bad: list[tuple[str, int, dict[str, object]]] = [
            ("", 1, {"a": b"x"}),
            ("x" * 256, 1, {"a": b"x"}),
            ("k", -1, {"a": b"x"}),
            ("k", 2, {"a": "text, not bytes"}),
            ("k", 2, {"": b"x"}),
        ]
        for key, step, files in bad:
            with pytest.raises(StorageError):
                storage.put_checkpoint(run, variant, key=key, step=step, files=files)  # type: ignore[arg-type]
        found = storage.get_checkpoint(run, variant)
        assert found is not None and (found.step, dict(found.files)) == (1, {"a": b"1"})

    def test_a_checkpoint_is_a_snapshot(self, storage: BaseStorage) -> None:
        run = self._run(storage)
        variant = self._variant(storage, run, 1)
        given = bytearray(b"weights")
        files: dict[str, bytes] = {"w": given}  # type: ignore[dict-item]
        storage.put_checkpoint(run, variant, key="k", step=1, files=files)
        given[:] = b"changed"
        files["extra"] = b"late"
        found = storage.get_checkpoint(run, variant)
        assert found is not None and dict(found.files) == {"w": b"weights"}
        with pytest.raises(TypeError):
            found.files["w"] = b"x"  # type: ignore[index]

    def test_puts_from_threads_leave_one_whole_checkpoint(self, storage: BaseStorage) -> None:
        run = self._run(storage)
        variant = self._variant(storage, run, 1)
        seen: list[int] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            for step in range(3):
                n = 10 * i + step
                files = checkpoint_files(n, large=200_000)
                storage.put_checkpoint(run, variant, key="k", step=n, files=files)
                found = storage.get_checkpoint(run, variant)
                assert found is not None and dict(found.files) == checkpoint_files(
                    found.step, large=200_000
                )
                with lock:
                    seen.append(found.step)

        self._in_threads(4, work)
        found = storage.get_checkpoint(run, variant)
        assert found is not None and found.step in seen
        assert dict(found.files) == checkpoint_files(found.step, large=200_000)
