"""The training checkpoints of :class:`RDBStorage`: one row of ``checkpoints`` per run and
variant, its bytes in the database's artifact store.

A checkpoint's files are stored as one *payload* (their contents one after the other, in name
order), its names and sizes (``files``) and SHA-256 in the row; every read checks the hash.
Where the payload lives:

* **PostgreSQL**: a large object (``lo_oid``), written in chunks in the put's transaction
  (:class:`~hyperagents.storages._rdb._artifacts.LargeObjects`). A trigger made by migration
  0012_checkpoints unlinks a row's large object when the row is deleted (a drop, a deleted
  run or variant) or replaced by a put, in that transaction: a replaced checkpoint leaves no
  large object behind, and a failed put's large object goes with its rolled-back
  transaction. A read locks the row (``FOR SHARE``), so a put waits for it.
* **SQLite file**: a file of the artifact folder beside the database,
  ``<database>.artifacts/checkpoints/run<R>-variant<V>-<sha256>``, written (temporary name,
  fsync, rename) while the put's transaction holds the write lock, before the row naming it
  commits. No file is deleted inside a transaction (it could still roll back, inside
  :meth:`~hyperagents.storages.BaseStorage.atomically` too): once the transaction of a put, a
  drop or a run's deletion has ended, committed or rolled back (for ``atomically``, its
  outermost one), a *sweep* deletes, in a write transaction of its own, every file of the
  variant (or run) that no committed row names: the replaced or dropped checkpoint's, a
  rolled-back put's, a killed put's. A kill before the sweep leaves such files, which the next
  put or drop of the variant sweeps away (no row names them: they are never read).
* **No artifact store** (an in-memory SQLite database): the payload is the row's ``data``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy import Connection, Delete, Row, Select, delete, select

from hyperagents.exceptions import RunNotFoundError, StorageError, VariantNotFoundError
from hyperagents.storages._base_checkpoints import checked_checkpoint
from hyperagents.storages._common import utcnow
from hyperagents.storages._rdb._artifacts import (
    ArtifactStore,
    FileArtifacts,
    LargeObjects,
    check_bytes,
    write_file,
)
from hyperagents.storages._rdb._transactions import CHECKPOINTS, RUNS, VARIANTS, RDBCore, retried
from hyperagents.storages._records import CheckpointRecord

__all__ = ["CHECKPOINT_FOLDER", "CheckpointMethods", "checkpoint_folder"]

#: The folder of a SQLite database's artifact store that holds checkpoint files.
CHECKPOINT_FOLDER = "checkpoints"

_COLUMNS = (
    CHECKPOINTS.c.key,
    CHECKPOINTS.c.step,
    CHECKPOINTS.c.files,
    CHECKPOINTS.c.size,
    CHECKPOINTS.c.sha256,
    CHECKPOINTS.c.lo_oid,
    CHECKPOINTS.c.data,
    CHECKPOINTS.c.saved_at,
)

_S = TypeVar("_S", Select[Any], Delete)


def _of_pair(stmt: _S, run_id: int, variant_id: int) -> _S:
    """``stmt`` limited to the checkpoint of one run and variant."""
    return stmt.where(CHECKPOINTS.c.run_id == run_id, CHECKPOINTS.c.variant_id == variant_id)


class _Gone(Exception):
    """A checkpoint's file is missing: it may have been replaced since its row was read (read
    the row again), or be lost."""


def checkpoint_folder(store: ArtifactStore | None) -> Path | None:
    """The folder of checkpoint files of a database's artifact store (None: it keeps
    checkpoints elsewhere)."""
    return store.root / CHECKPOINT_FOLDER if isinstance(store, FileArtifacts) else None


def _pair(run_id: int, variant_id: int) -> str:
    """The start of the names of a variant's checkpoint files."""
    return f"run{int(run_id)}-variant{int(variant_id)}-"


def _files_named(folder: Path, prefix: str) -> list[Path]:
    """The files of ``folder`` whose names start with ``prefix``, temporary ones (``.``
    first) included. ``run1-variant`` is no prefix of ``run10-variant``, nor
    ``run1-variant2-`` of ``run1-variant23-``."""
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if path.name.lstrip(".").startswith(prefix)]


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _payload(files: Mapping[str, bytes]) -> tuple[bytes, list[list[Any]], str]:
    payload = b"".join(files.values())
    names = [[name, len(data)] for name, data in files.items()]
    return payload, names, hashlib.sha256(payload).hexdigest()


def _split(payload: bytes, names: Any, what: str) -> dict[str, bytes]:
    """The files of a payload, cut by the names and sizes of its row.

    Raises:
        StorageError: They do not add up to the payload.
    """
    files: dict[str, bytes] = {}
    offset = 0
    try:
        for name, size in names:
            files[str(name)] = payload[offset : offset + int(size)]
            offset += int(size)
    except (TypeError, ValueError):
        raise StorageError(f"{what} has a corrupt list of files") from None
    if offset != len(payload):
        raise StorageError(f"{what}: its files do not add up to its {len(payload)} bytes")
    return files


class CheckpointMethods(RDBCore):
    """The checkpoint methods of :class:`RDBStorage`."""

    def _require_variant_of(self, conn: Connection, run_id: int, variant_id: int) -> None:
        stmt = select(VARIANTS.c.run_id).where(VARIANTS.c.id == variant_id)
        found = conn.execute(stmt).scalar()
        if found == run_id:
            return
        if conn.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is None:
            raise RunNotFoundError(f"run {run_id} not found")
        raise VariantNotFoundError(f"variant {variant_id} not found in run {run_id}")

    def _stored_digest(self, conn: Connection, run_id: int, variant_id: int) -> str | None:
        found = conn.execute(_of_pair(select(CHECKPOINTS.c.sha256), run_id, variant_id)).scalar()
        return None if found is None else str(found)

    def _upsert_checkpoint(self, conn: Connection, values: dict[str, Any]) -> None:
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(CHECKPOINTS)
        elif self._dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(CHECKPOINTS)
        else:  # other dialects: delete, then insert, in one transaction
            conn.execute(_of_pair(delete(CHECKPOINTS), values["run_id"], values["variant_id"]))
            conn.execute(CHECKPOINTS.insert(), values)
            return
        changed = {k: v for k, v in values.items() if k not in ("run_id", "variant_id")}
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["run_id", "variant_id"], set_=changed),
            values,
        )

    @retried(idempotent=True)  # the same checkpoint stored twice is stored once
    def put_checkpoint(
        self, run_id: int, variant_id: int, *, key: str, step: int, files: Mapping[str, bytes]
    ) -> None:
        payload, names, digest = _payload(checked_checkpoint(key, step, files))
        folder = checkpoint_folder(self._artifacts)
        prefix = _pair(run_id, variant_id)
        values: dict[str, Any] = {
            "run_id": run_id,
            "variant_id": variant_id,
            "key": key,
            "step": int(step),
            "files": names,
            "size": len(payload),
            "sha256": digest,
            "lo_oid": None,
            "data": None,
            "saved_at": utcnow(),
        }
        swept = False
        try:
            with self._write() as conn:
                self._require_variant_of(conn, run_id, variant_id)
                if folder is not None:
                    swept = True  # from here on a file may be left: swept when it ends
                    self._write_payload(folder / (prefix + digest), payload)
                elif isinstance(self._artifacts, LargeObjects):
                    values["lo_oid"] = self._artifacts.put(conn, digest, payload)
                else:
                    values["data"] = payload
                self._upsert_checkpoint(conn, values)
        finally:
            if swept:  # the replaced checkpoint's file, or this one's if it rolls back
                self._when_done(lambda: self._sweep_checkpoint_files(run_id, variant_id))

    def _write_payload(self, target: Path, payload: bytes) -> None:
        store = self._artifacts
        assert isinstance(store, FileArtifacts)
        try:
            write_file(target, payload, folders=(store.root, target.parent))
        except OSError as exc:
            raise StorageError(f"cannot write checkpoint {target}: {exc.strerror or exc}") from exc

    @retried(idempotent=True)
    def get_checkpoint(
        self, run_id: int, variant_id: int, *, key: str | None = None
    ) -> CheckpointRecord | None:
        what = f"the checkpoint of variant {variant_id} (run {run_id})"
        gone = ""
        for _attempt in range(3):
            try:
                with self._read() as conn:
                    stmt = _of_pair(select(*_COLUMNS), run_id, variant_id)
                    if self._dialect == "postgresql":
                        stmt = stmt.with_for_update(read=True)  # a put waits for this read
                    row = conn.execute(stmt).first()
                    if row is None:
                        self._require_variant_of(conn, run_id, variant_id)
                        return None
                    if key is not None and row.key != key:
                        return None
                    payload = self._read_payload(conn, run_id, variant_id, row, what)
            except _Gone as exc:
                gone = str(exc)
                continue
            return CheckpointRecord(
                run_id=run_id,
                variant_id=variant_id,
                key=str(row.key),
                step=int(row.step),
                files=MappingProxyType(_split(payload, row.files, what)),
                saved_at=row.saved_at,
            )
        raise StorageError(gone)

    def _read_payload(
        self, conn: Connection, run_id: int, variant_id: int, row: Row[Any], what: str
    ) -> bytes:
        """The payload of a checkpoint's row, checked against its hash.

        Raises:
            _Gone: Its file is missing (SQLite; replaced meanwhile, or lost).
            StorageError: It is missing or corrupt.
        """
        digest = str(row.sha256)
        folder = checkpoint_folder(self._artifacts)
        if folder is not None:
            target = folder / (_pair(run_id, variant_id) + digest)
            try:
                data = target.read_bytes()
            except FileNotFoundError:  # or replaced since the row was read: read it again
                raise _Gone(f"{what} is missing: no {target} (sha256 {digest})") from None
            except OSError as exc:
                raise StorageError(f"cannot read {what} ({target}): {exc}") from exc
            return check_bytes(data, digest, what, str(target))
        if isinstance(self._artifacts, LargeObjects):
            return self._artifacts.get(conn, digest, row.lo_oid, int(row.size), "", label=what)
        if row.data is None:
            raise StorageError(f"{what} has no bytes in its row (sha256 {digest})")
        return check_bytes(bytes(row.data), digest, what, "its row")

    @retried(idempotent=True)
    def drop_checkpoint(self, run_id: int, variant_id: int) -> bool:
        with self._write() as conn:
            self._require_variant_of(conn, run_id, variant_id)
            stmt = _of_pair(delete(CHECKPOINTS), run_id, variant_id)
            dropped = bool(conn.execute(stmt).rowcount)
        if checkpoint_folder(self._artifacts) is not None:  # its file, once it has committed
            self._when_done(lambda: self._sweep_checkpoint_files(run_id, variant_id))
        return dropped

    @retried(idempotent=True)
    def _sweep_checkpoint_files(self, run_id: int, variant_id: int | None) -> None:
        """Delete the checkpoint files of a variant (None: of every variant of the run) that
        no committed row names, under the write lock (so no put is between writing a file and
        committing its row), in a transaction of its own. Called once a transaction that may
        have left such files has ended (see :meth:`_when_done`), never inside one."""
        folder = checkpoint_folder(self._artifacts)
        if folder is None:
            return
        stmt = select(CHECKPOINTS.c.variant_id, CHECKPOINTS.c.sha256).where(
            CHECKPOINTS.c.run_id == run_id
        )
        if variant_id is None:
            prefix = f"run{int(run_id)}-variant"
        else:
            prefix = _pair(run_id, variant_id)
            stmt = stmt.where(CHECKPOINTS.c.variant_id == variant_id)
        with self._write() as conn:
            named = {_pair(run_id, int(v)) + str(digest) for v, digest in conn.execute(stmt)}
            _remove([path for path in _files_named(folder, prefix) if path.name not in named])
