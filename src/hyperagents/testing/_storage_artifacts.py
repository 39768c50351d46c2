"""Conformance tests of artifacts: large program files and a model's weights.

Whatever a backend does with them (a file store beside SQLite, large objects in PostgreSQL,
bytes in memory), a program that carries them reads back byte for byte, shares them with every
program of the same content, keeps them when a run is deleted, and leaves nothing that a
program names half-written when its transaction fails.

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import random

import pytest

from hyperagents.program import ARTIFACT_MIN_SIZE, Program, is_artifact
from hyperagents.storages import BaseStorage
from hyperagents.testing._storage_base import StorageTestBase
from hyperagents.testing._storage_samples import make_program

__all__ = ["ArtifactTests", "model_program"]

#: Size of the large file of :func:`model_program` (3 MB).
LARGE = 3_000_000


def model_program(tag: str = "seed", *, seed: int = 0, large: int = LARGE) -> Program:
    """A program carrying a model: ``model/config.json``, a small ``model/model.safetensors``
    and a ``large``-byte random file (random bytes from ``seed``)."""
    rng = random.Random(seed)
    model: dict[str, str | bytes | None] = {
        "model/config.json": '{"d_model": 32, "n_layers": 2}\n',
        "model/model.safetensors": rng.randbytes(4096),
        "data/large.bin": rng.randbytes(large),
    }
    return make_program(tag).with_files(model)


class ArtifactTests(StorageTestBase):
    """Conformance tests of artifacts."""

    def test_a_program_with_a_model_reads_back_byte_for_byte(self, storage: BaseStorage) -> None:
        program = model_program()
        assert is_artifact("data/large.bin", len(program["data/large.bin"]))
        assert is_artifact("model/model.safetensors", 4096)
        assert not is_artifact("model/config.json", len(program["model/config.json"]))
        assert storage.put_program(program) == program.id
        loaded = storage.get_program(program.id)
        assert loaded == program
        assert loaded["data/large.bin"] == program["data/large.bin"]
        assert len(loaded["data/large.bin"]) == LARGE
        assert loaded["model/model.safetensors"] == program["model/model.safetensors"]
        assert loaded.text("model/config.json") == '{"d_model": 32, "n_layers": 2}\n'

    def test_artifacts_are_stored_once_for_every_program(self, storage: BaseStorage) -> None:
        first = model_program("first")
        storage.put_program(first)
        blobs = storage.count_blobs()
        # Another program: the same weights at another path too, and one new small source.
        second = model_program("second").with_files({"backup/large.bin": first["data/large.bin"]})
        storage.put_program(second)
        assert storage.count_blobs() == blobs + 1  # its task_agent.py only
        assert storage.get_program(second.id)["backup/large.bin"] == first["data/large.bin"]
        assert storage.get_program(first.id) == first
        # New weights: one new content.
        retrained = second.with_files({"model/model.safetensors": b"\x01" * 4096})
        storage.put_program(retrained)
        assert storage.count_blobs() == blobs + 2
        assert storage.get_program(retrained.id) == retrained

    def test_a_file_just_under_the_threshold_and_one_at_it(self, storage: BaseStorage) -> None:
        rng = random.Random(1)
        program = make_program(
            under=rng.randbytes(ARTIFACT_MIN_SIZE - 1), at=rng.randbytes(ARTIFACT_MIN_SIZE)
        ).with_files({"model/empty.bin": b""})
        storage.put_program(program)
        assert storage.get_program(program.id) == program
        assert storage.get_program(program.id)["model/empty.bin"] == b""

    def test_artifacts_stay_when_a_run_is_deleted(self, storage: BaseStorage) -> None:
        doomed, kept = self._run(storage, "doomed"), self._run(storage, "kept")
        shared, own = model_program("shared"), model_program("own", seed=5)
        for program in (shared, own):
            storage.put_program(program)
        self._variant(storage, doomed, 0, program_id=own.id)
        self._variant(storage, doomed, 1, program_id=shared.id)
        self._variant(storage, kept, 0, program_id=shared.id)
        blobs = storage.count_blobs()
        storage.delete_run(doomed)
        # Programs (and so their artifacts) stay: other runs may share them, and a program
        # stored again later finds them.
        assert storage.count_blobs() == blobs
        assert storage.get_program(shared.id) == shared
        assert storage.get_program(own.id) == own

    def test_a_failed_transaction_leaves_no_program_naming_its_artifacts(
        self, storage: BaseStorage
    ) -> None:
        program = model_program()
        blobs = storage.count_blobs()

        def store_then_fail() -> None:
            storage.put_program(program)
            raise RuntimeError("the process died before the commit")

        with pytest.raises(RuntimeError, match="died"):
            storage.atomically(store_then_fail)
        assert not storage.has_program(program.id)
        assert storage.count_blobs() == blobs
        # Storing it again works, and whatever the failed attempt left is reused.
        storage.put_program(program)
        assert storage.get_program(program.id) == program
