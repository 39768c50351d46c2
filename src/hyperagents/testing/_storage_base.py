"""The helpers every part of the storage conformance suite uses."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from hyperagents.storages import BaseStorage, RunSpec
from hyperagents.testing._storage_samples import make_program

__all__ = ["StorageTestBase"]


class StorageTestBase:
    """Helpers of the conformance suite; the parts subclass it, tests get a ``storage``
    fixture from the test module."""

    @staticmethod
    def _run(storage: BaseStorage, name: str = "run", **kwargs: Any) -> int:
        program = make_program()
        storage.put_program(program)
        args: dict[str, Any] = {
            "name": name,
            "task": "review",
            "mode": "hyperagent",
            "seed": 7,
            "config": {"generations": 10},
            "seed_program_id": program.id,
        }
        args.update(kwargs)
        return storage.create_run(RunSpec(**args))

    @staticmethod
    def _variant(storage: BaseStorage, run_id: int, generation: int = 0, **kwargs: Any) -> int:
        args: dict[str, Any] = {"run_id": run_id, "generation": generation, "parent_id": None}
        args.update(kwargs)
        return storage.create_variant(**args)

    @staticmethod
    def _evaluate(
        storage: BaseStorage, variant_id: int, stage: str = "train", **kwargs: Any
    ) -> int:
        args: dict[str, Any] = {
            "variant_id": variant_id,
            "stage": stage,
            "split": "train",
            "score": 0.5,
            "n": 2,
            "results": [{"id": "a", "score": 1.0}, {"id": "b", "score": 0.0}],
            "metrics": {"wall": 0.25},
        }
        args.update(kwargs)
        return storage.add_evaluation(**args)

    @staticmethod
    def _in_threads(n: int, target: Callable[[int], None]) -> None:
        errors: list[BaseException] = []
        barrier = threading.Barrier(n)

        def wrapped(i: int) -> None:
            try:
                barrier.wait(timeout=30)
                target(i)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a thread hung"
        assert errors == [], errors
