"""The programs of :class:`RDBStorage`: content-addressed blobs and manifests."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hyperagents.exceptions import StorageError
from hyperagents.program import Program
from hyperagents.storages._common import utcnow
from hyperagents.storages._rdb._connect import first_line
from hyperagents.storages._rdb._transactions import BLOBS, IN_CHUNK, PROGRAMS, RDBCore, retried

__all__ = ["ProgramMethods"]


class ProgramMethods(RDBCore):
    """The program methods of :class:`RDBStorage`."""

    @retried(idempotent=True)
    def put_program(self, program: Program) -> str:
        program_id = program.id
        by_hash: dict[str, bytes] = {}
        for path, digest in program.blobs.items():
            by_hash.setdefault(digest, program[path])
        for attempt in range(3):
            try:
                with self._write() as conn:
                    if self._program_exists(conn, program_id):
                        return program_id
                    hashes = list(by_hash)
                    present: set[str] = set()
                    for i in range(0, len(hashes), IN_CHUNK):
                        chunk = hashes[i : i + IN_CHUNK]
                        stmt = select(BLOBS.c.sha256).where(BLOBS.c.sha256.in_(chunk))
                        present.update(conn.execute(stmt).scalars())
                    rows = [
                        {"sha256": h, "size": len(data), "data": data}
                        for h, data in by_hash.items()
                        if h not in present
                    ]
                    self._insert_ignoring_duplicates(conn, BLOBS, rows)
                    self._insert_ignoring_duplicates(
                        conn,
                        PROGRAMS,
                        [{"id": program_id, "manifest": program.manifest, "created_at": utcnow()}],
                    )
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
            hashes = sorted(set(manifest.values()))
            blobs: dict[str, bytes] = {}
            for i in range(0, len(hashes), IN_CHUNK):
                chunk = hashes[i : i + IN_CHUNK]
                stmt = select(BLOBS.c.sha256, BLOBS.c.data).where(BLOBS.c.sha256.in_(chunk))
                blobs.update((h, bytes(d)) for h, d in conn.execute(stmt))
        try:
            program = Program({path: blobs[digest] for path, digest in manifest.items()})
        except KeyError as exc:
            raise StorageError(f"program {program_id} is missing blob {exc.args[0]}") from None
        if program.id != program_id:
            raise StorageError(f"program {program_id} is corrupt (content hashes to {program.id})")
        return program

    @retried(idempotent=True)
    def has_program(self, program_id: str) -> bool:
        with self._read() as conn:
            return self._program_exists(conn, program_id)

    @retried(idempotent=True)
    def count_blobs(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(BLOBS)).scalar_one())
