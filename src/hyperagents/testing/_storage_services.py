"""Conformance tests of services: their routing (compare-and-set), the requests they answered
(bounded, completed once, listed by window and page), feedback, and their logs.

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from hyperagents.exceptions import (
    DuplicateError,
    RequestNotFoundError,
    RunNotFoundError,
    ServiceNotFoundError,
    StorageError,
    VariantNotFoundError,
)
from hyperagents.storages import (
    MAX_ERROR_CHARS,
    MAX_REQUEST_JSON,
    BaseStorage,
    CandidateState,
    EventSpec,
    ServiceRouting,
    ServiceSpec,
    ServiceStatus,
)
from hyperagents.testing._storage_base import StorageTestBase
from hyperagents.testing._storage_samples import MISSING_ID, assert_utc

__all__ = ["ServiceTests"]


class ServiceTests(StorageTestBase):
    """Conformance tests of services."""

    def _service(self, storage: BaseStorage, name: str = "svc") -> tuple[int, int, int]:
        """A service over a fresh run: (service id, champion id, another variant's id)."""
        run_id = self._run(storage, f"run-{name}")
        champion = self._variant(storage, run_id, 0)
        other = self._variant(storage, run_id, 1)
        spec = ServiceSpec(name=name, run_id=run_id, champion_id=champion, seed=3, goal={"q": 0.8})
        return storage.create_service(spec), champion, other

    def test_create_and_get_service(self, storage: BaseStorage) -> None:
        service_id, champion, _ = self._service(storage)
        service = storage.get_service(service_id)
        assert (service.name, service.champion_id, service.seed, service.goal) == (
            "svc",
            champion,
            3,
            {"q": 0.8},
        )
        assert service.candidate_id is None and service.candidate_state is CandidateState.NONE
        assert service.status is ServiceStatus.CREATED and service.candidate_share == 0.0
        assert_utc(service.created_at)
        assert storage.get_service_by_name("svc") == service
        assert [s.id for s in storage.list_services()] == [service_id]
        assert storage.list_services(run_id=service.run_id) == [service]
        assert storage.list_services(run_id=MISSING_ID) == []

    def test_create_service_errors(self, storage: BaseStorage) -> None:
        service_id, champion, _ = self._service(storage)
        run_id = storage.get_service(service_id).run_id
        with pytest.raises(DuplicateError):
            storage.create_service(ServiceSpec(name="svc", run_id=run_id, champion_id=champion))
        with pytest.raises(RunNotFoundError):
            storage.create_service(ServiceSpec(name="b", run_id=MISSING_ID, champion_id=champion))
        with pytest.raises(VariantNotFoundError):
            storage.create_service(ServiceSpec(name="c", run_id=run_id, champion_id=MISSING_ID))
        with pytest.raises(StorageError):
            spec = ServiceSpec(name="d", run_id=run_id, champion_id=champion, goal={"x": object()})
            storage.create_service(spec)
        with pytest.raises(ServiceNotFoundError):
            storage.get_service(MISSING_ID)
        with pytest.raises(ServiceNotFoundError):
            storage.get_service_by_name("nope")
        assert len(storage.list_services()) == 1

    def test_routing_is_compare_and_set(self, storage: BaseStorage) -> None:
        service_id, champion, other = self._service(storage)
        start = storage.get_service(service_id).routing
        shadow = ServiceRouting(
            champion_id=champion, candidate_id=other, candidate_state=CandidateState.SHADOW
        )
        event = EventSpec(kind="shadow", message="candidate in shadow", data={"v": other})
        assert storage.set_service_routing(service_id, shadow, expected=start, event=event)
        assert storage.get_service(service_id).routing == shadow
        ab = ServiceRouting(
            champion_id=champion,
            candidate_id=other,
            candidate_state=CandidateState.AB,
            candidate_share=0.25,
        )
        # The stale view loses, and records nothing.
        assert not storage.set_service_routing(service_id, ab, expected=start, event=event)
        assert storage.set_service_routing(service_id, ab, expected=shadow)
        assert storage.get_service(service_id).candidate_share == 0.25
        events = storage.list_service_events(service_id)
        assert [(e.kind, e.data) for e in events] == [("shadow", {"v": other})]

    def test_routing_is_checked(self, storage: BaseStorage) -> None:
        service_id, champion, other = self._service(storage)
        start = storage.get_service(service_id).routing
        bad = [
            ServiceRouting(champion_id=champion, candidate_share=1.5),
            ServiceRouting(champion_id=champion, candidate_share=float("nan")),
            ServiceRouting(champion_id=champion, candidate_state=CandidateState.AB),
            ServiceRouting(
                champion_id=champion, candidate_id=champion, candidate_state=CandidateState.SHADOW
            ),
        ]
        for routing in bad:
            with pytest.raises(StorageError):
                storage.set_service_routing(service_id, routing, expected=start)
        missing = ServiceRouting(
            champion_id=champion, candidate_id=MISSING_ID, candidate_state=CandidateState.SHADOW
        )
        with pytest.raises(VariantNotFoundError):
            storage.set_service_routing(service_id, missing, expected=start)
        with pytest.raises(ServiceNotFoundError):
            storage.set_service_routing(MISSING_ID, start, expected=start)
        assert storage.get_service(service_id).routing == start
        promoted = ServiceRouting(
            champion_id=other, candidate_id=champion, candidate_state=CandidateState.PROMOTED
        )
        assert storage.set_service_routing(service_id, promoted, expected=start)

    def test_status_and_goal(self, storage: BaseStorage) -> None:
        service_id, _, _ = self._service(storage)
        serving = ServiceStatus.SERVING
        assert storage.set_service_status(service_id, serving, expected=ServiceStatus.CREATED)
        assert not storage.set_service_status(
            service_id, ServiceStatus.STOPPED, expected=[ServiceStatus.CREATED]
        )
        event = EventSpec(kind="stopped")
        assert storage.set_service_status(service_id, ServiceStatus.STOPPED, event=event)
        assert storage.get_service(service_id).status is ServiceStatus.STOPPED
        storage.update_service_goal(service_id, {"metric": "feedback", "hold": 0.7})
        assert storage.get_service(service_id).goal == {"metric": "feedback", "hold": 0.7}
        assert [e.kind for e in storage.list_service_events(service_id)] == ["stopped"]
        with pytest.raises(ServiceNotFoundError):
            storage.set_service_status(MISSING_ID, serving)
        with pytest.raises(ServiceNotFoundError):
            storage.update_service_goal(MISSING_ID, {})

    def test_request_lifecycle(self, storage: BaseStorage) -> None:
        service_id, champion, other = self._service(storage)
        inputs = {"text": "where is my parcel?", "n": [1, 2.5, None]}
        request_id = storage.add_service_request(
            service_id, variant_id=champion, arm="champion", inputs=inputs
        )
        pending = storage.get_service_request(request_id)
        assert pending.inputs == inputs and not pending.answered and pending.output is None
        assert_utc(pending.created_at)
        assert storage.finish_service_request(request_id, output={"a": "shipping"}, latency=0.5)
        assert not storage.finish_service_request(request_id, error="again", latency=1.0)
        done = storage.get_service_request(request_id)
        assert done.output == {"a": "shipping"} and done.error is None and done.latency == 0.5
        assert done.answered and (done.variant_id, done.arm) == (champion, "champion")
        shadow = storage.add_service_request(
            service_id, variant_id=other, arm="shadow", inputs=inputs, shadow_of=request_id
        )
        assert storage.finish_service_request(shadow, error="x" * 10_000, latency=2.0, cost=0.01)
        failed = storage.get_service_request(shadow)
        assert failed.shadow_of == request_id and failed.output is None
        assert failed.error is not None and len(failed.error) <= MAX_ERROR_CHARS
        assert failed.cost == 0.01

    def test_assign_request(self, storage: BaseStorage) -> None:
        service_id, champion, other = self._service(storage)
        request_id = storage.add_service_request(
            service_id, variant_id=champion, arm="champion", inputs=1
        )
        assert storage.assign_service_request(request_id, variant_id=other, arm="candidate")
        moved = storage.get_service_request(request_id)
        assert (moved.variant_id, moved.arm) == (other, "candidate")
        with pytest.raises(StorageError):
            storage.assign_service_request(request_id, variant_id=other, arm="nope")
        with pytest.raises(VariantNotFoundError):
            storage.assign_service_request(request_id, variant_id=MISSING_ID, arm="champion")
        with pytest.raises(RequestNotFoundError):
            storage.assign_service_request(MISSING_ID, variant_id=other, arm="champion")
        storage.finish_service_request(request_id, output=2, latency=0.1)
        assert not storage.assign_service_request(request_id, variant_id=champion, arm="champion")
        assert storage.get_service_request(request_id).variant_id == other

    def test_request_errors(self, storage: BaseStorage) -> None:
        service_id, champion, _ = self._service(storage)

        def add(**changes: object) -> int:
            args: dict[str, object] = {"variant_id": champion, "arm": "champion", "inputs": 1}
            args.update(changes)
            return storage.add_service_request(service_id, **args)  # type: ignore[arg-type]

        cases: list[tuple[dict[str, object], type[Exception]]] = [
            ({"arm": "other"}, StorageError),
            ({"inputs": "x" * (MAX_REQUEST_JSON + 1)}, StorageError),
            ({"inputs": {"a": float("inf")}}, StorageError),
            ({"variant_id": MISSING_ID}, VariantNotFoundError),
            ({"shadow_of": MISSING_ID}, RequestNotFoundError),
        ]
        for changes, error in cases:
            with pytest.raises(error):
                add(**changes)
        with pytest.raises(ServiceNotFoundError):
            storage.add_service_request(MISSING_ID, variant_id=champion, arm="champion", inputs=1)
        assert storage.count_service_requests(service_id) == 0
        request_id = add()
        for kwargs in [
            {"output": 1, "error": "both", "latency": 0.1},
            {"output": "y" * (MAX_REQUEST_JSON + 1), "latency": 0.1},
            {"output": 1, "latency": -1.0},
            {"output": 1, "latency": 0.1, "cost": float("nan")},
        ]:
            with pytest.raises(StorageError):
                storage.finish_service_request(request_id, **kwargs)  # type: ignore[arg-type]
        assert not storage.get_service_request(request_id).answered
        with pytest.raises(RequestNotFoundError):
            storage.finish_service_request(MISSING_ID, output=1, latency=0.1)
        with pytest.raises(RequestNotFoundError):
            storage.get_service_request(MISSING_ID)

    def test_feedback(self, storage: BaseStorage) -> None:
        service_id, champion, _ = self._service(storage)
        request_id = storage.add_service_request(
            service_id, variant_id=champion, arm="champion", inputs="q"
        )
        for kwargs in [{}, {"feedback": 1.5}, {"feedback": float("nan")}, {"label": {1, 2}}]:
            with pytest.raises(StorageError):
                storage.set_request_feedback(request_id, by="ann", **kwargs)  # type: ignore[arg-type]
        assert not storage.get_service_request(request_id).has_feedback
        storage.set_request_feedback(request_id, label={"team": "billing"}, by="ann")
        first = storage.get_service_request(request_id)
        assert first.label == {"team": "billing"} and first.feedback is None
        assert first.feedback_by == "ann" and first.has_feedback
        assert first.feedback_at is not None
        assert_utc(first.feedback_at)
        storage.set_request_feedback(request_id, feedback=0.25, by="bob")
        second = storage.get_service_request(request_id)
        assert (second.label, second.feedback, second.feedback_by) == (None, 0.25, "bob")
        with pytest.raises(RequestNotFoundError):
            storage.set_request_feedback(MISSING_ID, feedback=1.0, by="ann")

    def test_listing_requests(self, storage: BaseStorage) -> None:
        service_id, champion, other = self._service(storage)
        ids = []
        for i in range(6):
            variant, arm = (other, "candidate") if i % 3 == 2 else (champion, "champion")
            ids.append(
                storage.add_service_request(service_id, variant_id=variant, arm=arm, inputs=i)
            )
        middle = storage.get_service_request(ids[3]).created_at
        for i in (0, 1, 2):
            storage.finish_service_request(
                ids[i], error="boom" if i == 1 else None, output=None if i == 1 else i, latency=0.1
            )
        storage.set_request_feedback(ids[0], feedback=1.0, by="t")
        listed = storage.list_service_requests
        assert [r.id for r in listed(service_id)] == ids
        assert [r.id for r in listed(service_id, limit=2)] == ids[:2]
        assert [r.id for r in listed(service_id, after_id=ids[1], limit=2)] == ids[2:4]
        assert [r.id for r in listed(service_id, newest_first=True, limit=2)] == ids[:3:-1]
        assert [r.id for r in listed(service_id, before_id=ids[2])] == ids[:2]
        assert [r.id for r in listed(service_id, arms=["candidate"])] == [ids[2], ids[5]]
        assert [r.id for r in listed(service_id, variant_id=other)] == [ids[2], ids[5]]
        assert [r.id for r in listed(service_id, answered=False)] == ids[3:]
        assert [r.id for r in listed(service_id, failed=True)] == [ids[1]]
        assert [r.id for r in listed(service_id, with_feedback=True)] == [ids[0]]
        assert [r.id for r in listed(service_id, since=middle)] == ids[3:]
        assert [r.id for r in listed(service_id, until=middle)] == ids[:3]
        later = middle + timedelta(days=1)
        assert listed(service_id, since=later) == []
        assert storage.count_service_requests(service_id) == 6
        assert storage.count_service_requests(service_id, answered=True, failed=False) == 2
        assert storage.count_service_requests(service_id, arms=["champion"], since=middle) == 2
        with pytest.raises(StorageError):
            listed(service_id, since=middle.replace(tzinfo=None))
        with pytest.raises(ServiceNotFoundError):
            listed(MISSING_ID)
        with pytest.raises(ServiceNotFoundError):
            storage.count_service_requests(MISSING_ID)

    def test_requests_are_per_service_and_times_increase(self, storage: BaseStorage) -> None:
        a, champion_a, _ = self._service(storage, "a")
        b, champion_b, _ = self._service(storage, "b")
        first = storage.add_service_request(a, variant_id=champion_a, arm="champion", inputs=1)
        time.sleep(0.002)
        second = storage.add_service_request(b, variant_id=champion_b, arm="champion", inputs=2)
        assert [r.id for r in storage.list_service_requests(a)] == [first]
        assert [r.id for r in storage.list_service_requests(b)] == [second]
        assert (
            storage.get_service_request(first).created_at
            < storage.get_service_request(second).created_at
        )

    def test_service_log(self, storage: BaseStorage) -> None:
        service_id, _, _ = self._service(storage)
        first = storage.add_service_event(service_id, "trigger", "quality dropped", data={"q": 0.5})
        second = storage.add_service_event(service_id, "plan")
        assert 0 < first < second
        events = storage.list_service_events(service_id)
        assert [(e.kind, e.message, e.data) for e in events] == [
            ("trigger", "quality dropped", {"q": 0.5}),
            ("plan", "", {}),
        ]
        assert_utc(events[0].created_at)
        assert [e.id for e in storage.list_service_events(service_id, after_id=first)] == [second]
        assert [e.id for e in storage.list_service_events(service_id, kinds=["plan"])] == [second]
        newest = storage.list_service_events(service_id, newest_first=True, limit=1)
        assert [e.id for e in newest] == [second]
        with pytest.raises(ServiceNotFoundError):
            storage.add_service_event(MISSING_ID, "x")
        with pytest.raises(ServiceNotFoundError):
            storage.list_service_events(MISSING_ID)
        with pytest.raises(StorageError):
            storage.add_service_event(service_id, "x", data={"bad": object()})

    def test_snapshots_are_frozen(self, storage: BaseStorage) -> None:
        service_id, champion, _ = self._service(storage)
        request_id = storage.add_service_request(
            service_id, variant_id=champion, arm="champion", inputs={"a": [1]}
        )
        request = storage.get_service_request(request_id)
        request.inputs["a"].append(2)
        assert storage.get_service_request(request_id).inputs == {"a": [1]}
        service = storage.get_service(service_id)
        service.goal["q"] = 0.1
        assert storage.get_service(service_id).goal == {"q": 0.8}

    def test_delete_service_and_run(self, storage: BaseStorage) -> None:
        service_id, champion, _ = self._service(storage, "a")
        kept, kept_champion, _ = self._service(storage, "b")
        request_id = storage.add_service_request(
            service_id, variant_id=champion, arm="champion", inputs=1
        )
        storage.add_service_event(service_id, "x")
        storage.add_service_request(kept, variant_id=kept_champion, arm="champion", inputs=1)
        storage.delete_service(service_id)
        with pytest.raises(ServiceNotFoundError):
            storage.get_service(service_id)
        with pytest.raises(RequestNotFoundError):
            storage.get_service_request(request_id)
        with pytest.raises(ServiceNotFoundError):
            storage.delete_service(service_id)
        assert storage.count_service_requests(kept) == 1
        storage.delete_run(storage.get_service(kept).run_id)
        assert storage.list_services() == []

    def test_a_failed_transaction_leaves_no_request(self, storage: BaseStorage) -> None:
        service_id, champion, _ = self._service(storage)

        def add_then_fail() -> None:
            storage.add_service_request(service_id, variant_id=champion, arm="champion", inputs=1)
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            storage.atomically(add_then_fail)
        assert storage.count_service_requests(service_id) == 0

    def test_concurrent_routing_changes_one_wins(self, storage: BaseStorage) -> None:
        service_id, champion, other = self._service(storage)
        start = storage.get_service(service_id).routing
        wins: list[int] = []

        def race(i: int) -> None:
            routing = ServiceRouting(
                champion_id=champion,
                candidate_id=other,
                candidate_state=CandidateState.AB,
                candidate_share=(i + 1) / 10,
            )
            if storage.set_service_routing(service_id, routing, expected=start):
                wins.append(i)

        self._in_threads(4, race)
        assert len(wins) == 1
        assert storage.get_service(service_id).candidate_share == (wins[0] + 1) / 10
