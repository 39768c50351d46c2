"""The storage contract of services: a run's champion answering live requests.

A service (:class:`ServiceRecord`) serves one run (its task and sandbox settings); which
variants answer is its routing (:class:`ServiceRouting`: the champion, and a candidate in
shadow or under A/B testing with a share of the traffic). Each request an arm answered is a
:class:`RequestRecord`, added when it arrives (:meth:`ServiceStorage.add_service_request`)
and completed once with its answer or error (:meth:`ServiceStorage.finish_service_request`);
feedback (a label, a score in [0, 1]) is attached later. A service has a log of its own
(:meth:`ServiceStorage.add_service_event`) for triggers, plans and A/B decisions.

Contract (checked by ``hyperagents.testing.storage``), on top of the general one
(:mod:`hyperagents.storages._base`: frozen snapshots, atomic methods, durability, UTC times,
JSON fields, ascending ids):

* **Names** of services are unique (:class:`DuplicateError`).
* **Compare-and-set.** :meth:`ServiceStorage.set_service_routing` changes the routing only if
  the stored one equals ``expected`` (all four fields), and
  :meth:`ServiceStorage.set_service_status` only if the status is one of ``expected``; both
  return ``False`` (and record nothing) otherwise. :meth:`ServiceStorage.finish_service_request`
  completes a request once and :meth:`ServiceStorage.assign_service_request` reassigns only an
  unanswered one: both return ``False`` for one answered already.
* **Routing is checked.** A share is a finite number in [0, 1]; a candidate in shadow or A/B
  needs a ``candidate_id`` other than the champion; the variants named must exist
  (:class:`VariantNotFoundError`), in any run.
* **Bounded records.** Inputs, outputs and labels are JSON of at most
  :data:`MAX_REQUEST_JSON` bytes (:class:`StorageError` beyond, nothing stored); an error text
  is cut to :data:`MAX_ERROR_CHARS` characters; latency and cost are finite and >= 0; a
  feedback score is in [0, 1]; an arm is one of :data:`ARMS`.
* **Listing** requests filters by id range, time window (``since`` <= ``created_at`` <
  ``until``), arms, variant, whether answered, failed or given feedback; ascending id (newest
  first on request), at most ``limit``.
* **Missing records** raise :class:`ServiceNotFoundError` / :class:`RequestNotFoundError`
  (also from the ``list_*``/``count_*`` methods of a missing service).
* **Deletion.** A service goes with its requests and events
  (:meth:`ServiceStorage.delete_service`), and with its run (:meth:`BaseStorage.delete_run`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from hyperagents.storages._records import EventSpec
from hyperagents.storages._service_checks import RequestFilter, check_limit
from hyperagents.storages._service_records import (
    RequestRecord,
    ServiceEventRecord,
    ServiceRecord,
    ServiceRouting,
    ServiceSpec,
    ServiceStatus,
)

__all__ = ["ServiceStorage"]


class ServiceStorage(ABC):
    """The service methods every storage has (see the module docstring)."""

    @abstractmethod
    def create_service(self, service: ServiceSpec) -> int:
        """Create a service in status ``CREATED`` serving ``service.champion_id`` alone.

        Raises:
            DuplicateError: A service with this name exists.
            RunNotFoundError: No such run.
            VariantNotFoundError: No such champion variant.
            StorageError: ``goal`` is not JSON-compatible, or the name is empty.
        """

    @abstractmethod
    def get_service(self, service_id: int) -> ServiceRecord:
        """Return the service.

        Raises:
            ServiceNotFoundError: No such service.
        """

    @abstractmethod
    def get_service_by_name(self, name: str) -> ServiceRecord:
        """Return the service called ``name``.

        Raises:
            ServiceNotFoundError: No such service.
        """

    @abstractmethod
    def list_services(self, *, run_id: int | None = None) -> list[ServiceRecord]:
        """All services (or those serving ``run_id``), ascending id."""

    @abstractmethod
    def set_service_status(
        self,
        service_id: int,
        status: ServiceStatus,
        *,
        expected: ServiceStatus | Iterable[ServiceStatus] | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        """Compare-and-set the status (any current one if ``expected`` is None), recording
        ``event`` in the service's log in the same transaction.

        Returns:
            Whether the status was changed.

        Raises:
            ServiceNotFoundError: No such service.
        """

    @abstractmethod
    def set_service_routing(
        self,
        service_id: int,
        routing: ServiceRouting,
        *,
        expected: ServiceRouting,
        event: EventSpec | None = None,
    ) -> bool:
        """Compare-and-set the routing: replace it with ``routing`` if the stored one equals
        ``expected``, recording ``event`` in the service's log in the same transaction.

        Returns:
            Whether the routing was changed.

        Raises:
            ServiceNotFoundError: No such service.
            VariantNotFoundError: ``routing`` names a variant that does not exist.
            StorageError: ``routing`` is inconsistent (see the module docstring).
        """

    @abstractmethod
    def update_service_goal(self, service_id: int, goal: Mapping[str, Any]) -> None:
        """Replace the service's goal.

        Raises:
            ServiceNotFoundError: No such service.
            StorageError: ``goal`` is not JSON-compatible.
        """

    @abstractmethod
    def delete_service(self, service_id: int) -> None:
        """Delete the service with its requests and events.

        Raises:
            ServiceNotFoundError: No such service.
        """

    # -- requests ---------------------------------------------------------------------------
    @abstractmethod
    def add_service_request(
        self,
        service_id: int,
        *,
        variant_id: int,
        arm: str,
        inputs: Any,
        shadow_of: int | None = None,
    ) -> int:
        """Record a request as it arrives (unanswered) and return its id.

        Raises:
            ServiceNotFoundError: No such service.
            VariantNotFoundError: No such variant.
            RequestNotFoundError: ``shadow_of`` names no request.
            StorageError: ``arm`` is unknown, or ``inputs`` is not JSON or too large.
        """

    @abstractmethod
    def assign_service_request(self, request_id: int, *, variant_id: int, arm: str) -> bool:
        """Compare-and-set: give an unanswered request to another variant and arm (routing
        decided from the request's id, once it has one).

        Returns:
            Whether the request was unanswered (and so reassigned).

        Raises:
            RequestNotFoundError: No such request.
            VariantNotFoundError: No such variant.
            StorageError: ``arm`` is unknown.
        """

    @abstractmethod
    def finish_service_request(
        self,
        request_id: int,
        *,
        output: Any = None,
        error: str | None = None,
        latency: float,
        cost: float = 0.0,
    ) -> bool:
        """Complete an unanswered request with its ``output`` (``error`` None) or its
        ``error`` (``output`` None), stamping ``answered_at``.

        Returns:
            Whether the request was unanswered (and so completed now).

        Raises:
            RequestNotFoundError: No such request.
            StorageError: ``output`` is not JSON or too large, both an output and an error
                are given, or ``latency``/``cost`` is negative or not finite.
        """

    @abstractmethod
    def get_service_request(self, request_id: int) -> RequestRecord:
        """Return the request.

        Raises:
            RequestNotFoundError: No such request.
        """

    def list_service_requests(
        self,
        service_id: int,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        arms: Iterable[str] | None = None,
        variant_id: int | None = None,
        answered: bool | None = None,
        failed: bool | None = None,
        with_feedback: bool | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[RequestRecord]:
        """The service's requests with ``after_id`` < id < ``before_id`` and ``since`` <=
        ``created_at`` < ``until``, optionally only of ``arms``, of one variant, answered or
        not, failed (an error) or not, with feedback or not; at most ``limit``, in ascending
        id order (descending with ``newest_first``: the latest ``limit``).

        Raises:
            ServiceNotFoundError: No such service.
            StorageError: ``limit`` is negative, or a time is not timezone-aware.
        """
        wanted = RequestFilter.of(
            after_id=after_id,
            before_id=before_id,
            since=since,
            until=until,
            arms=arms,
            variant_id=variant_id,
            answered=answered,
            failed=failed,
            with_feedback=with_feedback,
        )
        return self._select_requests(
            service_id, wanted, limit=check_limit(limit), newest_first=newest_first
        )

    def count_service_requests(
        self,
        service_id: int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        arms: Iterable[str] | None = None,
        variant_id: int | None = None,
        answered: bool | None = None,
        failed: bool | None = None,
        with_feedback: bool | None = None,
    ) -> int:
        """How many requests :meth:`list_service_requests` would list with these filters.

        Raises:
            ServiceNotFoundError: No such service.
            StorageError: A time is not timezone-aware.
        """
        wanted = RequestFilter.of(
            since=since,
            until=until,
            arms=arms,
            variant_id=variant_id,
            answered=answered,
            failed=failed,
            with_feedback=with_feedback,
        )
        return self._count_requests(service_id, wanted)

    @abstractmethod
    def _select_requests(
        self, service_id: int, wanted: RequestFilter, *, limit: int | None, newest_first: bool
    ) -> list[RequestRecord]:
        """The backend's listing: the service's requests passing ``wanted``, at most
        ``limit``, ascending id (descending with ``newest_first``).

        Raises:
            ServiceNotFoundError: No such service.
        """

    @abstractmethod
    def _count_requests(self, service_id: int, wanted: RequestFilter) -> int:
        """The backend's count of the service's requests passing ``wanted``.

        Raises:
            ServiceNotFoundError: No such service.
        """

    @abstractmethod
    def set_request_feedback(
        self,
        request_id: int,
        *,
        label: Any = None,
        feedback: float | None = None,
        by: str,
    ) -> None:
        """Attach a label and/or a feedback score to a request (replacing any given before),
        given ``by`` someone, stamping ``feedback_at``.

        Raises:
            RequestNotFoundError: No such request.
            StorageError: Neither is given, ``feedback`` is not in [0, 1], or ``label`` is not
                JSON or too large.
        """

    # -- events -----------------------------------------------------------------------------
    @abstractmethod
    def add_service_event(
        self,
        service_id: int,
        kind: str,
        message: str = "",
        *,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an entry to the service's log and return its id.

        Raises:
            ServiceNotFoundError: No such service.
            StorageError: ``data`` is not JSON-compatible.
        """

    @abstractmethod
    def list_service_events(
        self,
        service_id: int,
        *,
        after_id: int = 0,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ServiceEventRecord]:
        """The service's log entries with id > ``after_id`` (optionally of ``kinds``), at
        most ``limit``, ascending id (descending with ``newest_first``).

        Raises:
            ServiceNotFoundError: No such service.
        """
