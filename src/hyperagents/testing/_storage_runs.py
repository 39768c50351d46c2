"""Conformance tests of runs: create, read, status, engine slot, typed state, delete.

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import time

import pytest

from hyperagents.exceptions import (
    DuplicateError,
    RunNotFoundError,
    StorageError,
    VariantNotFoundError,
)
from hyperagents.storages import BaseStorage, EventSpec, RunRecord, RunSpec, RunStatus
from hyperagents.testing._storage_base import StorageTestBase
from hyperagents.testing._storage_samples import MISSING_ID, assert_utc, make_program

__all__ = ["RunTests"]


class RunTests(StorageTestBase):
    """Conformance tests of runs: create, read, status, engine slot, typed state, delete."""

    # -- runs -------------------------------------------------------------------------------
    def test_create_and_get_run(self, storage: BaseStorage) -> None:
        program = make_program()
        storage.put_program(program)
        run_id = storage.create_run(
            RunSpec(
                name="exp-1",
                task="review",
                mode="hyperagent",
                seed=42,
                config={"generations": 60, "workers": 2},
                seed_program_id=program.id,
                attrs={"note": "first"},
            )
        )
        assert isinstance(run_id, int) and run_id > 0
        run = storage.get_run(run_id)
        assert isinstance(run, RunRecord)
        assert (run.id, run.name, run.task, run.mode, run.seed) == (
            run_id,
            "exp-1",
            "review",
            "hyperagent",
            42,
        )
        assert run.config == {"generations": 60, "workers": 2}
        assert run.attrs == {"note": "first"}
        assert run.seed_program_id == program.id
        assert run.status is RunStatus.CREATED
        assert run.engine is None and run.engine_heartbeat_at is None
        assert (run.task_name, run.experiment, run.arm, run.target_generations) == (None,) * 4
        assert (run.elapsed_seconds, run.pinned_parent, run.pinned_by) == (0.0, None, None)
        assert run.banned == frozenset()
        assert_utc(run.created_at)
        assert_utc(run.updated_at)
        assert storage.get_run_by_name("exp-1") == run

    def test_create_run_attrs_default_to_empty(self, storage: BaseStorage) -> None:
        run = storage.get_run(self._run(storage))
        assert run.attrs == {}

    def test_run_names_are_unique(self, storage: BaseStorage) -> None:
        self._run(storage, "same")
        with pytest.raises(DuplicateError):
            self._run(storage, "same", task="other")
        assert [r.name for r in storage.list_runs()] == ["same"]
        assert storage.get_run_by_name("same").task == "review"

    def test_missing_runs_raise(self, storage: BaseStorage) -> None:
        with pytest.raises(RunNotFoundError):
            storage.get_run(MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.get_run_by_name("nope")
        with pytest.raises(RunNotFoundError):
            storage.set_run_status(MISSING_ID, RunStatus.RUNNING)
        with pytest.raises(RunNotFoundError):
            storage.update_run_attrs(MISSING_ID, {"a": 1})
        with pytest.raises(RunNotFoundError):
            storage.set_target_generations(MISSING_ID, 3)
        with pytest.raises(RunNotFoundError):
            storage.set_elapsed_seconds(MISSING_ID, 1.0)
        with pytest.raises(RunNotFoundError):
            storage.unpin_parent(MISSING_ID)
        with pytest.raises(VariantNotFoundError):
            storage.pin_parent(MISSING_ID, by="me")
        with pytest.raises(VariantNotFoundError):
            storage.ban_variant(MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.update_run_config(MISSING_ID, {"a": 1})
        with pytest.raises(RunNotFoundError):
            storage.claim_run_engine(MISSING_ID, "a", expected=None)
        with pytest.raises(RunNotFoundError):
            storage.release_run_engine(MISSING_ID, "a")
        with pytest.raises(RunNotFoundError):
            storage.delete_run(MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.add_event(MISSING_ID, "x")
        with pytest.raises(RunNotFoundError):
            self._variant(storage, MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.list_variants(MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.count_variants(MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.list_events(MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.get_variant_by_generation(MISSING_ID, 0)

    def test_list_runs_ascending_id(self, storage: BaseStorage) -> None:
        assert storage.list_runs() == []
        ids = [self._run(storage, name) for name in ("c", "a", "b")]
        assert ids == sorted(ids)
        assert [r.id for r in storage.list_runs()] == ids
        assert [r.name for r in storage.list_runs()] == ["c", "a", "b"]

    def test_set_run_status_compare_and_set(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        assert storage.set_run_status(run_id, RunStatus.RUNNING, expected=RunStatus.CREATED)
        assert storage.get_run(run_id).status is RunStatus.RUNNING
        # Wrong expectation: nothing changes.
        assert not storage.set_run_status(run_id, RunStatus.STOPPED, expected=RunStatus.CREATED)
        assert storage.get_run(run_id).status is RunStatus.RUNNING
        # Several expected values.
        assert storage.set_run_status(
            run_id, RunStatus.STOPPED, expected=[RunStatus.CREATED, RunStatus.RUNNING]
        )
        assert not storage.set_run_status(
            run_id, RunStatus.COMPLETE, expected={RunStatus.CREATED, RunStatus.RUNNING}
        )
        assert storage.get_run(run_id).status is RunStatus.STOPPED
        # No expectation: always applies.
        assert storage.set_run_status(run_id, RunStatus.FAILED)
        assert storage.get_run(run_id).status is RunStatus.FAILED

    def test_set_run_status_records_event_only_when_applied(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        ok = storage.set_run_status(
            run_id,
            RunStatus.RUNNING,
            expected=RunStatus.CREATED,
            event=EventSpec("run_started", "started", {"pid": 1}),
        )
        assert ok
        failed = storage.set_run_status(
            run_id,
            RunStatus.RUNNING,
            expected=RunStatus.CREATED,
            event=EventSpec("run_started", "again"),
        )
        assert not failed
        events = storage.list_events(run_id)
        assert [(e.kind, e.message, e.data, e.variant_id) for e in events] == [
            ("run_started", "started", {"pid": 1}, None)
        ]

    def test_set_run_status_updates_updated_at(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        before = storage.get_run(run_id)
        time.sleep(0.002)
        storage.set_run_status(run_id, RunStatus.RUNNING)
        after = storage.get_run(run_id)
        assert after.updated_at > before.updated_at
        assert after.created_at == before.created_at

    def test_claim_run_engine_compare_and_set(self, storage: BaseStorage) -> None:
        run_id = self._run(storage, attrs={"note": 1})
        assert not storage.claim_run_engine(run_id, "a", expected="someone")
        assert storage.get_run(run_id).engine is None
        assert storage.claim_run_engine(run_id, "a", expected=None)
        held = storage.get_run(run_id)
        assert held.engine == "a"
        assert_utc(held.engine_heartbeat_at)
        # Only the holder it read: a second engine expecting an empty slot is refused.
        assert not storage.claim_run_engine(run_id, "b", expected=None)
        assert not storage.claim_run_engine(run_id, "b", expected="c")
        assert storage.get_run(run_id).engine == "a"
        time.sleep(0.002)
        # The holder claiming again refreshes its heartbeat (whatever it expected).
        assert storage.claim_run_engine(run_id, "a", expected="a")
        assert storage.claim_run_engine(run_id, "a", expected=None)
        beat = storage.get_run(run_id).engine_heartbeat_at
        assert beat is not None and held.engine_heartbeat_at is not None
        assert beat > held.engine_heartbeat_at
        # Taking over from a holder the caller judged dead.
        assert storage.claim_run_engine(run_id, "b", expected="a")
        assert not storage.claim_run_engine(run_id, "a", expected="a")  # "a" lost it
        run = storage.get_run(run_id)
        assert run.engine == "b"
        # Claims change nothing else and record no event.
        assert run.status is RunStatus.CREATED and run.attrs == {"note": 1}
        assert storage.list_events(run_id) == []
        with pytest.raises(StorageError):
            storage.claim_run_engine(run_id, "", expected="b")

    def test_release_run_engine_only_by_its_holder(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        storage.set_run_status(run_id, RunStatus.RUNNING)
        assert not storage.release_run_engine(run_id, "a")  # nobody holds it
        assert storage.claim_run_engine(run_id, "a", expected=None)
        done = EventSpec("run.complete", "target reached")
        for other in ("b", ""):
            assert not storage.release_run_engine(
                run_id, other, status=RunStatus.COMPLETE, event=done
            )
        run = storage.get_run(run_id)
        assert (run.engine, run.status) == ("a", RunStatus.RUNNING)
        assert storage.list_events(run_id) == []
        assert storage.release_run_engine(run_id, "a", status=RunStatus.COMPLETE, event=done)
        run = storage.get_run(run_id)
        assert (run.engine, run.engine_heartbeat_at, run.status) == (
            None,
            None,
            RunStatus.COMPLETE,
        )
        assert not storage.release_run_engine(run_id, "a", status=RunStatus.FAILED, event=done)
        assert storage.get_run(run_id).status is RunStatus.COMPLETE
        assert [e.kind for e in storage.list_events(run_id)] == ["run.complete"]
        # Without a status, releasing leaves the status alone; the slot can be claimed again.
        assert storage.claim_run_engine(run_id, "b", expected=None)
        assert storage.release_run_engine(run_id, "b")
        assert storage.get_run(run_id).status is RunStatus.COMPLETE
        assert storage.claim_run_engine(run_id, "c", expected=None)

    def test_update_run_attrs_merges_and_deletes(self, storage: BaseStorage) -> None:
        run_id = self._run(storage, attrs={"a": 1, "b": {"x": 1}, "c": 3})
        storage.update_run_attrs(run_id, {"b": {"y": 2}, "c": None, "d": [1, 2]})
        assert storage.get_run(run_id).attrs == {"a": 1, "b": {"y": 2}, "d": [1, 2]}
        storage.update_run_attrs(run_id, {"missing": None})
        assert storage.get_run(run_id).attrs == {"a": 1, "b": {"y": 2}, "d": [1, 2]}

    def test_update_run_config_replaces(self, storage: BaseStorage) -> None:
        run_id = self._run(storage, config={"a": 1, "b": 2})
        storage.update_run_config(run_id, {"c": 3})
        assert storage.get_run(run_id).config == {"c": 3}

    def test_delete_run_cascades(self, storage: BaseStorage) -> None:
        doomed = self._run(storage, "doomed")
        kept = self._run(storage, "kept")
        program = make_program("child")
        storage.put_program(program)
        doomed_variants = [
            self._variant(storage, doomed, g, program_id=program.id, event=EventSpec("asked"))
            for g in range(3)
        ]
        for v in doomed_variants:
            self._evaluate(storage, v)
        storage.add_event(doomed, "note")
        kept_variant = self._variant(storage, kept, 0, program_id=program.id)
        self._evaluate(storage, kept_variant)
        kept_event = storage.add_event(kept, "note", variant_id=kept_variant)
        blobs = storage.count_blobs()

        storage.delete_run(doomed)

        with pytest.raises(RunNotFoundError):
            storage.get_run(doomed)
        for v in doomed_variants:
            with pytest.raises(VariantNotFoundError):
                storage.get_variant(v)
            with pytest.raises(VariantNotFoundError):
                storage.list_evaluations(v)
        with pytest.raises(RunNotFoundError):
            storage.list_events(doomed)
        # The other run is untouched; programs and blobs stay (they may be shared).
        assert [r.name for r in storage.list_runs()] == ["kept"]
        assert storage.get_variant(kept_variant).scores == {"train": 0.5}
        assert len(storage.list_evaluations(kept_variant)) == 1
        assert [e.id for e in storage.list_events(kept)] == [kept_event]
        assert storage.has_program(program.id)
        assert storage.get_program(program.id) == program
        assert storage.count_blobs() == blobs
        # The name is free again and new ids keep increasing.
        new_id = self._run(storage, "doomed")
        assert new_id > kept

    # -- typed run state ----------------------------------------------------------------------
    def test_create_run_with_its_state(self, storage: BaseStorage) -> None:
        run_id = self._run(
            storage,
            task="tasks/mine.py:Mine",
            task_name="mine",
            experiment="grid",
            arm="frozen-meta+transfer",
            target_generations=12,
            attrs={"note": 1},
        )
        run = storage.get_run(run_id)
        assert (run.task, run.task_name, run.experiment, run.arm) == (
            "tasks/mine.py:Mine",
            "mine",
            "grid",
            "frozen-meta+transfer",
        )
        assert run.target_generations == 12 and run.attrs == {"note": 1}
        assert storage.list_runs() == [run] and storage.get_run_by_name("run") == run

    @pytest.mark.parametrize("bad", [-1, True, 2.5, "3"])
    def test_a_bad_target_is_refused(self, storage: BaseStorage, bad: object) -> None:
        with pytest.raises(StorageError):
            self._run(storage, "bad", target_generations=bad)
        assert storage.list_runs() == []
        run_id = self._run(storage, target_generations=4)
        with pytest.raises(StorageError):
            storage.set_target_generations(run_id, bad)  # type: ignore[arg-type]
        assert storage.get_run(run_id).target_generations == 4

    def test_set_target_generations_and_elapsed_seconds(self, storage: BaseStorage) -> None:
        run_id = self._run(storage, attrs={"note": 1})
        before = storage.get_run(run_id)
        time.sleep(0.002)
        storage.set_target_generations(run_id, 7)
        storage.set_elapsed_seconds(run_id, 12.5)
        run = storage.get_run(run_id)
        assert (run.target_generations, run.elapsed_seconds) == (7, 12.5)
        assert run.updated_at > before.updated_at and run.attrs == {"note": 1}
        assert (before.target_generations, before.elapsed_seconds) == (None, 0.0)
        storage.set_target_generations(run_id, None)
        storage.set_elapsed_seconds(run_id, 0)
        run = storage.get_run(run_id)
        assert (run.target_generations, run.elapsed_seconds) == (None, 0.0)
        assert isinstance(run.elapsed_seconds, float)
        for bad in (-1.0, float("nan"), float("inf"), "x"):
            with pytest.raises(StorageError):
                storage.set_elapsed_seconds(run_id, bad)  # type: ignore[arg-type]
        assert storage.get_run(run_id).elapsed_seconds == 0.0

    def test_pin_parent_and_unpin_compare_and_set(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        other = self._run(storage, "other")
        first, second = (self._variant(storage, run_id, g) for g in (0, 1))
        assert not storage.unpin_parent(run_id)  # nothing pinned
        storage.pin_parent(first, by="ann", event=EventSpec("variant.pinned", "pinned"))
        run = storage.get_run(run_id)
        assert (run.pinned_parent, run.pinned_by) == (first, "ann")
        assert storage.get_run(other).pinned_parent is None
        events = storage.list_events(run_id)
        assert [(e.kind, e.variant_id) for e in events] == [("variant.pinned", first)]
        storage.pin_parent(second, by="bob")  # a new pin replaces the old one
        assert (storage.get_run(run_id).pinned_parent, storage.get_run(run_id).pinned_by) == (
            second,
            "bob",
        )
        assert len(storage.list_events(run_id)) == 1
        # Clearing the pin one read: refused when someone pinned another since.
        assert not storage.unpin_parent(run_id, expected=first)
        assert storage.get_run(run_id).pinned_parent == second
        assert storage.unpin_parent(run_id, expected=second)
        run = storage.get_run(run_id)
        assert (run.pinned_parent, run.pinned_by) == (None, None)
        assert not storage.unpin_parent(run_id, expected=second)
        storage.pin_parent(first, by="ann")
        assert storage.unpin_parent(run_id)  # any pin
        assert storage.get_run(run_id).pinned_parent is None

    def test_ban_variant_is_a_merge(self, storage: BaseStorage) -> None:
        run_id = self._run(storage, attrs={"note": 1})
        other = self._run(storage, "other")
        seed, child, grandchild = (self._variant(storage, run_id, g) for g in range(3))
        foreign = self._variant(storage, other, 0)
        snapshot = storage.get_run(run_id)
        storage.ban_variant(child, event=EventSpec("variant.banned", "banned"))
        storage.ban_variant(grandchild)
        storage.ban_variant(child, event=EventSpec("variant.banned", "again"))
        run = storage.get_run(run_id)
        assert run.banned == frozenset({child, grandchild})
        assert isinstance(run.banned, frozenset) and run.attrs == {"note": 1}
        assert snapshot.banned == frozenset()  # an old snapshot does not change
        assert [(e.message, e.variant_id) for e in storage.list_events(run_id)] == [
            ("banned", child),
            ("again", child),
        ]
        assert storage.get_run(other).banned == frozenset()
        storage.ban_variant(foreign)
        assert storage.get_run(other).banned == frozenset({foreign})
        assert [r.banned for r in storage.list_runs()] == [
            frozenset({child, grandchild}),
            frozenset({foreign}),
        ]
        assert seed not in storage.get_run(run_id).banned

    def test_run_state_goes_with_its_run(self, storage: BaseStorage) -> None:
        run_id = self._run(storage, "doomed", target_generations=3)
        variant = self._variant(storage, run_id)
        storage.pin_parent(variant, by="ann")
        storage.ban_variant(variant)
        storage.delete_run(run_id)
        again = storage.get_run(self._run(storage, "doomed"))
        assert (again.target_generations, again.pinned_parent, again.banned) == (
            None,
            None,
            frozenset(),
        )
