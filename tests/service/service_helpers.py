"""Helpers of the service's tests: a real run of a task whose agent misbehaves on request,
with a second variant to try as a candidate (not a pytest module)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from servicetask import HOSTILE_AGENT

from hyperagents.runs import Run, RunConfig, champion_of
from hyperagents.storages import RDBStorage, VariantState

TASK = f"{Path(__file__).resolve().parent / 'servicetask.py'}:ServiceToyTask"
#: The candidate's task agent: the champion's, with a lower threshold ({"x": 0.5} -> "hi").
CANDIDATE_AGENT = HOSTILE_AGENT.replace('PARAMS = {"t": 0.63}', 'PARAMS = {"t": 0.2}')


@dataclass
class Site:
    url: str
    storage: RDBStorage
    run: str
    run_id: int
    champion: int
    candidate: int
    tmp: Path


def make_service_run(storage: RDBStorage, name: str) -> tuple[int, int, int]:
    """A run of the service task (its seed evaluated) and a candidate variant: (run id,
    champion id, candidate id)."""
    run = Run.create(
        task=TASK,
        name=name,
        seed=1,
        storage=storage,
        config=RunConfig.parse({}, sandbox="process", subset_size=4),
    )
    run.optimize(0)
    record = storage.get_run_by_name(name)
    champion = champion_of(storage.list_variants(record.id))
    assert champion is not None
    seed = storage.get_program(champion.program_id or "")
    program = seed.with_files({"task_agent.py": CANDIDATE_AGENT})
    candidate = storage.create_variant(
        run_id=record.id,
        generation=1,
        parent_id=champion.id,
        state=VariantState.COMPLETE,
        program_id=storage.put_program(program),
    )
    return record.id, champion.id, candidate
