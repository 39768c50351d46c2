"""Artifacts of :class:`RDBStorage`: program files kept outside the ``blobs`` rows.

A file that :func:`~hyperagents.program.is_artifact` names (1 MiB or more, or a model's weights)
is stored once per content like any other file, under its SHA-256, but its row holds only the
format byte :data:`~hyperagents.storages._rdb._packing.BLOB_ARTIFACT`; the bytes live in the
database's artifact store:

* **SQLite** (a file): :class:`FileArtifacts`, a folder beside the database,
  ``<database>.artifacts/<first two hex digits>/<sha256>``. A file is written to a temporary
  name, flushed to disk (``fsync``) and renamed into place *before* the transaction that inserts
  its row commits, so a committed row never names a missing file; a crash in between leaves a
  file no row names, which the next program with that content finds, checks and reuses. Files
  are never changed once in place, and never deleted: rows are not deleted (a run's deletion
  keeps its programs, which other runs may share). The exception is the folder
  ``checkpoints/`` in it: training checkpoints, replaced and deleted as
  :mod:`~hyperagents.storages._rdb._checkpoints` says. A private in-memory database
  (``sqlite://``) has no folder: its artifacts stay in the rows.
* **PostgreSQL**: :class:`LargeObjects`, one large object per file, written in chunks of
  :data:`CHUNK` bytes (``lo_from_bytea``, ``lo_put``) in the transaction that inserts the row and
  read back in chunks (``lo_get``); its oid is the row's ``lo_oid``. A trigger made by migration
  0008 unlinks the large object when its row is deleted, and a large object made by a writer
  that lost a race for the row is unlinked at once.

Every read is checked against the SHA-256: a changed or missing artifact raises
:class:`~hyperagents.exceptions.StorageError` naming the program file, never wrong bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, LargeBinary, bindparam, text
from sqlalchemy.engine import URL

from hyperagents.exceptions import StorageError

__all__ = [
    "CHUNK",
    "ArtifactStore",
    "FileArtifacts",
    "LargeObjects",
    "artifact_store",
    "check_bytes",
    "sqlite_artifact_dir",
    "sqlite_side_folder",
    "write_file",
]

#: Bytes written or read per statement of a large object (PostgreSQL).
CHUNK = 1 << 20


class ArtifactStore(Protocol):
    """Where a database keeps the files of its artifact rows."""

    def put(self, conn: Connection, digest: str, data: bytes) -> int | None:
        """Store ``data`` (SHA-256 ``digest``) in the transaction of ``conn``; return the
        large object's oid to record in the row (None: the store needs none)."""

    def get(self, conn: Connection, digest: str, oid: int | None, size: int, path: str) -> bytes:
        """The bytes of an artifact, checked against ``digest``.

        Raises:
            StorageError: The artifact is missing or does not hash to ``digest`` (the message
                names ``path``, the program file).
        """

    def discard(self, conn: Connection, oid: int | None) -> None:
        """Free what :meth:`put` made for a row that was not inserted (another writer's was)."""


def check_bytes(data: bytes, digest: str, what: str, where: str) -> bytes:
    """``data``, when it hashes to ``digest``.

    Raises:
        StorageError: It does not; the message names ``what`` (e.g. ``program file 'x'``)
            and ``where`` it was read from.
    """
    found = hashlib.sha256(data).hexdigest()
    if found != digest:
        raise StorageError(
            f"{what} is corrupt in the artifact store: {where} hashes to "
            f"{found[:16]}…, expected {digest[:16]}… (sha256 {digest})"
        )
    return data


def write_file(target: Path, data: bytes, *, folders: tuple[Path, ...]) -> None:
    """Write ``target`` atomically: a temporary file beside it (``.<name>.<random>``),
    fsync, rename, then fsync ``folders`` (made owner-only if missing, outermost first) so
    that the new name survives a crash.

    Raises:
        OSError: It could not be written (a temporary file is removed).
    """
    for folder in folders:
        folder.mkdir(mode=0o700, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    for folder in reversed(folders):  # the new name, and a new subfolder's
        folder_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)


class FileArtifacts:
    """A content-addressed folder of files beside a SQLite database.

    Args:
        root: The folder (made, owner-only, when the first artifact is stored).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, digest: str) -> Path:
        """Where the artifact of ``digest`` lives."""
        return self.root / digest[:2] / digest

    def put(self, conn: Connection, digest: str, data: bytes) -> int | None:
        target = self.path_of(digest)
        with contextlib.suppress(OSError, StorageError):
            if target.stat().st_size == len(data):
                check_bytes(target.read_bytes(), digest, "", "")
                return None  # in place already (another program's, or left by a crash)
        try:
            write_file(target, data, folders=(self.root, target.parent))
        except OSError as exc:
            raise StorageError(f"cannot write artifact {target}: {exc.strerror or exc}") from exc
        return None

    def get(self, conn: Connection, digest: str, oid: int | None, size: int, path: str) -> bytes:
        target = self.path_of(digest)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise StorageError(
                f"program file {path!r} is missing from the artifact store: no {target} "
                f"(sha256 {digest})"
            ) from None
        except OSError as exc:
            raise StorageError(
                f"cannot read program file {path!r} from the artifact store ({target}): "
                f"{exc.strerror or exc}"
            ) from exc
        return check_bytes(data, digest, f"program file {path!r}", str(target))

    def discard(self, conn: Connection, oid: int | None) -> None:
        return None  # the file is the other writer's too (same content, same name)


_LO_CREATE = text("SELECT lo_from_bytea(0, :data)").bindparams(bindparam("data", type_=LargeBinary))
_LO_PUT = text("SELECT lo_put(CAST(:oid AS oid), :offset, :data)").bindparams(
    bindparam("data", type_=LargeBinary)
)
_LO_GET = text("SELECT lo_get(CAST(:oid AS oid), :offset, :length)")
_LO_EXISTS = text("SELECT 1 FROM pg_largeobject_metadata WHERE oid = CAST(:oid AS oid)")
_LO_UNLINK = text("SELECT lo_unlink(CAST(:oid AS oid))")


class LargeObjects:
    """PostgreSQL large objects, written and read in chunks of :data:`CHUNK` bytes."""

    def put(self, conn: Connection, digest: str, data: bytes) -> int:
        oid = int(conn.execute(_LO_CREATE, {"data": data[:CHUNK]}).scalar_one())
        for offset in range(CHUNK, len(data), CHUNK):
            conn.execute(
                _LO_PUT, {"oid": oid, "offset": offset, "data": data[offset : offset + CHUNK]}
            )
        return oid

    def get(
        self,
        conn: Connection,
        digest: str,
        oid: int | None,
        size: int,
        path: str,
        *,
        label: str | None = None,
    ) -> bytes:
        """The bytes of a large object, checked against ``digest``.

        Args:
            path: The program file it is (named in an error).
            label: What an error calls it instead (default: ``program file '<path>'``).

        Raises:
            StorageError: The large object is missing or does not hash to ``digest``.
        """
        where = f"large object {oid}"
        what = label if label is not None else f"program file {path!r}"
        if oid is None or conn.execute(_LO_EXISTS, {"oid": oid}).first() is None:
            raise StorageError(
                f"{what} is missing from the artifact store: no {where} (sha256 {digest})"
            )
        pieces: list[bytes] = []
        for offset in range(0, max(size, 1), CHUNK):
            params = {"oid": oid, "offset": offset, "length": CHUNK}
            pieces.append(bytes(conn.execute(_LO_GET, params).scalar_one()))
        return check_bytes(b"".join(pieces), digest, what, where)

    def discard(self, conn: Connection, oid: int | None) -> None:
        if oid is not None:
            conn.execute(_LO_UNLINK, {"oid": oid})


def sqlite_artifact_dir(url: URL) -> Path | None:
    """The artifact folder of a SQLite database file (None: an in-memory database)."""
    return sqlite_side_folder(url, "artifacts")


def sqlite_side_folder(url: URL, suffix: str) -> Path | None:
    """``<database file>.<suffix>``, a folder beside a SQLite database file (None: an
    in-memory database)."""
    database = url.database or ""
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
        if url.query.get("mode") == "memory":
            return None
    if database in ("", ":memory:"):
        return None
    path = Path(database).expanduser().resolve()
    return path.with_name(f"{path.name}.{suffix}")


def artifact_store(url: URL, dialect: str) -> ArtifactStore | None:
    """The artifact store of a database (None: artifacts stay in the rows: an in-memory
    SQLite database, or a dialect other than SQLite and PostgreSQL)."""
    if dialect == "postgresql":
        return LargeObjects()
    if dialect == "sqlite":
        root = sqlite_artifact_dir(url)
        return FileArtifacts(root) if root is not None else None
    return None
