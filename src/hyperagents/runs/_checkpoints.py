"""The latest checkpoint of each training in progress, kept so that a killed run resumes it.

A trainer writes checkpoints as it goes (see :mod:`hyperagents.weights`); the training stage
keeps the newest one of each child here, under the storage's own folder on this machine
(:meth:`~hyperagents.storages.BaseStorage.local_folder`: ``<database>.checkpoints/`` beside a
SQLite file). One file per child, ``run<R>-variant<V>.zip``, holding the checkpoint's files
and ``checkpoint.json`` (the training's key and the step), written to a temporary name,
flushed and renamed, so a kill leaves the previous checkpoint or the new one, never half of
one. The file is removed once the training's outcome is recorded.

A checkpoint is only used by the same training: its key is a hash of everything the trainer
is given (the child's program, the examples, the seed and the options); a training whose
inputs differ starts from the beginning. Checkpoints stay on the machine that wrote them: an
engine elsewhere (a crew on PostgreSQL) that takes the training over starts it again, which
costs time, never correctness. A storage in memory keeps none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperagents.storages import BaseStorage

__all__ = ["CheckpointStore", "training_key"]

_META = "checkpoint.json"
_FILES = "files/"


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
    """The newest checkpoint of each child's training, as files (see the module).

    Args:
        root: The folder they go in (None: none are kept).
    """

    def __init__(self, root: Path | None) -> None:
        self._root = root

    @classmethod
    def of(cls, storage: BaseStorage) -> CheckpointStore:
        """The store of ``storage``'s database on this machine."""
        return cls(storage.local_folder("checkpoints"))

    @property
    def enabled(self) -> bool:
        """Whether checkpoints are kept at all."""
        return self._root is not None

    def _path(self, run_id: int, variant_id: int) -> Path:
        assert self._root is not None
        return self._root / f"run{int(run_id)}-variant{int(variant_id)}.zip"

    def save(
        self, run_id: int, variant_id: int, key: str, step: int, files: Mapping[str, bytes]
    ) -> None:
        """Keep ``files`` as the newest checkpoint of the child's training (atomically).

        Raises:
            OSError: It could not be written (the previous one is left as it was).
        """
        if self._root is None:
            return
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self._path(run_id, variant_id)
        fd, tmp = tempfile.mkstemp(dir=self._root, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
                    archive.writestr(_META, json.dumps({"key": key, "step": int(step)}))
                    for name, data in sorted(files.items()):
                        archive.writestr(_FILES + name, data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def load(self, run_id: int, variant_id: int, key: str) -> tuple[int, dict[str, bytes]] | None:
        """The step and files of the child's newest checkpoint when it belongs to the training
        ``key`` names (None: there is none, it is another training's, or it is unreadable)."""
        if self._root is None:
            return None
        try:
            with zipfile.ZipFile(self._path(run_id, variant_id)) as archive:
                meta = json.loads(archive.read(_META))
                if not isinstance(meta, dict) or meta.get("key") != key:
                    return None
                files = {
                    info.filename[len(_FILES) :]: archive.read(info)
                    for info in archive.infolist()
                    if info.filename.startswith(_FILES)
                }
                step = meta.get("step")
        except (OSError, ValueError, zipfile.BadZipFile, KeyError):
            return None
        if not isinstance(step, int) or not files:
            return None
        return step, files

    def drop(self, run_id: int, variant_id: int) -> None:
        """Forget the child's checkpoint (its training's outcome is recorded), and any half
        written one a killed process left behind."""
        if self._root is None:
            return
        path = self._path(run_id, variant_id)
        for stale in [path, *self._root.glob(f".{path.name}.*.tmp")]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)

    def drop_run(self, run_id: int) -> None:
        """Forget every checkpoint of the run (it is deleted), half-written ones included."""
        if self._root is None or not self._root.is_dir():
            return
        name = f"run{int(run_id)}-variant"
        for stale in self._root.iterdir():
            if stale.name.startswith((name, f".{name}")) and not stale.is_dir():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
