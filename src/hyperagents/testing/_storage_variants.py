"""Conformance tests of programs, variants and evaluations.

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from hyperagents.exceptions import (
    DuplicateError,
    StorageError,
    VariantNotFoundError,
)
from hyperagents.program import Program
from hyperagents.storages import (
    BaseStorage,
    EvaluationSpec,
    EventSpec,
    VariantRecord,
    VariantState,
)
from hyperagents.testing._storage_base import StorageTestBase
from hyperagents.testing._storage_samples import MISSING_ID, assert_utc, make_program

__all__ = ["VariantTests"]

S = VariantState


class VariantTests(StorageTestBase):
    """Conformance tests of programs, variants and evaluations."""

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
        assert_utc(v.heartbeat_at)
        assert_utc(v.created_at)
        assert_utc(v.updated_at)
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
            storage.get_variant(MISSING_ID)
        with pytest.raises(VariantNotFoundError):
            storage.set_variant_program(MISSING_ID, program.id)
        with pytest.raises(VariantNotFoundError):
            storage.set_variant_state(MISSING_ID, S.COMPLETE, expected=S.RUNNING)
        with pytest.raises(VariantNotFoundError):
            storage.claim_variant(MISSING_ID, "me", expected_owner=None)
        with pytest.raises(VariantNotFoundError):
            storage.update_variant_metrics(MISSING_ID, {"a": 1})
        with pytest.raises(VariantNotFoundError):
            self._evaluate(storage, MISSING_ID)
        with pytest.raises(VariantNotFoundError):
            storage.list_evaluations(MISSING_ID)
        run_id = self._run(storage)
        with pytest.raises(VariantNotFoundError):
            storage.add_event(run_id, "x", variant_id=MISSING_ID)
        storage.heartbeat("me", [MISSING_ID])  # unknown ids are ignored

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
        assert_utc(claimed.heartbeat_at)
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
        storage.heartbeat("me", [*mine[:2], theirs, released, MISSING_ID])
        after = {v.id: v.heartbeat_at for v in storage.list_variants(run_id)}
        for v in mine[:2]:
            stamped, previous = after[v], before[v]
            assert stamped is not None and previous is not None
            assert stamped > previous
            assert_utc(stamped)
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
        assert_utc(first.created_at)
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

    def test_add_evaluations_records_stages_in_one_call(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        storage.update_variant_metrics(v, {"train": {"existing": 1}, "other": 2})
        subset = [{"id": "i0", "score": 1.0, "output": 3}]
        specs = [
            EvaluationSpec(
                stage="train_subset",
                split="train",
                score=1.0,
                n=1,
                results=subset,
                metrics={"wall": 0.5},
                event=EventSpec("evaluated", "subset", {"stage": "train_subset"}),
            ),
            EvaluationSpec(
                stage="train",
                split="train",
                score=0.5,
                n=2,
                results=[*subset, {"id": "i1", "score": 0.0, "output": None}],
                metrics={"wall": 1.0},
                event=EventSpec("evaluated", "train"),
            ),
            EvaluationSpec(
                stage="val", split="val", score=0.25, n=1, results=[], metrics={}, event=None
            ),
        ]
        ids = storage.add_evaluations(v, specs, engine="e1", worker=3)
        assert len(ids) == 3 and ids == sorted(ids)
        variant = storage.get_variant(v)
        assert variant.scores == {"train_subset": 1.0, "train": 0.5, "val": 0.25}
        assert variant.metrics == {
            "train": {"existing": 1, "wall": 1.0},
            "train_subset": {"wall": 0.5},
            "val": {},
            "other": 2,
        }
        evaluations = storage.list_evaluations(v)
        assert [e.id for e in evaluations] == ids
        assert [e.stage for e in evaluations] == ["train_subset", "train", "val"]
        assert [list(e.results) for e in evaluations] == [list(s.results) for s in specs]
        assert {(e.engine, e.worker) for e in evaluations} == {("e1", 3)}
        events = storage.list_events(run_id)
        assert [(e.kind, e.message) for e in events] == [
            ("evaluated", "subset"),
            ("evaluated", "train"),
        ]
        assert storage.add_evaluations(v, []) == []

    def test_add_evaluations_is_all_or_nothing(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        self._evaluate(storage, v, "val", split="val", score=0.5)

        def spec(stage: str, score: float = 0.1) -> EvaluationSpec:
            return EvaluationSpec(
                stage=stage,
                split="train",
                score=score,
                n=1,
                results=[{"id": "i0", "score": score}],
                metrics={"wall": 1.0},
                event=EventSpec("evaluated", stage),
            )

        bad_batches = [
            ([spec("train"), spec("val")], DuplicateError),  # a stage recorded already
            ([spec("train"), spec("train")], DuplicateError),  # a stage given twice
            ([spec("train"), spec("test", float("nan"))], StorageError),
        ]
        for batch, error in bad_batches:
            with pytest.raises(error):
                storage.add_evaluations(v, batch)
            assert storage.get_variant(v).scores == {"val": 0.5}
            assert [e.stage for e in storage.list_evaluations(v)] == ["val"]
            assert storage.list_events(run_id) == []
        with pytest.raises(VariantNotFoundError):
            storage.add_evaluations(MISSING_ID, [spec("train")])
        with pytest.raises(VariantNotFoundError):
            storage.add_evaluations(MISSING_ID, [])

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
