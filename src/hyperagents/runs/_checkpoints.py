"""The latest checkpoint of each training in progress, kept so that a killed run resumes it.

A trainer writes checkpoints as it goes (see :mod:`hyperagents.weights`); the training stage
keeps the newest one of each child **in the run's storage**
(:meth:`~hyperagents.storages.BaseStorage.put_checkpoint`): with its key and step, its bytes in
the database's artifact store (a file beside a SQLite database, a large object in
PostgreSQL), replaced atomically, so a kill leaves the previous checkpoint or the new one,
never half of one, and a replaced one's bytes are freed. Any engine that takes the training
over, on any machine that reaches the database (a crew of engines on PostgreSQL), resumes it
from there; an in-memory storage keeps them in memory, so a training resumes within the
process. The checkpoint is dropped once the training's outcome is recorded, and goes with its
run when the run is deleted.

A checkpoint is only used by the same training: its key is a hash of everything the trainer
is given (the child's program, the examples, the seed and the options); a training whose
inputs differ starts from the beginning, as does one whose checkpoint cannot be read (a
checkpoint only saves time, it never decides an outcome).

Versions before storage revision 0012_checkpoints kept checkpoints in a folder of the machine
that wrote them (``<database>.checkpoints/`` beside a SQLite file); those files are ignored (a
training that was in progress when the database was upgraded starts over once) and the folder
may be deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hyperagents.exceptions import StorageError
from hyperagents.storages import BaseStorage

__all__ = ["CheckpointStore", "training_key"]

logger = logging.getLogger("hyperagents")


def training_key(
    program_id: str,
    examples: Sequence[Mapping[str, Any]],
    seed: int,
    options: Mapping[str, Any],
) -> str:
    """The hash naming one training's inputs (its checkpoints serve only that training)."""
    given = {"program": program_id, "examples": examples, "seed": seed, "options": options}
    text = json.dumps(given, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CheckpointStore:
    """The newest checkpoint of each child's training, in a storage (see the module).

    Args:
        storage: The run's storage.
    """

    def __init__(self, storage: BaseStorage) -> None:
        self._storage = storage

    @classmethod
    def of(cls, storage: BaseStorage) -> CheckpointStore:
        """The store of ``storage``."""
        return cls(storage)

    def save(
        self, run_id: int, variant_id: int, key: str, step: int, files: Mapping[str, bytes]
    ) -> None:
        """Keep ``files`` as the newest checkpoint of the child's training (atomically).

        Raises:
            StorageError: It could not be stored (the previous one is left as it was).
        """
        self._storage.put_checkpoint(run_id, variant_id, key=key, step=step, files=files)

    def load(self, run_id: int, variant_id: int, key: str) -> tuple[int, dict[str, bytes]] | None:
        """The step and files of the child's newest checkpoint when it belongs to the training
        ``key`` names (None: there is none, it is another training's, or it is unreadable)."""
        try:
            found = self._storage.get_checkpoint(run_id, variant_id, key=key)
        except StorageError as exc:  # missing or corrupt bytes: the training starts over
            logger.warning("checkpoint of variant %s not used: %s", variant_id, exc)
            return None
        if found is None or not found.files:
            return None
        return found.step, dict(found.files)

    def drop(self, run_id: int, variant_id: int) -> None:
        """Forget the child's checkpoint (its training's outcome is recorded). A failure is
        only logged: the checkpoint goes with its run at the latest."""
        try:
            self._storage.drop_checkpoint(run_id, variant_id)
        except StorageError as exc:
            logger.warning("checkpoint of variant %s not dropped: %s", variant_id, exc)
