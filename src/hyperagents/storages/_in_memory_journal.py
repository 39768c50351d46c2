"""The undo journal of :class:`InMemoryStorage`'s transactions (``atomically``).

Every dict of the storage's state is a :class:`JournaledDict`: while a transaction is open, each
change to it first notes the value it replaces, so that a transaction (or a savepoint in it)
that fails is undone by putting those values back, newest first: O(1) per change, whatever the
size of the storage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from hyperagents.exceptions import StorageError

__all__ = ["Journal", "JournaledDict"]

_K = TypeVar("_K")
_V = TypeVar("_V")
_R = TypeVar("_R")

#: The value noted for a key a change added (undone by removing the key).
_MISSING: Any = object()


class Journal:
    """The transaction in progress: its owner thread, the undo records, and its levels (the
    outermost transaction, then one per nested savepoint) with the error that spoiled each.

    Only the thread holding the storage's lock opens a transaction, so one journal serves the
    storage.
    """

    def __init__(self) -> None:
        self.owner: int | None = None
        self.entries: list[tuple[JournaledDict[Any, Any], Any, Any]] = []
        #: Per level: the journal length it started at, and the error that spoiled it.
        self.levels: list[list[Any]] = []

    def mine(self) -> bool:
        """Whether this thread has a transaction open."""
        return self.owner == threading.get_ident()

    def run(self, fn: Callable[[], _R]) -> _R:
        """Call ``fn`` as a level of the transaction (the outermost if none is open); undo what
        it changed if it raises or returns spoiled.

        Raises:
            StorageError: A storage call inside ``fn`` failed and ``fn`` returned anyway, or
                the enclosing level is spoiled already.
        """
        outermost = not self.levels
        if not outermost:
            _check(self.levels[-1])
        else:
            self.owner = threading.get_ident()
        level: list[Any] = [len(self.entries), None]
        self.levels.append(level)
        try:
            result = fn()
            _check(level)
        except BaseException:
            self._undo(level[0])
            raise
        finally:
            self.levels.pop()
            if outermost:
                self.owner = None
                self.entries.clear()
        return result

    def call(self, attempt: Callable[[], _R]) -> _R:
        """Make a storage call inside the transaction; an error spoils the current level."""
        level = self.levels[-1]
        _check(level)
        try:
            return attempt()
        except BaseException as exc:
            level[1] = exc
            raise

    def _undo(self, mark: int) -> None:
        """Put back what changed since the journal had ``mark`` entries, newest first."""
        reinserted: dict[int, JournaledDict[Any, Any]] = {}
        entries = self.entries
        while len(entries) > mark:
            table, key, old = entries.pop()
            if old is _MISSING:
                dict.pop(table, key, None)
            else:
                if not dict.__contains__(table, key):
                    reinserted[id(table)] = table
                dict.__setitem__(table, key, old)
        # A key put back lands last; the storage relies on its dicts being in key (id) order.
        for table in reinserted.values():
            items = sorted(dict.items(table), key=lambda item: item[0])
            dict.clear(table)
            dict.update(table, items)


def _check(level: list[Any]) -> None:
    spoiled = level[1]
    if spoiled is not None:
        raise StorageError(
            f"an earlier storage call in this transaction failed: {spoiled}"
        ) from spoiled


class JournaledDict(dict[_K, _V]):
    """A dict whose changes are noted in ``journal`` while a transaction is open (only the
    changes the storage makes are supported: item assignment and deletion, ``pop`` and
    ``setdefault``)."""

    __slots__ = ("_journal",)

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self._journal = journal

    def _note(self, key: Any) -> None:
        if self._journal.owner is not None:
            self._journal.entries.append((self, key, dict.get(self, key, _MISSING)))

    def __setitem__(self, key: _K, value: _V) -> None:
        self._note(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: _K) -> None:
        self._note(key)
        dict.__delitem__(self, key)

    def pop(self, key: _K, *default: Any) -> Any:
        self._note(key)
        return dict.pop(self, key, *default)

    def setdefault(self, key: _K, default: Any = None) -> Any:
        self._note(key)
        return dict.setdefault(self, key, default)

    def _unsupported(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a journaled dict supports item changes, pop and setdefault only")

    update = clear = popitem = __ior__ = _unsupported
