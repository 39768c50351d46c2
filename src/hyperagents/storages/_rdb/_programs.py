"""The programs of :class:`RDBStorage`: content-addressed blobs and manifests.

A file is stored with :func:`~hyperagents.storages._rdb._packing.pack_blob`: compressed, or as
its difference from the last file stored or read at the same path that stands alone (its
*base*; the storage object remembers one per path). A child changes a few values of its
parent's files, so its new files take tens of bytes rather than kilobytes. A base is used only
once the database is seen to hold it, in the transaction that stores the difference.

Artifacts (:func:`~hyperagents.program.is_artifact`: large files, a model's weights) are never
packed nor used as bases: their rows name them, and the storage's artifact store holds them
(see :mod:`~hyperagents.storages._rdb._artifacts`), written before the row is inserted and
checked against their hash when read.

A manifest is stored as its difference from the last manifest with the same paths stored or
read alone, on SQLite (see :mod:`~hyperagents.storages._rdb._manifests`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from hyperagents.exceptions import StorageError
from hyperagents.program import Program, is_artifact
from hyperagents.storages._common import utcnow
from hyperagents.storages._rdb._connect import first_line
from hyperagents.storages._rdb._manifests import (
    BaseManifests,
    ManifestDifference,
    apply_difference,
    manifest_difference,
)
from hyperagents.storages._rdb._packing import (
    ARTIFACT_ROW,
    BLOB_DELTA,
    blob_base,
    pack_blob,
    unpack_blob,
)
from hyperagents.storages._rdb._statements import PROGRAMS_PRESENT
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


#: Which of some hashes the blobs table holds (built once; the list is expanded when run).
_PRESENT = select(BLOBS.c.sha256).where(BLOBS.c.sha256.in_(bindparam("hashes", expanding=True)))


def _present(conn: Connection, hashes: Iterable[str]) -> set[str]:
    """Which of ``hashes`` the blobs table holds."""
    wanted = list(dict.fromkeys(hashes))
    present: set[str] = set()
    for i in range(0, len(wanted), IN_CHUNK):
        present.update(conn.execute(_PRESENT, {"hashes": wanted[i : i + IN_CHUNK]}).scalars())
    return present


#: Where an artifact row's file is: its size and its large object (None: a file store's).
ArtifactRefs = dict[str, tuple[int, int | None]]


def _stored_rows(conn: Connection, hashes: Iterable[str]) -> tuple[dict[str, bytes], ArtifactRefs]:
    """The stored bytes of the blob rows of ``hashes`` that exist, and where the files of the
    artifact rows among them are."""
    wanted = sorted(set(hashes))
    rows: dict[str, bytes] = {}
    artifacts: ArtifactRefs = {}
    columns = (BLOBS.c.sha256, BLOBS.c.data, BLOBS.c.size, BLOBS.c.lo_oid)
    for i in range(0, len(wanted), IN_CHUNK):
        stmt = select(*columns).where(BLOBS.c.sha256.in_(wanted[i : i + IN_CHUNK]))
        for digest, data, size, oid in conn.execute(stmt):
            if bytes(data[:1]) == ARTIFACT_ROW and len(data) == 1:
                artifacts[digest] = (int(size), None if oid is None else int(oid))
            else:
                rows[digest] = bytes(data)
    return rows, artifacts


def read_blobs(
    conn: Connection, hashes: Iterable[str]
) -> tuple[dict[str, bytes], set[str], ArtifactRefs]:
    """The files of ``hashes`` that are stored in their rows, differences resolved against
    their bases; which of them stand alone; and where the artifacts among ``hashes`` are.

    Raises:
        StorageError: A row is corrupt, or the base of a difference is missing.
    """
    rows, artifacts = _stored_rows(conn, hashes)
    needed = {b for stored in rows.values() if (b := blob_base(stored)) is not None}
    base_rows = _stored_rows(conn, needed - rows.keys())[0] if needed - rows.keys() else {}
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
    return files, alone, artifacts


def _stored_manifest(
    manifest: dict[str, str], base: tuple[str, dict[str, str]] | None
) -> dict[str, str] | ManifestDifference:
    """What to store of ``manifest``: its difference from ``base`` (a stored program's id and
    manifest with the same paths; None: none) when that is smaller, else the manifest."""
    if base is None:
        return manifest
    difference = manifest_difference(manifest, base)
    return manifest if difference is None else difference


class ProgramMethods(RDBCore):
    """The program methods of :class:`RDBStorage`."""

    _bases: BaseFiles
    _manifest_bases: BaseManifests

    def _blob_rows(
        self, conn: Connection, files: Mapping[str, tuple[str, bytes]]
    ) -> tuple[list[dict[str, object]], list[tuple[str, str, bytes]], dict[str, bytes]]:
        """The rows to insert for ``files`` (digest -> (path, content)) that are not stored
        and are kept in their rows; the (path, digest, content) of those stored alone; and the
        artifacts (digest -> content) that are not stored."""
        bases = {path: base for path, _ in files.values() if (base := self._bases.get(path))}
        present = _present(conn, [*files, *(digest for digest, _ in bases.values())])
        rows: list[dict[str, object]] = []
        alone: list[tuple[str, str, bytes]] = []
        artifacts: dict[str, bytes] = {}
        for digest, (path, data) in files.items():
            if digest in present:
                continue
            if self._artifacts is not None and is_artifact(path, len(data)):
                artifacts[digest] = data
                continue
            base = bases.get(path)
            stored = pack_blob(data, base if base is not None and base[0] in present else None)
            rows.append({"sha256": digest, "size": len(data), "data": stored})
            if stored[0] != BLOB_DELTA:
                alone.append((path, digest, data))
        return rows, alone, artifacts

    def _insert_artifacts(self, conn: Connection, artifacts: Mapping[str, bytes]) -> None:
        """Put each artifact in the artifact store, then insert its row (in this order: a row
        is committed only once its file is in place). A large object made for a row that
        another writer inserted first is freed."""
        store = self._artifacts
        if store is None or not artifacts:
            return
        for digest, data in artifacts.items():
            oid = store.put(conn, digest, data)
            row = {"sha256": digest, "size": len(data), "data": ARTIFACT_ROW, "lo_oid": oid}
            if self._dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                stmt = pg_insert(BLOBS).on_conflict_do_nothing().returning(BLOBS.c.sha256)
                if conn.execute(stmt, row).first() is None:
                    store.discard(conn, oid)
            else:
                self._insert_ignoring_duplicates(conn, BLOBS, [row])

    def _read_artifacts(
        self, conn: Connection, manifest: Mapping[str, str], refs: ArtifactRefs
    ) -> dict[str, bytes]:
        """The files of the artifact rows ``refs`` of a program, each checked by its hash.

        Raises:
            StorageError: An artifact is missing or corrupt (the message names the file), or
                this storage has no artifact store.
        """
        paths = {digest: path for path, digest in reversed(list(manifest.items()))}
        store = self._artifacts
        files: dict[str, bytes] = {}
        for digest, (size, oid) in refs.items():
            if store is None:
                raise StorageError(
                    f"program file {paths.get(digest, digest)!r} is an artifact, and storage "
                    f"{self} has no artifact store to read it from"
                )
            files[digest] = store.get(conn, digest, oid, size, paths.get(digest, digest))
        return files

    @retried(idempotent=True)
    def put_program(self, program: Program) -> str:
        program_id = program.id
        files: dict[str, tuple[str, bytes]] = {}
        for path, digest in program.blobs.items():
            files.setdefault(digest, (path, program[path]))
        for attempt in range(3):
            try:
                # SQLite: the remembered manifest with the same paths, a base to store the
                # difference from if the database holds it (asked with the program itself).
                base = (
                    self._manifest_bases.get(program.manifest)
                    if self._dialect == "sqlite"
                    else None
                )
                with self._write() as conn:
                    wanted = [program_id] if base is None else [program_id, base[0]]
                    found = set(conn.execute(PROGRAMS_PRESENT, {"ids": wanted}).scalars())
                    if program_id in found:
                        return program_id
                    rows, alone, artifacts = self._blob_rows(conn, files)
                    self._insert_ignoring_duplicates(conn, BLOBS, rows)
                    self._insert_artifacts(conn, artifacts)
                    stored_base = base if base is not None and base[0] in found else None
                    manifest = _stored_manifest(program.manifest, stored_base)
                    self._insert_ignoring_duplicates(
                        conn,
                        PROGRAMS,
                        [{"id": program_id, "manifest": manifest, "created_at": utcnow()}],
                    )
                for path, digest, data in alone:
                    self._bases.remember(path, digest, data)
                if not isinstance(manifest, ManifestDifference):
                    self._manifest_bases.remember(program_id, manifest)
                return program_id
            except IntegrityError as exc:
                if attempt == 2:
                    raise StorageError(
                        f"cannot store program {program_id}: {first_line(exc)}"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_manifest(self, conn: Connection, program_id: str) -> dict[str, str]:
        """The manifest of ``program_id``; the manifest read that stands alone (the program's,
        or its difference's base) is remembered as a base.

        Raises:
            StorageError: The program is missing, or the manifest its difference needs.
        """
        stmt = select(PROGRAMS.c.manifest).where(PROGRAMS.c.id == program_id)
        stored = conn.execute(stmt).scalar()
        if stored is None:
            raise StorageError(f"program {program_id} not found")
        if not isinstance(stored, ManifestDifference):
            self._manifest_bases.remember(program_id, stored)
            return dict(stored)
        stmt = select(PROGRAMS.c.manifest).where(PROGRAMS.c.id == stored.base)
        base = conn.execute(stmt).scalar()
        if not isinstance(base, dict):
            raise StorageError(f"program {program_id} needs the missing manifest of {stored.base}")
        self._manifest_bases.remember(stored.base, base)
        return apply_difference(base, stored)

    @retried(idempotent=True)
    def get_program(self, program_id: str) -> Program:
        with self._read() as conn:
            manifest = self._read_manifest(conn, program_id)
            blobs, alone, refs = read_blobs(conn, manifest.values())
            if refs:
                blobs.update(self._read_artifacts(conn, manifest, refs))
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
