"""The storage conformance suite: every clause of the storage contract, as pytest tests.

Subclass :class:`StorageConformanceTests` in a test module and provide a ``storage`` fixture
that yields a fresh, empty storage for each test::

    import pytest
    from hyperagents.storages import InMemoryStorage
    from hyperagents.testing.storage import StorageConformanceTests


    class TestMyStorage(StorageConformanceTests):
        @pytest.fixture
        def storage(self):
            storage = InMemoryStorage()
            yield storage
            storage.close()

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperagents.exceptions import (
    DuplicateError,
    RunNotFoundError,
    StorageError,
    VariantNotFoundError,
)
from hyperagents.program import Program
from hyperagents.storages._base import (
    BaseStorage,
    EventSpec,
    RunRecord,
    RunStatus,
    VariantRecord,
    VariantState,
)

__all__ = ["StorageConformanceTests", "make_program"]

S = VariantState
_MISSING_ID = 987_654


def make_program(tag: str = "seed", **extra: str | bytes) -> Program:
    """A small hyperagent-like program whose task agent mentions ``tag``."""
    files: dict[str, str | bytes] = {
        "task_agent.py": f"TAG = {tag!r}\n\ndef solve(x):\n    return x\n",
        "meta_agent.py": "def improve(workspace):\n    return workspace\n",
    }
    files.update(extra)
    return Program(files)


def _assert_utc(value: datetime | None) -> None:
    assert isinstance(value, datetime)
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)
    now = datetime.now(UTC)
    assert now - timedelta(minutes=10) < value <= now + timedelta(seconds=5)


#: A JSON value exercising every JSON type (and non-ASCII text, big ints, nesting).
JSON_SAMPLE: dict[str, Any] = {
    "int": 3,
    "big": 2**53 + 1,
    "negative": -7,
    "float": 0.1,
    "exp": 1.5e-300,
    "true": True,
    "false": False,
    "null": None,
    "text": 'héllo, 世界 🚀 "quoted" \\ back \n newline \t tab',
    "empty": {},
    "list": [1, "two", 3.0, None, [], {"k": [True]}],
    "nested": {"a": {"b": {"c": [1, 2, {"d": "e"}]}}},
}


class StorageConformanceTests:
    """Tests every storage backend must pass; subclasses provide a ``storage`` fixture.

    The fixture must yield a fresh, empty storage for each test.
    """

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _run(storage: BaseStorage, name: str = "run", **kwargs: Any) -> int:
        program = make_program()
        storage.put_program(program)
        args: dict[str, Any] = {
            "name": name,
            "task": "review",
            "mode": "hyperagent",
            "seed": 7,
            "config": {"generations": 10},
            "seed_program_id": program.id,
        }
        args.update(kwargs)
        return storage.create_run(**args)

    @staticmethod
    def _variant(storage: BaseStorage, run_id: int, generation: int = 0, **kwargs: Any) -> int:
        args: dict[str, Any] = {"run_id": run_id, "generation": generation, "parent_id": None}
        args.update(kwargs)
        return storage.create_variant(**args)

    @staticmethod
    def _evaluate(
        storage: BaseStorage, variant_id: int, stage: str = "train", **kwargs: Any
    ) -> int:
        args: dict[str, Any] = {
            "variant_id": variant_id,
            "stage": stage,
            "split": "train",
            "score": 0.5,
            "n": 2,
            "results": [{"id": "a", "score": 1.0}, {"id": "b", "score": 0.0}],
            "metrics": {"wall": 0.25},
        }
        args.update(kwargs)
        return storage.add_evaluation(**args)

    # -- runs -------------------------------------------------------------------------------
    def test_create_and_get_run(self, storage: BaseStorage) -> None:
        program = make_program()
        storage.put_program(program)
        run_id = storage.create_run(
            name="exp-1",
            task="review",
            mode="hyperagent",
            seed=42,
            config={"generations": 60, "workers": 2},
            seed_program_id=program.id,
            attrs={"note": "first"},
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
        _assert_utc(run.created_at)
        _assert_utc(run.updated_at)
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
            storage.get_run(_MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.get_run_by_name("nope")
        with pytest.raises(RunNotFoundError):
            storage.set_run_status(_MISSING_ID, RunStatus.RUNNING)
        with pytest.raises(RunNotFoundError):
            storage.update_run_attrs(_MISSING_ID, {"a": 1})
        with pytest.raises(RunNotFoundError):
            storage.update_run_config(_MISSING_ID, {"a": 1})
        with pytest.raises(RunNotFoundError):
            storage.claim_run_engine(_MISSING_ID, "a", expected=None)
        with pytest.raises(RunNotFoundError):
            storage.release_run_engine(_MISSING_ID, "a")
        with pytest.raises(RunNotFoundError):
            storage.delete_run(_MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.add_event(_MISSING_ID, "x")
        with pytest.raises(RunNotFoundError):
            self._variant(storage, _MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.list_variants(_MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.count_variants(_MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.list_events(_MISSING_ID)
        with pytest.raises(RunNotFoundError):
            storage.get_variant_by_generation(_MISSING_ID, 0)

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
        _assert_utc(held.engine_heartbeat_at)
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

    # -- programs ---------------------------------------------------------------------------
    def test_program_round_trip(self, storage: BaseStorage) -> None:
        program = Program(
            {
                "task_agent.py": "print('hi')\n",
                "pkg/util.py": "X = 1\n",
                "pkg/deep/data.bin": bytes(range(256)) + b"\x00\xff",
                "empty.txt": b"",
                "unicode.py": "s = 'héllo 世界'\n",
            }
        )
        assert not storage.has_program(program.id)
        assert storage.put_program(program) == program.id
        assert storage.has_program(program.id)
        loaded = storage.get_program(program.id)
        assert isinstance(loaded, Program)
        assert loaded == program
        assert dict(loaded.items()) == dict(program.items())
        assert loaded.manifest == program.manifest

    def test_put_program_twice_is_a_noop(self, storage: BaseStorage) -> None:
        program = make_program()
        assert storage.put_program(program) == program.id
        blobs = storage.count_blobs()
        assert storage.put_program(Program(dict(program.items()))) == program.id
        assert storage.count_blobs() == blobs
        assert storage.get_program(program.id) == program

    def test_blobs_are_deduplicated(self, storage: BaseStorage) -> None:
        assert storage.count_blobs() == 0
        shared = "def shared():\n    return 1\n"
        first = Program({"a.py": shared, "b.py": "B = 1\n"})
        second = Program({"a.py": shared, "c.py": "C = 1\n", "copy/a.py": shared})
        storage.put_program(first)
        assert storage.count_blobs() == 2
        storage.put_program(second)
        # shared, B, C: the shared content is stored once although three paths hold it.
        assert storage.count_blobs() == 3
        assert storage.get_program(second.id)["copy/a.py"] == shared.encode()

    def test_get_missing_program_raises(self, storage: BaseStorage) -> None:
        with pytest.raises(StorageError):
            storage.get_program("0" * 64)
        assert not storage.has_program("0" * 64)

    def test_empty_program(self, storage: BaseStorage) -> None:
        program = Program({})
        storage.put_program(program)
        assert storage.get_program(program.id) == program

    # -- variants ---------------------------------------------------------------------------
    def test_create_and_get_variant(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        program = make_program("child")
        storage.put_program(program)
        parent = self._variant(storage, run_id, 0, state=S.COMPLETE)
        child = storage.create_variant(
            run_id=run_id,
            generation=1,
            parent_id=parent,
            state=S.RUNNING,
            owner="engine-1",
            program_id=program.id,
            meta_info={"operator": "mutate", "notes": ["a", "b"]},
        )
        assert child > parent > 0
        v = storage.get_variant(child)
        assert isinstance(v, VariantRecord)
        assert (v.id, v.run_id, v.generation, v.parent_id, v.program_id) == (
            child,
            run_id,
            1,
            parent,
            program.id,
        )
        assert v.state is S.RUNNING
        assert v.scores == {} and v.metrics == {}
        assert v.meta_info == {"operator": "mutate", "notes": ["a", "b"]}
        assert v.reason is None
        assert v.owner == "engine-1"
        _assert_utc(v.heartbeat_at)
        _assert_utc(v.created_at)
        _assert_utc(v.updated_at)
        p = storage.get_variant(parent)
        assert p.state is S.COMPLETE
        assert p.owner is None and p.heartbeat_at is None
        assert p.program_id is None and p.meta_info == {}

    def test_variant_generation_is_unique_per_run(self, storage: BaseStorage) -> None:
        run_a = self._run(storage, "a")
        run_b = self._run(storage, "b")
        first = self._variant(storage, run_a, 3, event=EventSpec("asked"))
        with pytest.raises(DuplicateError):
            self._variant(storage, run_a, 3, event=EventSpec("asked"))
        # Nothing of the failed call is visible (its event neither).
        assert [v.id for v in storage.list_variants(run_a)] == [first]
        assert len(storage.list_events(run_a)) == 1
        # The same generation in another run is fine.
        self._variant(storage, run_b, 3)

    def test_create_variant_with_unknown_program_fails(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        with pytest.raises(StorageError):
            self._variant(storage, run_id, 0, program_id="f" * 64)
        assert storage.count_variants(run_id) == 0

    def test_missing_variants_raise(self, storage: BaseStorage) -> None:
        program = make_program()
        storage.put_program(program)
        with pytest.raises(VariantNotFoundError):
            storage.get_variant(_MISSING_ID)
        with pytest.raises(VariantNotFoundError):
            storage.set_variant_program(_MISSING_ID, program.id)
        with pytest.raises(VariantNotFoundError):
            storage.set_variant_state(_MISSING_ID, S.COMPLETE, expected=S.RUNNING)
        with pytest.raises(VariantNotFoundError):
            storage.claim_variant(_MISSING_ID, "me", expected_owner=None)
        with pytest.raises(VariantNotFoundError):
            storage.update_variant_metrics(_MISSING_ID, {"a": 1})
        with pytest.raises(VariantNotFoundError):
            self._evaluate(storage, _MISSING_ID)
        with pytest.raises(VariantNotFoundError):
            storage.list_evaluations(_MISSING_ID)
        run_id = self._run(storage)
        with pytest.raises(VariantNotFoundError):
            storage.add_event(run_id, "x", variant_id=_MISSING_ID)
        storage.heartbeat("me", [_MISSING_ID])  # unknown ids are ignored

    def test_get_variant_by_generation(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        other = self._run(storage, "other")
        v0 = self._variant(storage, run_id, 0)
        v5 = self._variant(storage, run_id, 5)
        self._variant(storage, other, 1)
        found = storage.get_variant_by_generation(run_id, 5)
        assert found is not None and found.id == v5
        found0 = storage.get_variant_by_generation(run_id, 0)
        assert found0 is not None and found0.id == v0
        assert storage.get_variant_by_generation(run_id, 1) is None

    def test_list_variants_ascending_generation_and_filter(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        other = self._run(storage, "other")
        assert storage.list_variants(run_id) == []
        assert storage.count_variants(run_id) == 0
        states = {4: S.COMPLETE, 0: S.COMPLETE, 2: S.RUNNING, 1: S.INVALID, 3: S.EVALUATING}
        ids = {g: self._variant(storage, run_id, g, state=s) for g, s in states.items()}
        self._variant(storage, other, 0)
        listed = storage.list_variants(run_id)
        assert [v.generation for v in listed] == [0, 1, 2, 3, 4]
        assert [v.id for v in listed] == [ids[g] for g in range(5)]
        assert all(v.run_id == run_id for v in listed)
        assert storage.count_variants(run_id) == 5
        complete = storage.list_variants(run_id, states=[S.COMPLETE])
        assert [v.generation for v in complete] == [0, 4]
        active = storage.list_variants(run_id, states={S.RUNNING, S.EVALUATING})
        assert [v.generation for v in active] == [2, 3]
        assert storage.list_variants(run_id, states=[S.PRUNED]) == []
        assert storage.list_variants(run_id, states=[]) == []
        # A generator works as well as a list.
        gen = storage.list_variants(run_id, states=(s for s in [S.INVALID]))
        assert [v.generation for v in gen] == [1]

    def test_variant_ids_increase(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        ids = [self._variant(storage, run_id, g) for g in range(10)]
        assert ids == sorted(ids) and len(set(ids)) == 10 and ids[0] > 0

    def test_set_variant_program(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        variant_id = self._variant(storage, run_id, meta_info={"keep": True})
        program = make_program("child")
        storage.put_program(program)
        storage.set_variant_program(variant_id, program.id)
        v = storage.get_variant(variant_id)
        assert v.program_id == program.id
        assert v.meta_info == {"keep": True}
        storage.set_variant_program(
            variant_id,
            program.id,
            meta_info={"operator": "swap"},
            event=EventSpec("child_made", "made", {"lines": 3}),
        )
        v = storage.get_variant(variant_id)
        assert v.meta_info == {"operator": "swap"}
        events = storage.list_events(run_id)
        assert [(e.kind, e.variant_id, e.data) for e in events] == [
            ("child_made", variant_id, {"lines": 3})
        ]

    def test_set_variant_program_requires_stored_program(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        variant_id = self._variant(storage, run_id)
        with pytest.raises(StorageError):
            storage.set_variant_program(variant_id, "e" * 64, event=EventSpec("child_made"))
        assert storage.get_variant(variant_id).program_id is None
        assert storage.list_events(run_id) == []

    def test_set_variant_state_compare_and_set(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id, owner="engine")
        assert storage.set_variant_state(v, S.EVALUATING, expected=S.RUNNING)
        assert storage.get_variant(v).state is S.EVALUATING
        assert storage.get_variant(v).owner == "engine"
        assert not storage.set_variant_state(v, S.COMPLETE, expected=S.RUNNING, reason="x")
        after_failure = storage.get_variant(v)
        assert after_failure.state is S.EVALUATING and after_failure.reason is None
        assert storage.set_variant_state(
            v, S.PRUNED, expected=[S.RUNNING, S.EVALUATING], reason="below threshold"
        )
        assert storage.get_variant(v).reason == "below threshold"
        # reason=None keeps the stored reason; release clears the owner.
        assert storage.set_variant_state(v, S.COMPLETE, expected=S.PRUNED, release=True)
        final = storage.get_variant(v)
        assert final.state is S.COMPLETE
        assert final.reason == "below threshold"
        assert final.owner is None

    def test_set_variant_state_event_only_when_applied(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        assert not storage.set_variant_state(
            v, S.COMPLETE, expected=S.EVALUATING, event=EventSpec("done")
        )
        assert storage.list_events(run_id) == []
        assert storage.set_variant_state(
            v, S.INVALID, expected=S.RUNNING, reason="syntax error", event=EventSpec("invalid")
        )
        events = storage.list_events(run_id)
        assert [(e.kind, e.variant_id, e.run_id) for e in events] == [("invalid", v, run_id)]

    def test_claim_variant(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        assert storage.get_variant(v).owner is None
        assert not storage.claim_variant(v, "b", expected_owner="a")
        assert storage.claim_variant(v, "a", expected_owner=None, event=EventSpec("claimed"))
        claimed = storage.get_variant(v)
        assert claimed.owner == "a"
        _assert_utc(claimed.heartbeat_at)
        assert not storage.claim_variant(v, "b", expected_owner=None)
        assert storage.get_variant(v).owner == "a"
        time.sleep(0.002)
        # Taking over the work of a dead owner.
        assert storage.claim_variant(v, "b", expected_owner="a")
        taken = storage.get_variant(v)
        assert taken.owner == "b"
        assert taken.heartbeat_at is not None and claimed.heartbeat_at is not None
        assert taken.heartbeat_at > claimed.heartbeat_at
        assert [e.kind for e in storage.list_events(run_id)] == ["claimed"]

    def test_heartbeat_only_stamps_the_owners_variants(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        mine = [self._variant(storage, run_id, g, owner="me") for g in range(3)]
        theirs = self._variant(storage, run_id, 3, owner="them")
        released = self._variant(storage, run_id, 4, owner="me")
        storage.set_variant_state(released, S.FAILED, expected=S.RUNNING, release=True)
        before = {v.id: v.heartbeat_at for v in storage.list_variants(run_id)}
        time.sleep(0.002)
        storage.heartbeat("me", [*mine[:2], theirs, released, _MISSING_ID])
        after = {v.id: v.heartbeat_at for v in storage.list_variants(run_id)}
        for v in mine[:2]:
            stamped, previous = after[v], before[v]
            assert stamped is not None and previous is not None
            assert stamped > previous
            _assert_utc(stamped)
        assert after[mine[2]] == before[mine[2]]  # not listed
        assert after[theirs] == before[theirs]  # someone else's
        assert after[released] == before[released]  # no longer owned
        assert storage.get_variant(released).owner is None
        storage.heartbeat("me", [])  # nothing to do

    def test_stale_work_can_be_found(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id, owner="dead")
        time.sleep(0.01)
        cutoff = datetime.now(UTC)
        live = self._variant(storage, run_id, 1, owner="alive")
        active = storage.list_variants(run_id, states=[S.RUNNING, S.EVALUATING])
        stale = [x.id for x in active if x.heartbeat_at is not None and x.heartbeat_at < cutoff]
        assert stale == [v]
        assert live not in stale

    def test_update_variant_metrics_merges(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        storage.update_variant_metrics(v, {"tokens": 10, "cost": 0.5})
        storage.update_variant_metrics(v, {"tokens": 12, "errors": {"timeout": 1}})
        assert storage.get_variant(v).metrics == {
            "tokens": 12,
            "cost": 0.5,
            "errors": {"timeout": 1},
        }

    # -- evaluations ------------------------------------------------------------------------
    def test_add_evaluation_denormalises_scores(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        storage.update_variant_metrics(v, {"train": {"existing": 1, "wall": 9.0}, "other": 2})
        results = [
            {"id": f"i{i}", "score": i / 600, "feedback": "ok" if i % 2 else "wrong", "output": i}
            for i in range(600)
        ]
        eval_id = storage.add_evaluation(
            variant_id=v,
            stage="train",
            split="train",
            score=0.75,
            n=600,
            results=results,
            metrics={"wall": 1.5, "errors": 0},
            event=EventSpec("evaluated", "train done", {"score": 0.75}),
        )
        assert eval_id > 0
        variant = storage.get_variant(v)
        assert variant.scores == {"train": 0.75}
        assert variant.metrics == {"train": {"existing": 1, "wall": 1.5, "errors": 0}, "other": 2}
        second = self._evaluate(storage, v, "val", split="val", score=0.25, metrics={"wall": 2})
        assert second > eval_id
        variant = storage.get_variant(v)
        assert variant.scores == {"train": 0.75, "val": 0.25}
        assert variant.metrics["val"] == {"wall": 2}
        evaluations = storage.list_evaluations(v)
        assert [e.id for e in evaluations] == [eval_id, second]
        first = evaluations[0]
        assert (first.variant_id, first.stage, first.split, first.score, first.n) == (
            v,
            "train",
            "train",
            0.75,
            600,
        )
        assert list(first.results) == results
        assert first.metrics == {"wall": 1.5, "errors": 0}
        _assert_utc(first.created_at)
        assert [e.kind for e in storage.list_events(run_id)] == ["evaluated"]

    def test_add_evaluation_stage_is_unique(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        self._evaluate(storage, v, "train", score=0.5)
        with pytest.raises(DuplicateError):
            self._evaluate(storage, v, "train", score=0.9, event=EventSpec("evaluated"))
        # Atomic: neither the score nor the event of the failed call is visible.
        assert storage.get_variant(v).scores == {"train": 0.5}
        assert len(storage.list_evaluations(v)) == 1
        assert storage.list_events(run_id) == []
        # Another variant may use the same stage.
        self._evaluate(storage, self._variant(storage, run_id, 1), "train")

    def test_list_evaluations_empty(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        assert storage.list_evaluations(v) == []

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
    def test_non_finite_score_is_rejected(self, storage: BaseStorage, bad: float) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        with pytest.raises(StorageError):
            self._evaluate(storage, v, score=bad)
        assert storage.list_evaluations(v) == []
        assert storage.get_variant(v).scores == {}

    def test_non_json_results_are_rejected_atomically(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        with pytest.raises(StorageError):
            self._evaluate(storage, v, results=[{"id": 1, "score": float("nan")}])
        with pytest.raises(StorageError):
            self._evaluate(storage, v, metrics={"bad": object()})
        assert storage.list_evaluations(v) == []
        assert storage.get_variant(v).scores == {}
        assert storage.get_variant(v).metrics == {}

    # -- events -----------------------------------------------------------------------------
    def test_events_filtering(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        other = self._run(storage, "other")
        v1 = self._variant(storage, run_id, 0)
        v2 = self._variant(storage, run_id, 1)
        ids = [
            storage.add_event(run_id, "started", "go"),
            storage.add_event(run_id, "asked", variant_id=v1, data={"g": 0}),
            storage.add_event(other, "asked"),
            storage.add_event(run_id, "told", variant_id=v1),
            storage.add_event(run_id, "asked", variant_id=v2, data={"g": 1}),
            storage.add_event(run_id, "told", variant_id=v2),
        ]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        mine = [ids[0], ids[1], ids[3], ids[4], ids[5]]
        events = storage.list_events(run_id)
        assert [e.id for e in events] == mine
        assert all(e.run_id == run_id for e in events)
        assert events[0].kind == "started" and events[0].message == "go"
        assert events[0].data == {} and events[0].variant_id is None
        assert events[1].data == {"g": 0} and events[1].variant_id == v1
        for event in events:
            _assert_utc(event.created_at)
        assert [e.id for e in storage.list_events(run_id, after_id=ids[1])] == mine[2:]
        assert storage.list_events(run_id, after_id=ids[-1]) == []
        assert [e.id for e in storage.list_events(run_id, kinds=["asked"])] == [ids[1], ids[4]]
        assert [e.id for e in storage.list_events(run_id, kinds={"asked", "started"})] == [
            ids[0],
            ids[1],
            ids[4],
        ]
        assert storage.list_events(run_id, kinds=[]) == []
        assert [e.id for e in storage.list_events(run_id, variant_id=v2)] == [ids[4], ids[5]]
        assert [e.id for e in storage.list_events(run_id, limit=2)] == mine[:2]
        assert storage.list_events(run_id, limit=0) == []
        combined = storage.list_events(
            run_id, after_id=ids[1], kinds=("told",), variant_id=v2, limit=5
        )
        assert [e.id for e in combined] == [ids[5]]
        assert [e.id for e in storage.list_events(run_id, after_id=ids[0], limit=1)] == [ids[1]]
        assert [e.id for e in storage.list_events(other)] == [ids[2]]
        # Paging backwards: the newest first, below a cursor.
        newest = storage.list_events(run_id, newest_first=True, limit=2)
        assert [e.id for e in newest] == [ids[5], ids[4]]
        assert [e.id for e in storage.list_events(run_id, before_id=ids[4])] == mine[:3]
        older = storage.list_events(run_id, before_id=ids[4], newest_first=True, limit=2)
        assert [e.id for e in older] == [ids[3], ids[1]]
        assert [
            e.id
            for e in storage.list_events(
                run_id, after_id=ids[0], before_id=ids[5], kinds=["told"], newest_first=True
            )
        ] == [ids[3]]

    def test_llm_calls_round_trip_and_filters(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        other = self._run(storage, "other")
        v1 = self._variant(storage, run_id, 0)
        request = {"messages": [{"role": "user", "content": "hi ✓"}], "params": {"seed": 1}}
        first = storage.add_llm_call(
            run_id,
            key="k1",
            provider="fake",
            model="m",
            request=request,
            reply="hello",
            prompt_tokens=3,
            completion_tokens=2,
            cost=0.5,
            latency=0.25,
            purpose="improve",
            variant_id=v1,
        )
        second = storage.add_llm_call(
            run_id,
            key="k2",
            provider="fake",
            model="m",
            request=request,
            error="429",
            attempt=2,
        )
        storage.add_llm_call(other, key="k3", provider="fake", model="m", request=request)
        third = storage.add_llm_call(
            run_id,
            key="k1",
            provider="fake",
            model="m",
            request=request,
            reply="hello",
            cached=True,
        )
        assert first < second < third
        calls = storage.list_llm_calls(run_id)
        assert [c.id for c in calls] == [first, second, third]
        head = calls[0]
        assert (head.key, head.provider, head.model, head.reply, head.error) == (
            "k1",
            "fake",
            "m",
            "hello",
            None,
        )
        assert (head.prompt_tokens, head.completion_tokens, head.cost, head.latency) == (
            3,
            2,
            0.5,
            0.25,
        )
        assert head.request == request and head.purpose == "improve" and head.variant_id == v1
        assert head.attempt == 1 and head.cached is False and calls[2].cached is True
        assert calls[1].error == "429" and calls[1].reply is None and calls[1].attempt == 2
        _assert_utc(head.created_at)
        assert [c.id for c in storage.list_llm_calls(run_id, variant_id=v1)] == [first]
        assert [c.id for c in storage.list_llm_calls(run_id, after_id=first)] == [second, third]
        assert [c.id for c in storage.list_llm_calls(run_id, limit=2)] == [first, second]
        # Snapshots are copies: mutating one changes nothing stored.
        calls[0].request["messages"].append({"role": "user", "content": "x"})
        assert storage.list_llm_calls(run_id)[0].request == request
        # Totals count as the gateway does: cache hits are calls but cost nothing.
        assert storage.llm_usage(run_id) == {
            "calls": 2,
            "cached": 1,
            "errors": 1,
            "prompt_tokens": 3,
            "completion_tokens": 2,
            "cost": 0.5,
        }
        assert storage.llm_usage(run_id, variant_id=v1)["calls"] == 1
        assert storage.llm_usage(other)["calls"] == 1
        with pytest.raises(RunNotFoundError):
            storage.llm_usage(9999)

    def test_llm_calls_errors_and_cascade(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        with pytest.raises(RunNotFoundError):
            storage.add_llm_call(9999, key="k", provider="p", model="m", request={})
        with pytest.raises(RunNotFoundError):
            storage.list_llm_calls(9999)
        with pytest.raises(VariantNotFoundError):
            storage.add_llm_call(
                run_id, key="k", provider="p", model="m", request={}, variant_id=9999
            )
        with pytest.raises(StorageError):
            storage.add_llm_call(
                run_id, key="k", provider="p", model="m", request={"bad": object()}
            )
        storage.add_llm_call(run_id, key="k", provider="p", model="m", request={})
        storage.delete_run(run_id)
        keep = self._run(storage, "after")
        assert storage.list_llm_calls(keep) == []

    def test_event_ids_increase_across_kinds_of_writes(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        a = storage.add_event(run_id, "a")
        v = self._variant(storage, run_id, event=EventSpec("b"))
        c = storage.add_event(run_id, "c", variant_id=v)
        events = storage.list_events(run_id)
        assert [e.kind for e in events] == ["a", "b", "c"]
        assert events[0].id == a and events[2].id == c
        assert a < events[1].id < c

    # -- JSON fields ------------------------------------------------------------------------
    def test_json_fields_round_trip(self, storage: BaseStorage) -> None:
        run_id = self._run(storage, config=JSON_SAMPLE, attrs=JSON_SAMPLE)
        run = storage.get_run(run_id)
        assert run.config == JSON_SAMPLE and run.attrs == JSON_SAMPLE
        v = self._variant(storage, run_id, meta_info=JSON_SAMPLE)
        storage.update_variant_metrics(v, {"x": JSON_SAMPLE})
        self._evaluate(storage, v, results=[JSON_SAMPLE, JSON_SAMPLE], metrics=JSON_SAMPLE)
        variant = storage.get_variant(v)
        assert variant.meta_info == JSON_SAMPLE
        assert variant.metrics["x"] == JSON_SAMPLE
        assert variant.metrics["train"] == JSON_SAMPLE
        evaluation = storage.list_evaluations(v)[0]
        assert list(evaluation.results) == [JSON_SAMPLE, JSON_SAMPLE]
        assert evaluation.metrics == JSON_SAMPLE
        storage.add_event(run_id, "json", data=JSON_SAMPLE)
        assert storage.list_events(run_id)[-1].data == JSON_SAMPLE
        assert isinstance(storage.get_run(run_id).config["big"], int)
        assert isinstance(storage.get_run(run_id).config["float"], float)

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1, 2}, object(), b"bytes"])
    def test_non_json_values_are_rejected(self, storage: BaseStorage, bad: Any) -> None:
        with pytest.raises(StorageError):
            self._run(storage, "bad", config={"x": bad})
        assert storage.list_runs() == []
        run_id = self._run(storage)
        with pytest.raises(StorageError):
            storage.update_run_attrs(run_id, {"x": bad})
        assert storage.get_run(run_id).attrs == {}
        with pytest.raises(StorageError):
            storage.add_event(run_id, "x", data={"x": [bad]})
        with pytest.raises(StorageError):
            self._variant(storage, run_id, meta_info={"x": bad}, event=EventSpec("asked"))
        with pytest.raises(StorageError):
            storage.set_run_status(run_id, RunStatus.RUNNING, event=EventSpec("s", "", {"x": bad}))
        assert storage.get_run(run_id).status is RunStatus.CREATED
        assert storage.list_events(run_id) == []
        assert storage.count_variants(run_id) == 0

    # -- snapshots --------------------------------------------------------------------------
    def test_records_are_frozen(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        with pytest.raises(dataclasses.FrozenInstanceError):
            storage.get_run(run_id).name = "x"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            storage.get_variant(v).state = S.COMPLETE  # type: ignore[misc]

    def test_snapshots_do_not_change_and_do_not_leak(self, storage: BaseStorage) -> None:
        config: dict[str, Any] = {"nested": {"a": [1]}}
        run_id = self._run(storage, config=config)
        config["nested"]["a"].append(2)  # mutating the argument afterwards
        snapshot = storage.get_run(run_id)
        assert snapshot.config == {"nested": {"a": [1]}}
        snapshot.config["nested"]["a"].append(3)
        assert storage.get_run(run_id).config == {"nested": {"a": [1]}}
        storage.update_run_config(run_id, {"other": 1})
        storage.set_run_status(run_id, RunStatus.RUNNING)
        assert snapshot.status is RunStatus.CREATED  # old snapshot unchanged

        meta: dict[str, Any] = {"ops": ["a"]}
        v = self._variant(storage, run_id, meta_info=meta)
        meta["ops"].append("b")
        results: list[dict[str, Any]] = [{"id": 1, "tags": ["x"]}]
        metrics: dict[str, Any] = {"wall": 1.0}
        self._evaluate(storage, v, results=results, metrics=metrics)
        results[0]["tags"].append("y")
        metrics["wall"] = 99.0
        variant = storage.get_variant(v)
        assert variant.meta_info == {"ops": ["a"]}
        assert variant.metrics == {"train": {"wall": 1.0}}
        variant.metrics["train"]["wall"] = 5.0
        variant.scores["train"] = 0.0  # type: ignore[index]
        again = storage.get_variant(v)
        assert again.metrics == {"train": {"wall": 1.0}}
        assert again.scores == {"train": 0.5}
        evaluation = storage.list_evaluations(v)[0]
        assert list(evaluation.results) == [{"id": 1, "tags": ["x"]}]
        evaluation.results[0]["tags"].append("z")
        assert list(storage.list_evaluations(v)[0].results) == [{"id": 1, "tags": ["x"]}]
        storage.set_variant_state(v, S.COMPLETE, expected=S.RUNNING)
        assert variant.state is S.RUNNING

        data: dict[str, Any] = {"k": [1]}
        storage.add_event(run_id, "e", data=data)
        data["k"].append(2)
        event = storage.list_events(run_id)[0]
        assert event.data == {"k": [1]}
        event.data["k"].append(3)
        assert storage.list_events(run_id)[0].data == {"k": [1]}

    # -- times ------------------------------------------------------------------------------
    def test_times_are_utc_aware(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id, owner="me")
        self._evaluate(storage, v)
        storage.add_event(run_id, "x")
        run = storage.get_run(run_id)
        variant = storage.get_variant(v)
        for value in (
            run.created_at,
            run.updated_at,
            variant.created_at,
            variant.updated_at,
            variant.heartbeat_at,
            storage.list_evaluations(v)[0].created_at,
            storage.list_events(run_id)[0].created_at,
        ):
            _assert_utc(value)
        assert variant.created_at is not None and variant.updated_at is not None
        assert variant.created_at <= variant.updated_at

    # -- threads ----------------------------------------------------------------------------
    @staticmethod
    def _in_threads(n: int, target: Callable[[int], None]) -> None:
        errors: list[BaseException] = []
        barrier = threading.Barrier(n)

        def wrapped(i: int) -> None:
            try:
                barrier.wait(timeout=30)
                target(i)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a thread hung"
        assert errors == [], errors

    def test_concurrent_put_program_and_add_event(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        base_blobs = storage.count_blobs()
        shared = Program({"common.py": "SHARED = True\n", "lib/a.py": "A = 1\n"})
        n_threads, per_thread = 8, 10
        event_ids: list[int] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            for j in range(per_thread):
                storage.put_program(shared)
                # Every thread also writes the same "popular" programs at the same time.
                storage.put_program(shared.with_files({"gen.py": f"G = {j}\n"}))
                storage.put_program(shared.with_files({"mine.py": f"M = {i}, {j}\n"}))
                event_id = storage.add_event(run_id, "tick", data={"thread": i, "j": j})
                with lock:
                    event_ids.append(event_id)

        self._in_threads(n_threads, work)
        # common, lib/a, per_thread "gen" contents, n_threads * per_thread "mine" contents.
        expected = base_blobs + 2 + per_thread + n_threads * per_thread
        assert storage.count_blobs() == expected
        assert len(set(event_ids)) == n_threads * per_thread
        events = storage.list_events(run_id, kinds=["tick"])
        assert sorted(event_ids) == [e.id for e in events]
        assert storage.get_program(shared.with_files({"gen.py": "G = 3\n"}).id)["gen.py"] == (
            b"G = 3\n"
        )

    def test_concurrent_compare_and_set_has_one_winner(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        variants = [self._variant(storage, run_id, g) for g in range(5)]
        wins: list[tuple[int, int]] = []
        claims: list[tuple[int, int]] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            for v in variants:
                if storage.set_variant_state(v, S.EVALUATING, expected=S.RUNNING):
                    with lock:
                        wins.append((v, i))
                if storage.claim_variant(v, f"worker-{i}", expected_owner=None):
                    with lock:
                        claims.append((v, i))

        self._in_threads(6, work)
        assert sorted(v for v, _ in wins) == variants
        assert sorted(v for v, _ in claims) == variants
        for v, i in claims:
            assert storage.get_variant(v).owner == f"worker-{i}"

    def _race_for_engine(
        self, storage: BaseStorage, run_id: int, expected: str | None
    ) -> list[str]:
        """Six threads claim the run's engine at once, expecting ``expected``; the winners."""
        winners: list[str] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            if storage.claim_run_engine(run_id, f"engine-{i}", expected=expected):
                with lock:
                    winners.append(f"engine-{i}")

        self._in_threads(6, work)
        return winners

    def test_concurrent_engine_claims_have_one_winner(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        winners = self._race_for_engine(storage, run_id, None)
        assert len(winners) == 1
        assert storage.get_run(run_id).engine == winners[0]
        # A takeover race: every engine judged the same holder dead.
        assert storage.release_run_engine(run_id, winners[0])
        assert storage.claim_run_engine(run_id, "dead-engine", expected=None)
        winners = self._race_for_engine(storage, run_id, "dead-engine")
        assert len(winners) == 1
        assert storage.get_run(run_id).engine == winners[0]

    def test_concurrent_evaluations_of_one_variant_lose_nothing(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        stages = [f"stage{i}" for i in range(8)]

        def work(i: int) -> None:
            self._evaluate(storage, v, stages[i], score=i / 10, metrics={"i": i})
            storage.update_variant_metrics(v, {f"m{i}": i})

        self._in_threads(len(stages), work)
        variant = storage.get_variant(v)
        assert variant.scores == {s: i / 10 for i, s in enumerate(stages)}
        for i, stage in enumerate(stages):
            assert variant.metrics[stage] == {"i": i}
            assert variant.metrics[f"m{i}"] == i
        assert sorted(e.stage for e in storage.list_evaluations(v)) == sorted(stages)

    def test_concurrent_duplicate_generation_has_one_winner(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        outcomes: list[str] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            try:
                self._variant(storage, run_id, 7, owner=f"w{i}")
                result = "ok"
            except DuplicateError:
                result = "duplicate"
            with lock:
                outcomes.append(result)

        self._in_threads(6, work)
        assert sorted(outcomes) == ["duplicate"] * 5 + ["ok"]
        assert storage.count_variants(run_id) == 1
