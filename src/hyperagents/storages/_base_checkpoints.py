"""The storage contract of training checkpoints: the newest one of each variant's training.

A training (see :mod:`hyperagents.weights`) writes checkpoints as it goes; the training stage
keeps the newest one of each child in the storage, so that whichever engine takes the
training over, on whichever machine, goes on from it. A checkpoint is a key (what the
training is: a hash of its inputs), a step and its files (a model's weights and an
optimiser's state: many megabytes).

Contract (checked by ``hyperagents.testing.storage``):

* **One per variant.** :meth:`CheckpointStorage.put_checkpoint` replaces the variant's
  checkpoint, whatever its key; :meth:`CheckpointStorage.get_checkpoint` gives back the one
  stored last, byte for byte.
* **Atomic replacement.** A put is one transaction, like every mutating method: a failure or
  a kill at any moment leaves the previous checkpoint or the new one, never parts of both.
  Inside :meth:`~hyperagents.storages.BaseStorage.atomically` it commits (or is undone) with
  the block.
* **Bounded.** Replacing a checkpoint frees the previous one's bytes (a backend that keeps
  them outside its rows frees them in the put's transaction, or once it has committed; after
  a kill, at the latest in the next put or drop of the same variant), so a long training
  keeps one checkpoint's worth of bytes, not one per step.
  :meth:`CheckpointStorage.drop_checkpoint` and
  :meth:`~hyperagents.storages.BaseStorage.delete_run` free them.
* **Undone with the transaction.** A put, drop or run deletion inside an
  :meth:`~hyperagents.storages.BaseStorage.atomically` block that rolls back changes nothing:
  the checkpoint stored before stays readable, byte for byte, and the rolled-back put's bytes
  are freed (bytes are freed only once the outermost transaction has ended).
* **Large bytes stay out of the rows** where the backend has somewhere else to keep them (RDB:
  the artifact store of :mod:`hyperagents.storages._rdb._artifacts`: files beside a SQLite
  database, large objects in PostgreSQL), and every read is checked against the SHA-256
  recorded with them: bytes that are missing or changed raise :class:`StorageError`, never
  come back wrong.
* **Missing records** raise :class:`RunNotFoundError` / :class:`VariantNotFoundError` (a
  variant of another run is not found either).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from hyperagents.exceptions import StorageError
from hyperagents.storages._records import CheckpointRecord

__all__ = ["MAX_CHECKPOINT_KEY", "CheckpointStorage", "checked_checkpoint"]

#: The longest checkpoint key, in characters.
MAX_CHECKPOINT_KEY = 255


def checked_checkpoint(key: str, step: int, files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The files of a checkpoint to store, sorted by name, after checking its parts.

    Raises:
        StorageError: ``key`` is empty or longer than :data:`MAX_CHECKPOINT_KEY`, ``step`` is
            not an integer >= 0, or a file's name is empty or its content not bytes.
    """
    if not isinstance(key, str) or not key or len(key) > MAX_CHECKPOINT_KEY:
        raise StorageError(f"a checkpoint key is 1 to {MAX_CHECKPOINT_KEY} characters, not {key!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise StorageError(f"a checkpoint's step is an integer >= 0, not {step!r}")
    checked: dict[str, bytes] = {}
    for name in sorted(files):
        data = files[name]
        if not isinstance(name, str) or not name:
            raise StorageError(f"a checkpoint file needs a name, not {name!r}")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StorageError(f"checkpoint file {name!r} is {type(data).__name__}, not bytes")
        checked[name] = bytes(data)
    return checked


class CheckpointStorage(ABC):
    """The checkpoint methods every storage has (see the module docstring)."""

    @abstractmethod
    def put_checkpoint(
        self, run_id: int, variant_id: int, *, key: str, step: int, files: Mapping[str, bytes]
    ) -> None:
        """Make ``files`` (at ``step`` of the training ``key`` names) the variant's checkpoint,
        replacing the one stored before (and freeing its bytes).

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: No such variant in the run.
            StorageError: The key, step or files are not valid (see
                :func:`checked_checkpoint`), or the bytes could not be stored (the previous
                checkpoint is kept).
        """

    @abstractmethod
    def get_checkpoint(
        self, run_id: int, variant_id: int, *, key: str | None = None
    ) -> CheckpointRecord | None:
        """The variant's checkpoint (None: there is none, or, with ``key``, it is another
        training's: its bytes are then not read).

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: No such variant in the run.
            StorageError: Its bytes are missing or do not hash to what was stored.
        """

    @abstractmethod
    def drop_checkpoint(self, run_id: int, variant_id: int) -> bool:
        """Delete the variant's checkpoint and free its bytes.

        Returns:
            Whether there was one.

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: No such variant in the run.
        """
