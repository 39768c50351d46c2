"""The services of :class:`InMemoryStorage`: services, their requests and their logs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from hyperagents.exceptions import (
    DuplicateError,
    RequestNotFoundError,
    ServiceNotFoundError,
    StorageError,
)
from hyperagents.storages._common import check_amount, json_copy, normalise_expected, utcnow
from hyperagents.storages._in_memory_state import MemoryState
from hyperagents.storages._records import EventSpec
from hyperagents.storages._service_checks import (
    RequestFilter,
    bounded_json,
    check_arm,
    check_feedback,
    check_limit,
    check_routing,
    cut_error,
)
from hyperagents.storages._service_records import (
    CandidateState,
    RequestRecord,
    ServiceEventRecord,
    ServiceRecord,
    ServiceRouting,
    ServiceSpec,
    ServiceStatus,
)

__all__ = ["MemoryServices"]


class MemoryServices(MemoryState):
    """The service methods of :class:`InMemoryStorage`."""

    def _service(self, service_id: int) -> ServiceRecord:
        try:
            return self._services[service_id]
        except KeyError:
            raise ServiceNotFoundError(f"service {service_id} not found") from None

    def _request(self, request_id: int) -> RequestRecord:
        try:
            return self._requests[request_id]
        except KeyError:
            raise RequestNotFoundError(f"request {request_id} not found") from None

    @staticmethod
    def _copy_service(service: ServiceRecord) -> ServiceRecord:
        return dataclasses.replace(service, goal=json_copy(service.goal, "goal"))

    @staticmethod
    def _copy_request(request: RequestRecord) -> RequestRecord:
        return dataclasses.replace(
            request,
            inputs=json_copy(request.inputs, "inputs"),
            output=json_copy(request.output, "output"),
            label=json_copy(request.label, "label"),
        )

    def _log(self, service_id: int, event: EventSpec | None) -> int:
        """Append ``event`` (already validated) to the service's log; return its id."""
        if event is None:
            return 0
        event_id = self._new_id("service_event")
        self._service_events[event_id] = ServiceEventRecord(
            id=event_id,
            service_id=service_id,
            kind=event.kind,
            message=event.message,
            data=dict(event.data or {}),
            created_at=utcnow(),
        )
        return event_id

    # -- services ---------------------------------------------------------------------------
    def create_service(self, service: ServiceSpec) -> int:
        goal = json_copy(dict(service.goal), "goal")
        if not service.name:
            raise StorageError("a service needs a name")
        with self._lock:
            if service.name in self._service_names:
                raise DuplicateError(f"a service named {service.name!r} already exists")
            self._run(service.run_id)
            self._variant(service.champion_id)
            service_id = self._new_id("service")
            now = utcnow()
            self._services[service_id] = ServiceRecord(
                id=service_id,
                name=service.name,
                run_id=service.run_id,
                champion_id=service.champion_id,
                candidate_id=None,
                candidate_state=CandidateState.NONE,
                candidate_share=0.0,
                seed=int(service.seed),
                goal=goal,
                status=ServiceStatus.CREATED,
                created_at=now,
                updated_at=now,
            )
            self._service_names[service.name] = service_id
            return service_id

    def get_service(self, service_id: int) -> ServiceRecord:
        with self._lock:
            return self._copy_service(self._service(service_id))

    def get_service_by_name(self, name: str) -> ServiceRecord:
        with self._lock:
            service_id = self._service_names.get(name)
            if service_id is None:
                raise ServiceNotFoundError(f"service {name!r} not found")
            return self._copy_service(self._services[service_id])

    def list_services(self, *, run_id: int | None = None) -> list[ServiceRecord]:
        with self._lock:
            return [
                self._copy_service(s)
                for s in self._services.values()
                if run_id is None or s.run_id == run_id
            ]

    def set_service_status(
        self,
        service_id: int,
        status: ServiceStatus,
        *,
        expected: ServiceStatus | Iterable[ServiceStatus] | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        allowed = None if expected is None else normalise_expected(expected, ServiceStatus)
        prepared = self._prepare_event(event)
        with self._lock:
            service = self._service(service_id)
            if allowed is not None and service.status not in allowed:
                return False
            self._services[service_id] = dataclasses.replace(
                service, status=ServiceStatus(status), updated_at=utcnow()
            )
            self._log(service_id, prepared)
            return True

    def set_service_routing(
        self,
        service_id: int,
        routing: ServiceRouting,
        *,
        expected: ServiceRouting,
        event: EventSpec | None = None,
    ) -> bool:
        new = check_routing(routing)
        prepared = self._prepare_event(event)
        with self._lock:
            service = self._service(service_id)
            for variant_id in (new.champion_id, new.candidate_id):
                if variant_id is not None:
                    self._variant(variant_id)
            if service.routing != expected:
                return False
            self._services[service_id] = dataclasses.replace(
                service, **dataclasses.asdict(new), updated_at=utcnow()
            )
            self._log(service_id, prepared)
            return True

    def update_service_goal(self, service_id: int, goal: Mapping[str, Any]) -> None:
        new = json_copy(dict(goal), "goal")
        with self._lock:
            service = self._service(service_id)
            self._services[service_id] = dataclasses.replace(service, goal=new, updated_at=utcnow())

    def delete_service(self, service_id: int) -> None:
        with self._lock:
            service = self._service(service_id)
            for table in (self._requests, self._service_events):
                for key in [k for k, v in table.items() if v.service_id == service_id]:
                    del table[key]
            del self._services[service_id]
            del self._service_names[service.name]

    def _delete_services_of(self, run_id: int) -> None:
        """Delete the services of a run (its deletion, under the lock)."""
        for service in [s for s in self._services.values() if s.run_id == run_id]:
            self.delete_service(service.id)

    # -- requests ---------------------------------------------------------------------------
    def add_service_request(
        self,
        service_id: int,
        *,
        variant_id: int,
        arm: str,
        inputs: Any,
        shadow_of: int | None = None,
    ) -> int:
        copied = bounded_json(inputs, "inputs")
        check_arm(arm)
        with self._lock:
            self._service(service_id)
            self._variant(variant_id)
            if shadow_of is not None:
                self._request(shadow_of)
            request_id = self._new_id("request")
            self._requests[request_id] = RequestRecord(
                request_id, service_id, variant_id, arm, shadow_of, copied, None, None,
                0.0, 0.0, utcnow(), None, None, None, None, None,
            )  # fmt: skip
            return request_id

    def assign_service_request(self, request_id: int, *, variant_id: int, arm: str) -> bool:
        check_arm(arm)
        with self._lock:
            request = self._request(request_id)
            self._variant(variant_id)
            if request.answered:
                return False
            self._requests[request_id] = dataclasses.replace(
                request, variant_id=variant_id, arm=arm
            )
            return True

    def finish_service_request(
        self,
        request_id: int,
        *,
        output: Any = None,
        error: str | None = None,
        latency: float,
        cost: float = 0.0,
    ) -> bool:
        if error is not None and output is not None:
            raise StorageError("a request is answered with an output or an error, not both")
        copied = bounded_json(output, "output")
        seconds, dollars = check_amount(latency, "latency"), check_amount(cost, "cost")
        with self._lock:
            request = self._request(request_id)
            if request.answered:
                return False
            self._requests[request_id] = dataclasses.replace(
                request,
                output=copied,
                error=cut_error(error),
                latency=seconds,
                cost=dollars,
                answered_at=utcnow(),
            )
            return True

    def get_service_request(self, request_id: int) -> RequestRecord:
        with self._lock:
            return self._copy_request(self._request(request_id))

    def _select_requests(
        self, service_id: int, wanted: RequestFilter, *, limit: int | None, newest_first: bool
    ) -> list[RequestRecord]:
        with self._lock:
            self._service(service_id)
            found: list[RequestRecord] = []
            requests = self._requests.values()  # insertion order is ascending id
            for request in reversed(requests) if newest_first else requests:
                if limit is not None and len(found) >= limit:
                    break
                if request.service_id == service_id and wanted.matches(request):
                    found.append(self._copy_request(request))
            return found

    def _count_requests(self, service_id: int, wanted: RequestFilter) -> int:
        with self._lock:
            self._service(service_id)
            return sum(
                1
                for r in self._requests.values()
                if r.service_id == service_id and wanted.matches(r)
            )

    def set_request_feedback(
        self,
        request_id: int,
        *,
        label: Any = None,
        feedback: float | None = None,
        by: str,
    ) -> None:
        if label is None and feedback is None:
            raise StorageError("feedback needs a label, a score, or both")
        copied, score = bounded_json(label, "label"), check_feedback(feedback)
        with self._lock:
            request = self._request(request_id)
            self._requests[request_id] = dataclasses.replace(
                request, label=copied, feedback=score, feedback_by=str(by), feedback_at=utcnow()
            )

    # -- events -----------------------------------------------------------------------------
    def add_service_event(
        self,
        service_id: int,
        kind: str,
        message: str = "",
        *,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        prepared = self._prepare_event(EventSpec(kind=kind, message=message, data=data))
        with self._lock:
            self._service(service_id)
            return self._log(service_id, prepared)

    def list_service_events(
        self,
        service_id: int,
        *,
        after_id: int = 0,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ServiceEventRecord]:
        wanted = None if kinds is None else set(kinds)
        check_limit(limit)
        with self._lock:
            self._service(service_id)
            found: list[ServiceEventRecord] = []
            events = self._service_events.values()
            for event in reversed(events) if newest_first else events:
                if limit is not None and len(found) >= limit:
                    break
                if (
                    event.service_id == service_id
                    and event.id > after_id
                    and (wanted is None or event.kind in wanted)
                ):
                    found.append(dataclasses.replace(event, data=json_copy(event.data, "data")))
            return found
