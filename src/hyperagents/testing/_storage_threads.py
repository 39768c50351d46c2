"""Conformance tests of storages shared by threads.

This module imports pytest; import it only from tests.
"""

from __future__ import annotations

import threading

from hyperagents.exceptions import (
    DuplicateError,
)
from hyperagents.program import Program
from hyperagents.storages import (
    BaseStorage,
    VariantState,
)
from hyperagents.testing._storage_base import StorageTestBase

__all__ = ["ThreadTests"]

S = VariantState


class ThreadTests(StorageTestBase):
    """Conformance tests of storages shared by threads."""

    def test_concurrent_put_program_and_add_event(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        base_blobs = storage.count_blobs()
        shared = Program({"common.py": "SHARED = True\n", "lib/a.py": "A = 1\n"})
        n_threads, per_thread = 8, 10
        event_ids: list[int] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            for j in range(per_thread):
                storage.put_program(shared)
                # Every thread also writes the same "popular" programs at the same time.
                storage.put_program(shared.with_files({"gen.py": f"G = {j}\n"}))
                storage.put_program(shared.with_files({"mine.py": f"M = {i}, {j}\n"}))
                event_id = storage.add_event(run_id, "tick", data={"thread": i, "j": j})
                with lock:
                    event_ids.append(event_id)

        self._in_threads(n_threads, work)
        # common, lib/a, per_thread "gen" contents, n_threads * per_thread "mine" contents.
        expected = base_blobs + 2 + per_thread + n_threads * per_thread
        assert storage.count_blobs() == expected
        assert len(set(event_ids)) == n_threads * per_thread
        events = storage.list_events(run_id, kinds=["tick"])
        assert sorted(event_ids) == [e.id for e in events]
        assert storage.get_program(shared.with_files({"gen.py": "G = 3\n"}).id)["gen.py"] == (
            b"G = 3\n"
        )

    def test_concurrent_compare_and_set_has_one_winner(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        variants = [self._variant(storage, run_id, g) for g in range(5)]
        wins: list[tuple[int, int]] = []
        claims: list[tuple[int, int]] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            for v in variants:
                if storage.set_variant_state(v, S.EVALUATING, expected=S.RUNNING):
                    with lock:
                        wins.append((v, i))
                if storage.claim_variant(v, f"worker-{i}", expected_owner=None):
                    with lock:
                        claims.append((v, i))

        self._in_threads(6, work)
        assert sorted(v for v, _ in wins) == variants
        assert sorted(v for v, _ in claims) == variants
        for v, i in claims:
            assert storage.get_variant(v).owner == f"worker-{i}"

    def _race_for_engine(
        self, storage: BaseStorage, run_id: int, expected: str | None
    ) -> list[str]:
        """Six threads claim the run's engine at once, expecting ``expected``; the winners."""
        winners: list[str] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            if storage.claim_run_engine(run_id, f"engine-{i}", expected=expected):
                with lock:
                    winners.append(f"engine-{i}")

        self._in_threads(6, work)
        return winners

    def test_concurrent_engine_claims_have_one_winner(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        winners = self._race_for_engine(storage, run_id, None)
        assert len(winners) == 1
        assert storage.get_run(run_id).engine == winners[0]
        # A takeover race: every engine judged the same holder dead.
        assert storage.release_run_engine(run_id, winners[0])
        assert storage.claim_run_engine(run_id, "dead-engine", expected=None)
        winners = self._race_for_engine(storage, run_id, "dead-engine")
        assert len(winners) == 1
        assert storage.get_run(run_id).engine == winners[0]

    def test_concurrent_evaluations_of_one_variant_lose_nothing(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        v = self._variant(storage, run_id)
        stages = [f"stage{i}" for i in range(8)]

        def work(i: int) -> None:
            self._evaluate(storage, v, stages[i], score=i / 10, metrics={"i": i})
            storage.update_variant_metrics(v, {f"m{i}": i})

        self._in_threads(len(stages), work)
        variant = storage.get_variant(v)
        assert variant.scores == {s: i / 10 for i, s in enumerate(stages)}
        for i, stage in enumerate(stages):
            assert variant.metrics[stage] == {"i": i}
            assert variant.metrics[f"m{i}"] == i
        assert sorted(e.stage for e in storage.list_evaluations(v)) == sorted(stages)

    def test_concurrent_duplicate_generation_has_one_winner(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        outcomes: list[str] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            try:
                self._variant(storage, run_id, 7, owner=f"w{i}")
                result = "ok"
            except DuplicateError:
                result = "duplicate"
            with lock:
                outcomes.append(result)

        self._in_threads(6, work)
        assert sorted(outcomes) == ["duplicate"] * 5 + ["ok"]
        assert storage.count_variants(run_id) == 1

    def test_concurrent_bans_lose_nothing(self, storage: BaseStorage) -> None:
        run_id = self._run(storage)
        variants = [self._variant(storage, run_id, g) for g in range(6)]

        def work(i: int) -> None:
            storage.ban_variant(variants[i])
            storage.ban_variant(variants[0])  # every thread bans this one too
            storage.set_elapsed_seconds(run_id, float(i))

        self._in_threads(len(variants), work)
        run = storage.get_run(run_id)
        assert run.banned == frozenset(variants)
        assert run.elapsed_seconds in {float(i) for i in range(len(variants))}
