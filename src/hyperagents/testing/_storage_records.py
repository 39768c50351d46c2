"""Conformance tests of events, LLM calls, JSON fields, snapshots and times.

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest

from hyperagents.exceptions import (
    RunNotFoundError,
    StorageError,
    VariantNotFoundError,
)
from hyperagents.storages import (
    BaseStorage,
    EventSpec,
    LLMCallSpec,
    RunStatus,
    VariantState,
)
from hyperagents.testing._storage_base import StorageTestBase
from hyperagents.testing._storage_samples import JSON_SAMPLE, assert_utc

__all__ = ["RecordTests"]

S = VariantState


class RecordTests(StorageTestBase):
    """Conformance tests of events, LLM calls, JSON fields, snapshots and times."""

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
            assert_utc(event.created_at)
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

    def test_delete_events_by_kind_below_an_id(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        other = self._run(storage, "other")
        ids = [storage.add_event(run_id, kind) for kind in ("step", "round", "step", "step")]
        theirs = storage.add_event(other, "step")
        assert storage.delete_events(run_id, kinds=["step"], before_id=ids[3]) == 2
        assert [e.id for e in storage.list_events(run_id)] == [ids[1], ids[3]]
        assert storage.delete_events(run_id, kinds=["nothing"]) == 0
        assert storage.delete_events(run_id, kinds=["step"]) == 1
        assert [e.id for e in storage.list_events(run_id)] == [ids[1]]
        assert [e.id for e in storage.list_events(other)] == [theirs]  # another run's stay
        assert storage.add_event(run_id, "step") > theirs  # no id is used again

        def cut() -> None:
            storage.delete_events(run_id, kinds=["round", "step"])
            raise ValueError("spoilt")

        with pytest.raises(ValueError):
            storage.atomically(cut)  # undone with the transaction
        assert len(storage.list_events(run_id)) == 2
        with pytest.raises(RunNotFoundError):
            storage.delete_events(999_999, kinds=["step"])

    #: The request of every call :meth:`_llm_calls` records.
    _REQUEST: ClassVar[dict[str, Any]] = {
        "messages": [{"role": "user", "content": "hi ✓"}],
        "params": {"seed": 1},
    }

    def _llm_calls(self, storage: BaseStorage) -> tuple[int, int, int, list[int]]:
        """A run with a variant and three calls (answered, failed, cached), another run with
        one call; returns both runs, the variant and the first run's call ids."""
        run_id = self._run(storage)
        other = self._run(storage, "other")
        v1 = self._variant(storage, run_id, 0)
        call = LLMCallSpec(key="k1", provider="fake", model="m", request=self._REQUEST)
        first = storage.add_llm_call(
            run_id,
            dataclasses.replace(
                call,
                reply="hello",
                prompt_tokens=3,
                completion_tokens=2,
                cost=0.5,
                latency=0.25,
                purpose="improve",
                variant_id=v1,
            ),
        )
        second = storage.add_llm_call(
            run_id, dataclasses.replace(call, key="k2", error="429", attempt=2)
        )
        storage.add_llm_call(other, dataclasses.replace(call, key="k3"))
        third = storage.add_llm_call(run_id, dataclasses.replace(call, reply="hello", cached=True))
        return run_id, other, v1, [first, second, third]

    def test_llm_calls_round_trip_and_filters(self, storage: BaseStorage) -> None:
        run_id, _, v1, ids = self._llm_calls(storage)
        first, second, third = ids
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
        assert head.request == self._REQUEST and head.purpose == "improve"
        assert head.variant_id == v1 and head.run_id == run_id
        assert head.attempt == 1 and head.cached is False and calls[2].cached is True
        assert calls[1].error == "429" and calls[1].reply is None and calls[1].attempt == 2
        assert_utc(head.created_at)
        assert [c.id for c in storage.list_llm_calls(run_id, variant_id=v1)] == [first]
        assert [c.id for c in storage.list_llm_calls(run_id, after_id=first)] == [second, third]
        assert [c.id for c in storage.list_llm_calls(run_id, limit=2)] == [first, second]
        # Snapshots are copies: mutating one changes nothing stored.
        calls[0].request["messages"].append({"role": "user", "content": "x"})
        assert storage.list_llm_calls(run_id)[0].request == self._REQUEST

    def test_llm_usage_counts_as_the_gateway(self, storage: BaseStorage) -> None:
        run_id, other, v1, _ = self._llm_calls(storage)
        # Cache hits are calls but cost nothing; failed attempts are errors.
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
        call = LLMCallSpec(key="k", provider="p", model="m", request={})
        with pytest.raises(RunNotFoundError):
            storage.add_llm_call(9999, call)
        with pytest.raises(RunNotFoundError):
            storage.list_llm_calls(9999)
        with pytest.raises(VariantNotFoundError):
            storage.add_llm_call(run_id, dataclasses.replace(call, variant_id=9999))
        with pytest.raises(StorageError):
            storage.add_llm_call(run_id, dataclasses.replace(call, request={"bad": object()}))
        assert storage.list_llm_calls(run_id) == []
        storage.add_llm_call(run_id, call)
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
            assert_utc(value)
        assert variant.created_at is not None and variant.updated_at is not None
        assert variant.created_at <= variant.updated_at
