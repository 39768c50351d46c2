"""Storages: where runs, programs, variants, evaluations and events live.

One URL is the whole deployment setting (Optuna style)::

    get_storage()                                    # $HYPERAGENTS_STORAGE or sqlite:///hyperagents.db
    get_storage("sqlite:///runs/experiments.db")     # a SQLite file
    get_storage("postgresql://user:pw@host/db")      # PostgreSQL (psycopg 3), many engines/machines
    get_storage("memory")                            # in-process, nothing persisted (tests)

The contract every backend satisfies is written once, on :class:`BaseStorage` (its module's
docstring and its methods' docstrings, which the backends inherit);
:mod:`hyperagents.testing.storage` checks it. Records go in whole (:class:`RunSpec`,
:class:`LLMCallSpec`, :class:`EventSpec`) and come out as frozen snapshots (:class:`RunRecord`,
…). Importing this package is cheap: SQLAlchemy and
Alembic are imported only when an :class:`RDBStorage` is made.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperagents.exceptions import StorageURLError
from hyperagents.storages._base import BaseStorage
from hyperagents.storages._in_memory import InMemoryStorage
from hyperagents.storages._records import (
    CheckpointRecord,
    EngineRecord,
    EngineStatus,
    EvaluationRecord,
    EvaluationSpec,
    EventRecord,
    EventSpec,
    LLMCallRecord,
    LLMCallSpec,
    RunRecord,
    RunSpec,
    RunStatus,
    VariantRecord,
    VariantState,
)
from hyperagents.storages._service_records import (
    ARMS,
    MAX_ERROR_CHARS,
    MAX_REQUEST_JSON,
    CandidateState,
    RequestRecord,
    ServiceEventRecord,
    ServiceRecord,
    ServiceRouting,
    ServiceSpec,
    ServiceStatus,
)

if TYPE_CHECKING:
    from hyperagents.storages._rdb import RDBStorage

__all__ = [
    "ARMS",
    "DEFAULT_STORAGE_URL",
    "MAX_ERROR_CHARS",
    "MAX_REQUEST_JSON",
    "STORAGE_ENV_VAR",
    "BaseStorage",
    "CandidateState",
    "CheckpointRecord",
    "EngineRecord",
    "EngineStatus",
    "EvaluationRecord",
    "EvaluationSpec",
    "EventRecord",
    "EventSpec",
    "InMemoryStorage",
    "LLMCallRecord",
    "LLMCallSpec",
    "RDBStorage",
    "RequestRecord",
    "RunRecord",
    "RunSpec",
    "RunStatus",
    "ServiceEventRecord",
    "ServiceRecord",
    "ServiceRouting",
    "ServiceSpec",
    "ServiceStatus",
    "VariantRecord",
    "VariantState",
    "get_storage",
    "storage_for_creation",
]

#: The storage used when neither an argument nor ``$HYPERAGENTS_STORAGE`` names one.
DEFAULT_STORAGE_URL = "sqlite:///hyperagents.db"
#: Environment variable holding the default storage URL.
STORAGE_ENV_VAR = "HYPERAGENTS_STORAGE"
_MEMORY_URLS = frozenset({"memory", "memory://", ":memory:"})


def get_storage(url: str | BaseStorage | None = None) -> BaseStorage:
    """Return the storage named by ``url``.

    Args:
        url: A storage object (returned as is); ``"memory"`` (also ``"memory://"`` or
            ``":memory:"``) for an :class:`InMemoryStorage`; any SQLAlchemy URL for an
            :class:`RDBStorage` (``postgresql://`` uses psycopg 3). ``None`` uses
            ``$HYPERAGENTS_STORAGE``, else :data:`DEFAULT_STORAGE_URL`.

    Returns:
        The storage, with its schema created or upgraded.

    Raises:
        StorageURLError: The URL is malformed or unsupported, its driver is not installed, a
            SQLite file's directory does not exist, or the database cannot be reached.
        StorageError: The database schema is newer than this version of hyperagents.

    Example:
        >>> get_storage("memory")
        InMemoryStorage()
    """
    if isinstance(url, BaseStorage):
        return url
    url = _checked_url(url)
    if url.lower() in _MEMORY_URLS:
        return InMemoryStorage()
    from hyperagents.storages._rdb import RDBStorage

    return RDBStorage(url)


def _checked_url(url: str | None) -> str:
    """``url`` (None: ``$HYPERAGENTS_STORAGE``, else the default) stripped and checked.

    Raises:
        StorageURLError: Not a string, empty, or with no scheme (and not a memory URL).
    """
    if url is None:
        url = os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE_URL
    if not isinstance(url, str):
        raise StorageURLError(f"storage must be a URL string or a storage object, not {url!r}")
    url = url.strip()
    if not url:
        raise StorageURLError("empty storage URL")
    if "://" not in url and url.lower() not in _MEMORY_URLS:
        raise StorageURLError(
            f"malformed storage URL {url!r}: expected e.g. 'sqlite:///hyperagents.db', "
            "'postgresql://user:password@host/db' or 'memory'"
        )
    return url


def _new_sqlite_file(url: str | BaseStorage | None) -> Path | None:
    """The file a SQLite storage URL names when it does not exist yet (None: a storage
    object, another database, or a file that exists)."""
    if isinstance(url, BaseStorage):
        return None
    url = _checked_url(url)
    if not url.lower().startswith("sqlite"):
        return None
    from hyperagents.storages._rdb._connect import is_sqlite_memory, normalise_url

    parsed = normalise_url(url)
    database = str(parsed.database or "")
    if is_sqlite_memory(parsed) or database.startswith("file:"):
        return None
    path = Path(database)
    return None if path.exists() else path


@contextlib.contextmanager
def storage_for_creation(url: str | BaseStorage | None) -> Iterator[BaseStorage]:
    """The storage ``url`` names (see :func:`get_storage`), opened to create runs in: when the
    block raises and the storage is a SQLite file this call created that holds no run, the
    file is closed and removed, so a refused start leaves no empty database behind. A file
    that existed before, a database of another kind and a storage object are never removed;
    on success the storage stays open.

    Raises:
        StorageURLError: As :func:`get_storage`.
    """
    new_file = _new_sqlite_file(url)
    store = get_storage(url)
    try:
        yield store
    except BaseException:
        if new_file is not None:
            _discard_if_empty(store, new_file)
        raise


def _discard_if_empty(store: BaseStorage, path: Path) -> None:
    """Close ``store`` and remove its SQLite file ``path`` (and its journals) if it holds no
    run; keep it when that cannot be told."""
    try:
        empty = not store.list_runs()
    except Exception:  # the block's own error is the one to report
        return
    if empty:
        store.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def __getattr__(name: str) -> Any:
    if name == "RDBStorage":
        from hyperagents.storages._rdb import RDBStorage

        return RDBStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
