"""The response cache: completions stored by request key, so a request asked again is answered
without calling the model (see :class:`~hyperagents.llm.Gateway`)."""

from __future__ import annotations

import collections
import threading
from typing import Protocol, runtime_checkable

from hyperagents.exceptions import LLMConfigError
from hyperagents.llm._base import Completion

__all__ = ["MemoryCache", "ResponseCache"]


@runtime_checkable
class ResponseCache(Protocol):
    """A store of completions by request key (see :func:`~hyperagents.llm.request_key`).

    Implementations must be safe to call from several threads.
    """

    def get(self, key: str) -> Completion | None:
        """The completion stored under ``key``, or ``None``."""
        ...

    def put(self, key: str, completion: Completion) -> None:
        """Store a completion under ``key``."""
        ...


class MemoryCache:
    """An in-memory, thread-safe response cache, optionally bounded (least recently used out).

    Args:
        max_entries: The most completions kept; ``None`` for no bound.

    Raises:
        LLMConfigError: If ``max_entries`` is less than 1.
    """

    def __init__(self, max_entries: int | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise LLMConfigError("a response cache needs max_entries >= 1 (or None)")
        self._max = max_entries
        self._entries: collections.OrderedDict[str, Completion] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> Completion | None:
        """The completion stored under ``key``, or ``None``.

        Args:
            key: The request key.

        Returns:
            The completion or ``None``.
        """
        with self._lock:
            completion = self._entries.get(key)
            if completion is not None:
                self._entries.move_to_end(key)
            return completion

    def put(self, key: str, completion: Completion) -> None:
        """Store a completion under ``key``.

        Args:
            key: The request key.
            completion: The completion.
        """
        with self._lock:
            self._entries[key] = completion
            self._entries.move_to_end(key)
            if self._max is not None:
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
