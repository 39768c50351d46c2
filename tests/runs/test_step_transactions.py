"""Each step of the engine is one transaction: a failure while recording a step leaves none of
it, and a resumed run redoes that step alone, ending where an uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import StorageError
from hyperagents.runs import Run, RunConfig
from hyperagents.storages import BaseStorage, InMemoryStorage, RDBStorage, RunStatus, VariantState

from toytask import ToyTask

GENERATIONS = 3


def _create(storage: BaseStorage) -> Run:
    return Run.create(
        task=ToyTask(),
        name="steps",
        seed=5,
        storage=storage,
        config=RunConfig.parse({"subset_size": 10}),
    )


def _fingerprint(run: Run) -> list[tuple[Any, ...]]:
    return [
        (v.generation, v.parent_id, v.state, v.program_id, sorted(v.scores.items()), v.reason)
        for v in run.variants()
    ]


def _events(run: Run) -> list[tuple[int | None, str]]:
    return [(e.variant_id, e.kind) for e in run.storage.list_events(run.id)]


@pytest.fixture
def reference() -> list[tuple[Any, ...]]:
    run = _create(InMemoryStorage())
    assert run.optimize(generations=GENERATIONS).status is RunStatus.COMPLETE
    return _fingerprint(run)


def _failing(base: type[BaseStorage], method: str, when: Any) -> type[BaseStorage]:
    """``base`` whose ``method`` raises a StorageError (after doing its work) the first time
    ``when(kwargs)`` is true: a step that breaks down as it is recorded."""

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = getattr(base, method)(self, *args, **kwargs)
        if not self.failed and when(kwargs):
            self.failed = True
            raise StorageError("the database went away mid-step")
        return result

    return type(f"Failing{base.__name__}", (base,), {method: broken, "failed": False})


def _storage(kind: str, tmp_path: Path, method: str, when: Any) -> BaseStorage:
    if kind == "memory":
        return _failing(InMemoryStorage, method, when)()
    cls = _failing(RDBStorage, method, when)
    return cls(f"sqlite:///{tmp_path / 'steps.db'}")  # type: ignore[call-arg]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_stage_and_the_state_it_leads_to_commit_together(
    kind: str, tmp_path: Path, reference: list[tuple[Any, ...]]
) -> None:
    finishing = lambda kw: kw.get("expected") is VariantState.EVALUATING  # noqa: E731
    storage = _storage(kind, tmp_path, "set_variant_state", finishing)
    run = _create(storage)
    with pytest.raises(StorageError, match="went away mid-step"):
        run.optimize(generations=GENERATIONS)
    # The seed's val evaluation and its completion were one transaction: neither is there.
    seed = run.variants()[0]
    assert seed.state is VariantState.EVALUATING
    assert set(seed.scores) == {"train_subset", "train"}
    assert [e.stage for e in storage.list_evaluations(seed.id)] == ["train_subset", "train"]
    assert (seed.id, "variant.completed") not in _events(run)
    again = Run.load(run.name, storage=storage, task=ToyTask())
    assert again.optimize().status is RunStatus.COMPLETE  # on to the stored target
    assert _fingerprint(again) == reference
    assert _events(again).count((seed.id, "variant.evaluated")) == 3


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_what_the_improver_made_is_recorded_in_one_transaction(
    kind: str, tmp_path: Path, reference: list[tuple[Any, ...]]
) -> None:
    storage = _storage(kind, tmp_path, "set_variant_program", lambda kw: True)
    run = _create(storage)
    with pytest.raises(StorageError, match="went away mid-step"):
        run.optimize(generations=GENERATIONS)
    child = run.variants()[1]
    # Nothing of the improvement stayed: no program (stored, or on the variant), no metrics.
    assert (child.state, child.program_id, child.metrics) == (VariantState.RUNNING, None, {})
    assert storage.count_blobs() == len(set(run.program(run.variants()[0]).blobs.values()))
    assert (child.id, "variant.improved") not in _events(run)
    again = Run.load(run.name, storage=storage, task=ToyTask())
    assert again.optimize().status is RunStatus.COMPLETE  # on to the stored target
    assert _fingerprint(again) == reference
    assert _events(again).count((child.id, "variant.improved")) == 1
