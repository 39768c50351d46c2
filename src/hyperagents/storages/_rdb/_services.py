"""The services of :class:`RDBStorage`: rows of ``services``, ``service_requests`` and
``service_events``; transitions are single compare-and-set ``UPDATE`` statements."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hyperagents.exceptions import (
    DuplicateError,
    RequestNotFoundError,
    RunNotFoundError,
    ServiceNotFoundError,
    StorageError,
)
from hyperagents.storages._common import (
    check_amount,
    check_lock_target,
    json_copy,
    normalise_expected,
    utcnow,
)
from hyperagents.storages._rdb._transactions import (
    RUNS,
    SERVICE_EVENTS,
    SERVICE_REQUESTS,
    SERVICES,
    RDBCore,
    retried,
)
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

__all__ = ["ServiceMethods"]

_SERVICE_COLUMNS = [SERVICES.c[f.name] for f in dataclasses.fields(ServiceRecord)]
_REQUEST_COLUMNS = [SERVICE_REQUESTS.c[f.name] for f in dataclasses.fields(RequestRecord)]
_EVENT_COLUMNS = [SERVICE_EVENTS.c[f.name] for f in dataclasses.fields(ServiceEventRecord)]


def _service_record(row: Any) -> ServiceRecord:
    values = list(row)
    values[5] = CandidateState(values[5])
    values[9] = ServiceStatus(values[9])
    return ServiceRecord(*values)


def _routing_is(routing: ServiceRouting) -> tuple[ColumnElement[bool], ...]:
    """The conditions of a service row whose routing equals ``routing``."""
    c = SERVICES.c
    candidate = (
        c.candidate_id.is_(None) if routing.candidate_id is None
        else c.candidate_id == routing.candidate_id
    )  # fmt: skip
    return (
        c.champion_id == routing.champion_id,
        candidate,
        c.candidate_state == int(routing.candidate_state),
        c.candidate_share == float(routing.candidate_share),
    )


def _request_conditions(service_id: int, wanted: RequestFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a request filter."""
    c = SERVICE_REQUESTS.c
    where = [c.service_id == service_id, c.id > wanted.after_id]
    if wanted.before_id is not None:
        where.append(c.id < wanted.before_id)
    if wanted.since is not None:
        where.append(c.created_at >= wanted.since)
    if wanted.until is not None:
        where.append(c.created_at < wanted.until)
    if wanted.arms is not None:
        where.append(c.arm.in_(list(wanted.arms)))
    if wanted.variant_id is not None:
        where.append(c.variant_id == wanted.variant_id)
    for flag, column in (
        (wanted.answered, c.answered_at),
        (wanted.failed, c.error),
        (wanted.with_feedback, c.feedback_at),
    ):
        if flag is not None:
            where.append(column.is_not(None) if flag else column.is_(None))
    return where


class ServiceMethods(RDBCore):
    """The service methods of :class:`RDBStorage`."""

    def _require_service(self, conn: Connection, service_id: int) -> None:
        stmt = select(SERVICES.c.id).where(SERVICES.c.id == service_id)
        if conn.execute(stmt).first() is None:
            raise ServiceNotFoundError(f"service {service_id} not found")

    @retried(idempotent=True)
    def lock_record(self, *, run_id: int | None = None, service_id: int | None = None) -> None:
        check_lock_target(run_id, service_id)
        if not self._levels():
            raise StorageError("lock_record locks a record only inside atomically()")
        table, key = (RUNS, run_id) if run_id is not None else (SERVICES, service_id)
        stmt = select(table.c.id).where(table.c.id == key)
        if self._dialect != "sqlite":  # SQLite: atomically() holds the database's write lock
            # FOR NO KEY UPDATE: lockers queue; inserts of rows referencing it do not wait.
            stmt = stmt.with_for_update(key_share=True)
        with self._read() as conn:
            if conn.execute(stmt).first() is None:
                what = f"run {run_id}" if run_id is not None else f"service {service_id}"
                error = RunNotFoundError if run_id is not None else ServiceNotFoundError
                raise error(f"{what} not found")

    def _require_request(self, conn: Connection, request_id: int) -> None:
        stmt = select(SERVICE_REQUESTS.c.id).where(SERVICE_REQUESTS.c.id == request_id)
        if conn.execute(stmt).first() is None:
            raise RequestNotFoundError(f"request {request_id} not found")

    def _log(self, conn: Connection, service_id: int, spec: EventSpec | None) -> int:
        if spec is None:
            return 0
        row = {
            "service_id": service_id,
            "kind": str(spec.kind),
            "message": str(spec.message),
            "data": json_copy(dict(spec.data or {}), "event data"),
            "created_at": utcnow(),
        }
        result = conn.execute(insert(SERVICE_EVENTS), row)
        return int(cast(Any, result.inserted_primary_key)[0])

    # -- services ---------------------------------------------------------------------------
    @retried(idempotent=False)
    def create_service(self, service: ServiceSpec) -> int:
        if not service.name:
            raise StorageError("a service needs a name")
        now = utcnow()
        row = {
            "name": service.name,
            "run_id": service.run_id,
            "champion_id": service.champion_id,
            "candidate_id": None,
            "candidate_state": int(CandidateState.NONE),
            "candidate_share": 0.0,
            "seed": int(service.seed),
            "goal": json_copy(dict(service.goal), "goal"),
            "status": int(ServiceStatus.CREATED),
            "created_at": now,
            "updated_at": now,
        }
        with self._write() as conn:
            self._require_run(conn, service.run_id)
            self._require_variant(conn, service.champion_id)
            taken = select(SERVICES.c.id).where(SERVICES.c.name == service.name)
            if conn.execute(taken).first() is not None:
                raise DuplicateError(f"a service named {service.name!r} already exists")
            try:
                result = conn.execute(insert(SERVICES), row)
            except IntegrityError:  # a racing create took the name
                raise DuplicateError(f"a service named {service.name!r} already exists") from None
            return self._done(conn, int(cast(Any, result.inserted_primary_key)[0]))

    def _services(self, *where: ColumnElement[bool]) -> list[ServiceRecord]:
        stmt = select(*_SERVICE_COLUMNS).where(*where).order_by(SERVICES.c.id)
        with self._read() as conn:
            return [_service_record(row) for row in conn.execute(stmt)]

    @retried(idempotent=True)
    def get_service(self, service_id: int) -> ServiceRecord:
        found = self._services(SERVICES.c.id == service_id)
        if not found:
            raise ServiceNotFoundError(f"service {service_id} not found")
        return found[0]

    @retried(idempotent=True)
    def get_service_by_name(self, name: str) -> ServiceRecord:
        found = self._services(SERVICES.c.name == name)
        if not found:
            raise ServiceNotFoundError(f"service {name!r} not found")
        return found[0]

    @retried(idempotent=True)
    def list_services(self, *, run_id: int | None = None) -> list[ServiceRecord]:
        if run_id is None:
            return self._services()
        return self._services(SERVICES.c.run_id == run_id)

    @retried(idempotent=False)
    def set_service_status(
        self,
        service_id: int,
        status: ServiceStatus,
        *,
        expected: ServiceStatus | Iterable[ServiceStatus] | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        stmt = (
            update(SERVICES)
            .where(SERVICES.c.id == service_id)
            .values(status=int(ServiceStatus(status)), updated_at=utcnow())
        )
        if expected is not None:
            allowed = [int(s) for s in normalise_expected(expected, ServiceStatus)]
            stmt = stmt.where(SERVICES.c.status.in_(allowed))
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_service(conn, service_id)
                return self._done(conn, False)
            self._log(conn, service_id, event)
            return self._done(conn, True)

    @retried(idempotent=False)
    def set_service_routing(
        self,
        service_id: int,
        routing: ServiceRouting,
        *,
        expected: ServiceRouting,
        event: EventSpec | None = None,
    ) -> bool:
        new = check_routing(routing)
        values = dataclasses.asdict(new)
        values["candidate_state"] = int(new.candidate_state)
        stmt = (
            update(SERVICES)
            .where(SERVICES.c.id == service_id, *_routing_is(expected))
            .values(**values, updated_at=utcnow())
        )
        with self._write() as conn:
            self._require_service(conn, service_id)
            for variant_id in (new.champion_id, new.candidate_id):
                if variant_id is not None:
                    self._require_variant(conn, variant_id)
            if conn.execute(stmt).rowcount == 0:
                return self._done(conn, False)
            self._log(conn, service_id, event)
            return self._done(conn, True)

    @retried(idempotent=True)
    def update_service_goal(self, service_id: int, goal: Mapping[str, Any]) -> None:
        new = json_copy(dict(goal), "goal")
        stmt = (
            update(SERVICES)
            .where(SERVICES.c.id == service_id)
            .values(goal=new, updated_at=utcnow())
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                raise ServiceNotFoundError(f"service {service_id} not found")

    @retried(idempotent=True)
    def delete_service(self, service_id: int) -> None:
        with self._write() as conn:
            self._require_service(conn, service_id)
            for table in (SERVICE_REQUESTS, SERVICE_EVENTS):
                conn.execute(table.delete().where(table.c.service_id == service_id))
            conn.execute(SERVICES.delete().where(SERVICES.c.id == service_id))

    # -- requests ---------------------------------------------------------------------------
    @retried(idempotent=False)
    def add_service_request(
        self,
        service_id: int,
        *,
        variant_id: int,
        arm: str,
        inputs: Any,
        shadow_of: int | None = None,
    ) -> int:
        row = {
            "service_id": service_id,
            "variant_id": variant_id,
            "arm": check_arm(arm),
            "shadow_of": shadow_of,
            "inputs": bounded_json(inputs, "inputs"),
            "output": None,
            "latency": 0.0,
            "cost": 0.0,
            "created_at": utcnow(),
        }
        with self._write() as conn:
            self._require_service(conn, service_id)
            self._require_variant(conn, variant_id)
            if shadow_of is not None:
                self._require_request(conn, shadow_of)
            result = conn.execute(insert(SERVICE_REQUESTS), row)
            return self._done(conn, int(cast(Any, result.inserted_primary_key)[0]))

    # Harmless to apply twice: it sets the same values on a request still unanswered.
    @retried(idempotent=True)
    def assign_service_request(self, request_id: int, *, variant_id: int, arm: str) -> bool:
        c = SERVICE_REQUESTS.c
        stmt = (
            update(SERVICE_REQUESTS)
            .where(c.id == request_id, c.answered_at.is_(None))
            .values(variant_id=variant_id, arm=check_arm(arm))
        )
        with self._write() as conn:
            self._require_variant(conn, variant_id)
            if conn.execute(stmt).rowcount == 0:
                self._require_request(conn, request_id)
                return False
            return True

    @retried(idempotent=False)
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
        c = SERVICE_REQUESTS.c
        stmt = (
            update(SERVICE_REQUESTS)
            .where(c.id == request_id, c.answered_at.is_(None))
            .values(
                output=bounded_json(output, "output"),
                error=cut_error(error),
                latency=check_amount(latency, "latency"),
                cost=check_amount(cost, "cost"),
                answered_at=utcnow(),
            )
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_request(conn, request_id)
                return self._done(conn, False)
            return self._done(conn, True)

    @retried(idempotent=True)
    def get_service_request(self, request_id: int) -> RequestRecord:
        stmt = select(*_REQUEST_COLUMNS).where(SERVICE_REQUESTS.c.id == request_id)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise RequestNotFoundError(f"request {request_id} not found")
        return RequestRecord(*row)

    @retried(idempotent=True)
    def _select_requests(
        self, service_id: int, wanted: RequestFilter, *, limit: int | None, newest_first: bool
    ) -> list[RequestRecord]:
        c = SERVICE_REQUESTS.c
        stmt = select(*_REQUEST_COLUMNS).where(*_request_conditions(service_id, wanted))
        stmt = stmt.order_by(c.id.desc() if newest_first else c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                self._require_service(conn, service_id)
        return [RequestRecord(*row) for row in rows]

    @retried(idempotent=True)
    def _count_requests(self, service_id: int, wanted: RequestFilter) -> int:
        where = _request_conditions(service_id, wanted)
        stmt = select(func.count()).select_from(SERVICE_REQUESTS).where(*where)
        with self._read() as conn:
            self._require_service(conn, service_id)
            return int(conn.execute(stmt).scalar_one())

    @retried(idempotent=True)
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
        stmt = (
            update(SERVICE_REQUESTS)
            .where(SERVICE_REQUESTS.c.id == request_id)
            .values(
                label=bounded_json(label, "label"),
                feedback=check_feedback(feedback),
                feedback_by=str(by)[:255],
                feedback_at=utcnow(),
            )
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                raise RequestNotFoundError(f"request {request_id} not found")

    # -- events -----------------------------------------------------------------------------
    @retried(idempotent=False)
    def add_service_event(
        self,
        service_id: int,
        kind: str,
        message: str = "",
        *,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        spec = EventSpec(kind=kind, message=message, data=data)
        with self._write() as conn:
            self._require_service(conn, service_id)
            return self._done(conn, self._log(conn, service_id, spec))

    @retried(idempotent=True)
    def list_service_events(
        self,
        service_id: int,
        *,
        after_id: int = 0,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ServiceEventRecord]:
        c = SERVICE_EVENTS.c
        stmt = select(*_EVENT_COLUMNS).where(c.service_id == service_id, c.id > after_id)
        if kinds is not None:
            stmt = stmt.where(c.kind.in_(list(kinds)))
        stmt = stmt.order_by(c.id.desc() if newest_first else c.id)
        if check_limit(limit) is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                self._require_service(conn, service_id)
        return [ServiceEventRecord(*row) for row in rows]
