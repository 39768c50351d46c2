"""The programs of :class:`RDBStorage`: content-addressed blobs and manifests.

A file is stored with :func:`~hyperagents.storages._rdb._packing.pack_blob`: compressed, or as
its difference from the last file stored or read at the same path that stands alone (its
*base*; the storage object remembers one per path). A child changes a few values of its
parent's files, so its new files take tens of bytes rather than kilobytes. A base is used only
once the database is seen to hold it, in the transaction that stores the difference.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from hyperagents.exceptions import StorageError
from hyperagents.program import Program
from hyperagents.storages._common import utcnow
from hyperagents.storages._rdb._connect import first_line
from hyperagents.storages._rdb._packing import BLOB_DELTA, blob_base, pack_blob, unpack_blob
from hyperagents.storages._rdb._transactions import BLOBS, IN_CHUNK, PROGRAMS, RDBCore, retried

__all__ = ["BaseFiles", "ProgramMethods", "read_blobs"]


class BaseFiles:
    """The file last stored alone at each path (its SHA-256 and content): what a new file at
    that path is stored as a difference from. Bounded; thread-safe.

    Args:
        max_paths: Paths remembered at most (the oldest is forgotten first).
        max_size: Files larger than this are not remembered.
    """

    def __init__(self, *, max_paths: int = 256, max_size: int = 1 << 20) -> None:
        self._max_paths = max_paths
        self._max_size = max_size
        self._files: dict[str, tuple[str, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> tuple[str, bytes] | None:
        """The base remembered for ``path``."""
        with self._lock:
            return self._files.get(path)

    def remember(self, path: str, digest: str, data: bytes) -> None:
        """Remember a file stored alone at ``path``."""
        if len(data) > self._max_size:
            return
        with self._lock:
            self._files.pop(path, None)
            self._files[path] = (digest, data)
            while len(self._files) > self._max_paths:
                del self._files[next(iter(self._files))]


def _present(conn: Connection, hashes: Iterable[str]) -> set[str]:
    """Which of ``hashes`` the blobs table holds."""
    wanted = list(dict.fromkeys(hashes))
    present: set[str] = set()
    for i in range(0, len(wanted), IN_CHUNK):
        stmt = select(BLOBS.c.sha256).where(BLOBS.c.sha256.in_(wanted[i : i + IN_CHUNK]))
        present.update(conn.execute(stmt).scalars())
    return present


def _stored_rows(conn: Connection, hashes: Iterable[str]) -> dict[str, bytes]:
    """The stored bytes of the blob rows of ``hashes`` that exist."""
    wanted = sorted(set(hashes))
    rows: dict[str, bytes] = {}
    for i in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[i : i + IN_CHUNK]
        stmt = select(BLOBS.c.sha256, BLOBS.c.data).where(BLOBS.c.sha256.in_(chunk))
        rows.update((h, bytes(d)) for h, d in conn.execute(stmt))
    return rows


def read_blobs(conn: Connection, hashes: Iterable[str]) -> tuple[dict[str, bytes], set[str]]:
    """The files of ``hashes`` that are stored, differences resolved against their bases, and
    which of them stand alone.

    Raises:
        StorageError: A row is corrupt, or the base of a difference is missing.
    """
    rows = _stored_rows(conn, hashes)
    needed = {b for stored in rows.values() if (b := blob_base(stored)) is not None}
    base_rows = _stored_rows(conn, needed - rows.keys()) if needed - rows.keys() else {}
    base_rows.update((b, rows[b]) for b in needed & rows.keys())
    plain_bases = {b: unpack_blob(stored) for b, stored in base_rows.items()}
    files: dict[str, bytes] = {}
    alone: set[str] = set()
    for digest, stored in rows.items():
        base = blob_base(stored)
        if base is None:
            alone.add(digest)
        elif base not in plain_bases:
            raise StorageError(f"program file {digest} needs missing file {base}")
        files[digest] = unpack_blob(stored, plain_bases.get(base) if base else None)
    return files, alone


class ProgramMethods(RDBCore):
    """The program methods of :class:`RDBStorage`."""

    _bases: BaseFiles

    def _blob_rows(
        self, conn: Connection, files: Mapping[str, tuple[str, bytes]]
    ) -> tuple[list[dict[str, object]], list[tuple[str, str, bytes]]]:
        """The rows to insert for ``files`` (digest -> (path, content)) that are not stored,
        and the (path, digest, content) of those stored alone."""
        bases = {path: base for path, _ in files.values() if (base := self._bases.get(path))}
        present = _present(conn, [*files, *(digest for digest, _ in bases.values())])
        rows: list[dict[str, object]] = []
        alone: list[tuple[str, str, bytes]] = []
        for digest, (path, data) in files.items():
            if digest in present:
                continue
            base = bases.get(path)
            stored = pack_blob(data, base if base is not None and base[0] in present else None)
            rows.append({"sha256": digest, "size": len(data), "data": stored})
            if stored[0] != BLOB_DELTA:
                alone.append((path, digest, data))
        return rows, alone

    @retried(idempotent=True)
    def put_program(self, program: Program) -> str:
        program_id = program.id
        files: dict[str, tuple[str, bytes]] = {}
        for path, digest in program.blobs.items():
            files.setdefault(digest, (path, program[path]))
        for attempt in range(3):
            try:
                with self._write() as conn:
                    if self._program_exists(conn, program_id):
                        return program_id
                    rows, alone = self._blob_rows(conn, files)
                    self._insert_ignoring_duplicates(conn, BLOBS, rows)
                    self._insert_ignoring_duplicates(
                        conn,
                        PROGRAMS,
                        [{"id": program_id, "manifest": program.manifest, "created_at": utcnow()}],
                    )
                for path, digest, data in alone:
                    self._bases.remember(path, digest, data)
                return program_id
            except IntegrityError as exc:
                if attempt == 2:
                    raise StorageError(
                        f"cannot store program {program_id}: {first_line(exc)}"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @retried(idempotent=True)
    def get_program(self, program_id: str) -> Program:
        with self._read() as conn:
            manifest = conn.execute(
                select(PROGRAMS.c.manifest).where(PROGRAMS.c.id == program_id)
            ).scalar()
            if manifest is None:
                raise StorageError(f"program {program_id} not found")
            blobs, alone = read_blobs(conn, manifest.values())
        try:
            program = Program({path: blobs[digest] for path, digest in manifest.items()})
        except KeyError as exc:
            raise StorageError(f"program {program_id} is missing blob {exc.args[0]}") from None
        if program.id != program_id:
            raise StorageError(f"program {program_id} is corrupt (content hashes to {program.id})")
        for path, digest in manifest.items():  # a parent read: its children's bases
            if digest in alone:
                self._bases.remember(path, digest, blobs[digest])
        return program

    @retried(idempotent=True)
    def has_program(self, program_id: str) -> bool:
        with self._read() as conn:
            return self._program_exists(conn, program_id)

    @retried(idempotent=True)
    def count_blobs(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(BLOBS)).scalar_one())
