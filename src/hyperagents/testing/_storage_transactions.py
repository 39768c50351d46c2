"""Conformance tests of transactions of several calls (:meth:`BaseStorage.atomically`).

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from hyperagents.exceptions import (
    DuplicateError,
    RunNotFoundError,
    ServiceNotFoundError,
    StorageError,
    VariantNotFoundError,
)
from hyperagents.program import Program
from hyperagents.storages import BaseStorage, EventSpec, RunStatus, ServiceSpec, VariantState
from hyperagents.testing._storage_base import StorageTestBase

__all__ = ["TransactionTests"]

S = VariantState


class _Boom(Exception):
    """An error of the function given to ``atomically`` (not a storage error)."""


class TransactionTests(StorageTestBase):
    """Conformance tests of :meth:`BaseStorage.atomically`."""

    @staticmethod
    def _state(storage: BaseStorage, run_id: int) -> tuple[Any, ...]:
        """Everything a transaction in these tests may change, as plain values."""
        run = storage.get_run(run_id)
        variants = [
            (v.generation, v.state, v.scores, v.metrics, v.meta_info, v.program_id, v.owner)
            for v in storage.list_variants(run_id)
        ]
        evaluations = [
            (e.stage, e.score)
            for v in storage.list_variants(run_id)
            for e in storage.list_evaluations(v.id)
        ]
        events = [(e.id, e.kind, e.variant_id) for e in storage.list_events(run_id)]
        return (
            run.status, run.attrs, run.banned, run.pinned_parent, run.elapsed_seconds,
            variants, evaluations, events, storage.count_blobs(),
        )  # fmt: skip

    def _a_step(self, storage: BaseStorage, run_id: int, variant_id: int) -> None:
        """The writes of one engine step and more: an evaluation, a state change, metrics,
        events, a program, run state."""
        program = Program({"step.py": "STEP = 1\n"})
        storage.put_program(program)
        storage.set_variant_program(variant_id, program.id, meta_info={"m": 1})
        assert storage.set_variant_state(
            variant_id, S.EVALUATING, expected=S.RUNNING, event=EventSpec("v.validated")
        )
        self._evaluate(storage, variant_id, "train_subset", event=EventSpec("v.evaluated"))
        storage.update_variant_metrics(variant_id, {"timing": {"total_seconds": 1.5}})
        storage.add_event(run_id, "note", variant_id=variant_id, data={"k": [1, 2]})
        storage.update_run_attrs(run_id, {"a": 1})
        storage.set_elapsed_seconds(run_id, 12.5)
        storage.ban_variant(variant_id)
        assert storage.set_run_status(run_id, RunStatus.RUNNING, expected=RunStatus.CREATED)

    def test_atomically_commits_every_call_and_returns_what_fn_returned(
        self, storage: BaseStorage
    ) -> None:
        run_id = self._run(storage)
        variant_id = self._variant(storage, run_id)

        def step() -> str:
            self._a_step(storage, run_id, variant_id)
            # Each call sees what the calls before it did.
            seen = storage.get_variant(variant_id)
            assert seen.state is S.EVALUATING and seen.scores == {"train_subset": 0.5}
            assert seen.metrics["timing"] == {"total_seconds": 1.5}
            assert storage.get_run(run_id).banned == frozenset({variant_id})
            return "done"

        assert storage.atomically(step) == "done"
        variant = storage.get_variant(variant_id)
        assert (variant.state, variant.meta_info) == (S.EVALUATING, {"m": 1})
        assert [e.kind for e in storage.list_events(run_id)] == [
            "v.validated",
            "v.evaluated",
            "note",
        ]
        run = storage.get_run(run_id)
        assert (run.status, run.attrs, run.elapsed_seconds) == (RunStatus.RUNNING, {"a": 1}, 12.5)
        assert storage.has_program(Program({"step.py": "STEP = 1\n"}).id)

    def test_an_exception_in_atomically_leaves_nothing_written(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        variant_id = self._variant(storage, run_id)
        before = self._state(storage, run_id)
        calls = []

        def step() -> None:
            calls.append(1)
            self._variant(storage, run_id, 1, event=EventSpec("v.created"))
            self._a_step(storage, run_id, variant_id)
            raise _Boom("the step failed after its writes")

        with pytest.raises(_Boom, match="after its writes"):
            storage.atomically(step)
        assert calls == [1]  # an error of fn's own is not retried
        assert self._state(storage, run_id) == before
        assert not storage.has_program(Program({"step.py": "STEP = 1\n"}).id)
        # The storage goes on as before: the same writes succeed afterwards.
        storage.atomically(lambda: self._a_step(storage, run_id, variant_id))
        assert storage.get_variant(variant_id).state is S.EVALUATING

    def test_a_failed_call_spoils_the_transaction(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        before = self._state(storage, run_id)
        after_the_error: list[str] = []

        def step() -> None:
            self._variant(storage, run_id, 0)
            with pytest.raises(VariantNotFoundError):
                self._evaluate(storage, 10**6)
            try:
                storage.add_event(run_id, "after")
            except StorageError as exc:
                after_the_error.append(str(exc))

        with pytest.raises(StorageError, match="earlier storage call"):
            storage.atomically(step)
        assert after_the_error and "earlier storage call" in after_the_error[0]
        assert self._state(storage, run_id) == before

    def test_errors_inside_atomically_are_the_contract_s(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        variant_id = self._variant(storage, run_id)
        self._evaluate(storage, variant_id, "train")
        # Compare-and-set answers False without spoiling anything.
        assert storage.atomically(
            lambda: storage.set_variant_state(variant_id, S.COMPLETE, expected=S.EVALUATING)
        ) is False  # fmt: skip
        with pytest.raises(DuplicateError):
            storage.atomically(lambda: self._variant(storage, run_id, 0))
        with pytest.raises(DuplicateError):
            storage.atomically(lambda: self._evaluate(storage, variant_id, "train"))
        with pytest.raises(StorageError, match="JSON"):
            storage.atomically(lambda: storage.add_event(run_id, "x", data={"bad": {1, 2}}))
        assert storage.count_variants(run_id) == 1
        assert [e.stage for e in storage.list_evaluations(variant_id)] == ["train"]

    def test_nested_atomically_is_a_savepoint(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)

        def inner_fails() -> None:
            self._variant(storage, run_id, 2, event=EventSpec("inner"))
            raise _Boom("inner")

        def inner_spoiled() -> None:
            self._variant(storage, run_id, 3)
            with pytest.raises(DuplicateError):
                self._variant(storage, run_id, 0)

        def outer() -> int:
            self._variant(storage, run_id, 0, event=EventSpec("outer"))
            kept = storage.atomically(lambda: self._variant(storage, run_id, 1))
            with pytest.raises(_Boom):
                storage.atomically(inner_fails)
            with pytest.raises(StorageError, match="earlier storage call"):
                storage.atomically(inner_spoiled)
            # The enclosing transaction goes on: its calls and the inner one that succeeded.
            assert [v.generation for v in storage.list_variants(run_id)] == [0, 1]
            storage.add_event(run_id, "after")
            return kept

        kept = storage.atomically(outer)
        assert [v.generation for v in storage.list_variants(run_id)] == [0, 1]
        assert storage.get_variant(kept).generation == 1
        assert [e.kind for e in storage.list_events(run_id)] == ["outer", "after"]

    def test_a_nested_savepoint_is_undone_with_its_enclosing_transaction(
        self, storage: BaseStorage
    ) -> None:
        run_id = self._run(storage)
        before = self._state(storage, run_id)

        def outer() -> None:
            storage.atomically(lambda: self._variant(storage, run_id, 0, event=EventSpec("in")))
            storage.update_run_attrs(run_id, {"x": 1})
            raise _Boom("outer")

        with pytest.raises(_Boom):
            storage.atomically(outer)
        assert self._state(storage, run_id) == before

    def test_undone_deletions_keep_ids_in_order(self, storage: BaseStorage) -> None:
        keep = self._run(storage, "keep")
        doomed = self._run(storage, "doomed")
        for run_id in (keep, doomed, keep):
            variant_id = self._variant(storage, run_id, storage.count_variants(run_id))
            storage.add_event(run_id, "e", variant_id=variant_id)
            self._evaluate(storage, variant_id)
        before = (self._state(storage, keep), self._state(storage, doomed))

        def delete_then_fail() -> None:
            storage.delete_run(doomed)
            raise _Boom("undo the deletion")

        with pytest.raises(_Boom):
            storage.atomically(delete_then_fail)
        assert (self._state(storage, keep), self._state(storage, doomed)) == before
        assert [r.name for r in storage.list_runs()] == ["keep", "doomed"]
        new = storage.add_event(keep, "new")
        assert [e.id for e in storage.list_events(keep)][-1] == new

    def test_other_threads_see_all_of_a_transaction_or_none(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        inside, seen = threading.Event(), []

        def step() -> None:
            self._variant(storage, run_id, 0)
            inside.set()
            # A backend that makes other threads wait keeps the reader waiting until the
            # commit; one that lets them read shows them the state before the transaction.
            threading.Event().wait(0.3)
            storage.add_event(run_id, "second half")

        def reader() -> None:
            assert inside.wait(30)
            seen.append((storage.count_variants(run_id), len(storage.list_events(run_id))))

        thread = threading.Thread(target=reader)
        thread.start()
        storage.atomically(step)
        thread.join(60)
        assert seen in ([(0, 0)], [(1, 1)])
        assert (storage.count_variants(run_id), len(storage.list_events(run_id))) == (1, 1)

    def test_lock_record_serialises_reading_a_log_and_appending_to_it(
        self, storage: BaseStorage
    ) -> None:
        run_id = self._run(storage)
        champion = self._variant(storage, run_id, 0)
        service_id = storage.create_service(
            ServiceSpec(name="locked", run_id=run_id, champion_id=champion)
        )
        n_threads, per_thread = 4, 5

        def next_number(i: int) -> None:  # each appends the count of entries it read
            for _ in range(per_thread):

                def append() -> None:
                    if i % 2:
                        storage.lock_record(run_id=run_id)
                        n = len(storage.list_events(run_id, kinds=["n"]))
                        storage.add_event(run_id, "n", data={"n": n})
                    else:
                        storage.lock_record(service_id=service_id)
                        n = len(storage.list_service_events(service_id, kinds=["n"]))
                        storage.add_service_event(service_id, "n", "next", data={"n": n})

                storage.atomically(append)

        self._in_threads(n_threads, next_number)
        half = n_threads // 2 * per_thread
        run_ns = [e.data["n"] for e in storage.list_events(run_id, kinds=["n"])]
        service_events = storage.list_service_events(service_id, kinds=["n"])
        assert sorted(run_ns) == list(range(half))  # none read what another was appending
        assert sorted(e.data["n"] for e in service_events) == list(range(half))

    def test_lock_record_errors(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        with pytest.raises(StorageError, match="inside atomically"):
            storage.lock_record(run_id=run_id)
        with pytest.raises(ValueError, match="exactly one"):
            storage.atomically(lambda: storage.lock_record())
        with pytest.raises(ValueError, match="exactly one"):
            storage.atomically(lambda: storage.lock_record(run_id=run_id, service_id=1))
        with pytest.raises(RunNotFoundError):
            storage.atomically(lambda: storage.lock_record(run_id=10**9))
        with pytest.raises(ServiceNotFoundError):
            storage.atomically(lambda: storage.lock_record(service_id=10**9))
        storage.atomically(lambda: storage.lock_record(run_id=run_id))  # and commits
