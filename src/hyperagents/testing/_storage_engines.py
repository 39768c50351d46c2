"""Conformance tests of a run's engines (several engine processes on one run) and of the
engine and worker recorded on variants and evaluations.

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import time

import pytest

from hyperagents.exceptions import RunNotFoundError, StorageError
from hyperagents.storages import BaseStorage, EngineRecord, EngineStatus
from hyperagents.testing._storage_base import StorageTestBase
from hyperagents.testing._storage_samples import MISSING_ID, assert_utc, make_program

__all__ = ["EngineTests"]


class EngineTests(StorageTestBase):
    """Conformance tests of a run's engines."""

    def test_register_and_list_engines(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        assert storage.list_engines(run_id) == []
        first = storage.register_engine(run_id, "h|1|a|x", host="h", pid=1, workers=2)
        second = storage.register_engine(run_id, "h|2|b|y", host="h", pid=2, workers=4)
        assert 0 < first < second
        engines = storage.list_engines(run_id)
        assert [e.id for e in engines] == [first, second]
        one = engines[0]
        assert isinstance(one, EngineRecord)
        assert (one.run_id, one.owner, one.host, one.pid, one.workers) == (
            run_id,
            "h|1|a|x",
            "h",
            1,
            2,
        )
        assert one.status is EngineStatus.ACTIVE and one.left_at is None
        assert_utc(one.joined_at)
        assert_utc(one.heartbeat_at)

    def test_engines_are_per_run(self, storage: BaseStorage) -> None:
        a, b = self._run(storage, "a"), self._run(storage, "b")
        storage.register_engine(a, "o", host="h", pid=1, workers=1)
        storage.register_engine(b, "o", host="h", pid=1, workers=1)
        assert [e.run_id for e in storage.list_engines(a)] == [a]
        assert storage.leave_engine(a, "o")
        assert storage.list_engines(b)[0].status is EngineStatus.ACTIVE

    def test_registering_again_reactivates_the_row(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        engine_id = storage.register_engine(run_id, "o", host="h", pid=1, workers=1)
        assert storage.leave_engine(run_id, "o")
        again = storage.register_engine(run_id, "o", host="h2", pid=9, workers=3)
        assert again == engine_id
        (row,) = storage.list_engines(run_id)
        assert (row.host, row.pid, row.workers) == ("h2", 9, 3)
        assert row.status is EngineStatus.ACTIVE and row.left_at is None

    def test_beat_engine_stamps_active_rows_only(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        assert not storage.beat_engine(run_id, "nobody")
        storage.register_engine(run_id, "o", host="h", pid=1, workers=1)
        before = storage.list_engines(run_id)[0].heartbeat_at
        time.sleep(0.01)
        assert storage.beat_engine(run_id, "o")
        after = storage.list_engines(run_id)[0].heartbeat_at
        assert after > before
        assert storage.leave_engine(run_id, "o", status=EngineStatus.LOST)
        assert not storage.beat_engine(run_id, "o")
        row = storage.list_engines(run_id)[0]
        assert row.heartbeat_at == after and row.status is EngineStatus.LOST
        assert_utc(row.left_at)

    def test_leave_engine_is_compare_and_set(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        storage.register_engine(run_id, "o", host="h", pid=1, workers=1)
        results = []
        self._in_threads(4, lambda i: results.append(storage.leave_engine(run_id, "o")))
        assert sorted(results) == [False, False, False, True]
        assert not storage.leave_engine(run_id, "missing")
        with pytest.raises(StorageError):
            storage.leave_engine(run_id, "o", status=EngineStatus.ACTIVE)

    def test_register_engine_checks(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        with pytest.raises(RunNotFoundError):
            storage.register_engine(MISSING_ID, "o", host="h", pid=1, workers=1)
        with pytest.raises(RunNotFoundError):
            storage.list_engines(MISSING_ID)
        with pytest.raises(StorageError):
            storage.register_engine(run_id, "", host="h", pid=1, workers=1)
        with pytest.raises(StorageError):
            storage.register_engine(run_id, "o", host="h", pid=1, workers=0)
        assert storage.list_engines(run_id) == []

    def test_engines_go_with_their_run(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        storage.register_engine(run_id, "o", host="h", pid=1, workers=1)
        storage.delete_run(run_id)
        with pytest.raises(RunNotFoundError):
            storage.list_engines(run_id)
        again = self._run(storage)
        assert storage.list_engines(again) == []

    def test_joinable_is_a_bool(self, storage: BaseStorage) -> None:
        assert isinstance(storage.joinable, bool)

    # -- who ran what -----------------------------------------------------------------------
    def test_variant_records_engine_and_worker(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        variant_id = self._variant(storage, run_id, owner="o")
        fresh = storage.get_variant(variant_id)
        assert (fresh.engine, fresh.worker) == (None, None)
        program = make_program("child")
        storage.put_program(program)
        storage.set_variant_program(variant_id, program.id, engine="h|1|a|x", worker=3)
        got = storage.get_variant(variant_id)
        assert (got.engine, got.worker) == ("h|1|a|x", 3)
        storage.set_variant_program(variant_id, program.id)  # None keeps them
        listed = storage.list_variants(run_id)[0]
        assert (listed.engine, listed.worker) == ("h|1|a|x", 3)

    def test_evaluation_records_engine_and_worker(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        variant_id = self._variant(storage, run_id)
        self._evaluate(storage, variant_id, "train_subset", engine="h|2|b|y", worker=0)
        self._evaluate(storage, variant_id, "train")
        first, second = storage.list_evaluations(variant_id)
        assert (first.engine, first.worker) == ("h|2|b|y", 0)
        assert (second.engine, second.worker) == (None, None)
