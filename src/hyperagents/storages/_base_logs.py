"""The storage contract of a run's logs: its events and its LLM calls.

Both are append-only records of a run, deleted with it (:meth:`BaseStorage.delete_run`), with
one exception: events a run keeps only while it needs them (an arena's stored steps, see
:mod:`hyperagents.arena`) are deleted by kind with :meth:`LogStorage.delete_events` once they
are not. An id is never used again, deleted or not, so ids still grow with insertion. The rest
of the contract (ordering, missing records, JSON fields) is :mod:`hyperagents.storages._base`'s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

from hyperagents.storages._records import EventRecord, LLMCallRecord, LLMCallSpec

__all__ = ["LogStorage"]


class LogStorage(ABC):
    """The event and LLM-call methods every storage has (see the module docstring)."""

    # -- events -----------------------------------------------------------------------------
    @abstractmethod
    def add_event(
        self,
        run_id: int,
        kind: str,
        message: str = "",
        *,
        variant_id: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an event and return its id.

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: ``variant_id`` is given and no such variant exists.
            StorageError: ``data`` is not JSON-compatible.
        """

    @abstractmethod
    def list_events(
        self,
        run_id: int,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        kinds: Iterable[str] | None = None,
        variant_id: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[EventRecord]:
        """Events with ``after_id`` < id < ``before_id`` (optionally filtered), at most ``limit``,
        in ascending id order (descending with ``newest_first``: the latest ``limit`` events).

        Raises:
            RunNotFoundError: No such run.
        """

    @abstractmethod
    def delete_events(
        self, run_id: int, *, kinds: Iterable[str], before_id: int | None = None
    ) -> int:
        """Delete the run's events of ``kinds`` with id < ``before_id`` (None: all of them), in
        one transaction (inside :meth:`~hyperagents.storages.BaseStorage.atomically`: with the
        block); no other event changes, and no id is used again.

        Returns:
            How many were deleted.

        Raises:
            RunNotFoundError: No such run.
        """

    # -- LLM calls --------------------------------------------------------------------------
    @abstractmethod
    def add_llm_call(self, run_id: int, call: LLMCallSpec) -> int:
        """Record one LLM call of the run and return its id.

        Args:
            run_id: The run the call was made for.
            call: The call, whole (its ``variant_id`` says the variant, if any).

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: ``call.variant_id`` is given and no such variant exists.
            StorageError: ``call.request`` is not JSON-compatible.
        """

    @abstractmethod
    def list_llm_calls(
        self,
        run_id: int,
        *,
        variant_id: int | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[LLMCallRecord]:
        """The run's LLM calls with id > ``after_id`` (optionally of one variant), ascending id.

        Raises:
            RunNotFoundError: No such run.
        """

    def llm_usage(self, run_id: int, *, variant_id: int | None = None) -> dict[str, Any]:
        """Totals of the run's (or one variant's) LLM calls, counted as the gateway counts.

        Returns:
            ``calls`` (answered, cache hits included), ``cached``, ``errors`` (failed
            attempts), ``prompt_tokens`` and ``completion_tokens`` (cache hits excluded) and
            ``cost`` (US dollars).

        Raises:
            RunNotFoundError: No such run.
        """
        totals: dict[str, Any] = dict.fromkeys(
            ("calls", "cached", "errors", "prompt_tokens", "completion_tokens"), 0
        )
        totals["cost"] = 0.0
        for call in self.list_llm_calls(run_id, variant_id=variant_id):
            if call.error is not None:
                totals["errors"] += 1
                continue
            totals["calls"] += 1
            if call.cached:
                totals["cached"] += 1
                continue
            totals["prompt_tokens"] += call.prompt_tokens
            totals["completion_tokens"] += call.completion_tokens
            totals["cost"] += call.cost
        return totals
