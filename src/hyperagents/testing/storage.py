"""The storage conformance suite: every clause of the storage contract, as pytest tests.

Subclass :class:`StorageConformanceTests` in a test module and provide a ``storage`` fixture
that yields a fresh, empty storage for each test::

    import pytest
    from hyperagents.storages import InMemoryStorage
    from hyperagents.testing.storage import StorageConformanceTests


    class TestMyStorage(StorageConformanceTests):
        @pytest.fixture
        def storage(self):
            storage = InMemoryStorage()
            yield storage
            storage.close()

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

from hyperagents.testing._storage_artifacts import ArtifactTests
from hyperagents.testing._storage_checkpoints import CheckpointTests
from hyperagents.testing._storage_engines import EngineTests
from hyperagents.testing._storage_records import RecordTests
from hyperagents.testing._storage_runs import RunTests
from hyperagents.testing._storage_samples import JSON_SAMPLE, make_program
from hyperagents.testing._storage_services import ServiceTests
from hyperagents.testing._storage_threads import ThreadTests
from hyperagents.testing._storage_transactions import TransactionTests
from hyperagents.testing._storage_variants import VariantTests

__all__ = ["JSON_SAMPLE", "StorageConformanceTests", "make_program"]


class StorageConformanceTests(
    RunTests,
    VariantTests,
    ArtifactTests,
    CheckpointTests,
    RecordTests,
    ThreadTests,
    TransactionTests,
    EngineTests,
    ServiceTests,
):
    """Tests every storage backend must pass; subclasses provide a ``storage`` fixture.

    The fixture must yield a fresh, empty storage for each test. The tests come in parts, one
    per job of a storage: runs (with their typed state), programs and variants, artifacts
    (large files and a model's weights), training checkpoints, records
    (events, LLM calls, JSON fields, snapshots, times), threads, transactions of several
    calls, the engines of a run (with the engine and worker that ran each step), and services
    (routing, served requests, feedback, logs).
    """
