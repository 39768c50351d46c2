"""The training checkpoints of :class:`InMemoryStorage`: bytes in memory, one per variant (so
a training resumes within the process that holds the storage)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from hyperagents.exceptions import VariantNotFoundError
from hyperagents.storages._base_checkpoints import checked_checkpoint
from hyperagents.storages._common import utcnow
from hyperagents.storages._in_memory_state import MemoryState
from hyperagents.storages._records import CheckpointRecord

__all__ = ["MemoryCheckpoints"]


class MemoryCheckpoints(MemoryState):
    """The checkpoint methods of :class:`InMemoryStorage`."""

    def _require_variant_of(self, run_id: int, variant_id: int) -> None:
        self._run(run_id)
        if self._variant(variant_id).run_id != run_id:
            raise VariantNotFoundError(f"variant {variant_id} not found in run {run_id}")

    def put_checkpoint(
        self, run_id: int, variant_id: int, *, key: str, step: int, files: Mapping[str, bytes]
    ) -> None:
        checked = checked_checkpoint(key, step, files)
        with self._lock:
            self._require_variant_of(run_id, variant_id)
            self._checkpoints[(run_id, variant_id)] = CheckpointRecord(
                run_id=run_id,
                variant_id=variant_id,
                key=key,
                step=int(step),
                files=MappingProxyType(checked),
                saved_at=utcnow(),
            )

    def get_checkpoint(
        self, run_id: int, variant_id: int, *, key: str | None = None
    ) -> CheckpointRecord | None:
        with self._lock:
            self._require_variant_of(run_id, variant_id)
            found = self._checkpoints.get((run_id, variant_id))
        if found is None or (key is not None and found.key != key):
            return None
        return found  # frozen, and its files a read-only view of bytes

    def drop_checkpoint(self, run_id: int, variant_id: int) -> bool:
        with self._lock:
            self._require_variant_of(run_id, variant_id)
            return self._checkpoints.pop((run_id, variant_id), None) is not None

    def _delete_checkpoints_of(self, run_id: int) -> None:
        """Forget every checkpoint of the run (it is deleted)."""
        for pair in [pair for pair in self._checkpoints if pair[0] == run_id]:
            del self._checkpoints[pair]
