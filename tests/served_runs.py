"""A run to serve, for the service's and the dashboard's tests: a task's seed evaluated, and a
candidate variant with another task agent (not a pytest module)."""

from __future__ import annotations

from hyperagents.runs import Run, RunConfig, champion_of
from hyperagents.storages import BaseStorage, VariantState


def make_served_run(
    storage: BaseStorage, name: str, *, task: str, candidate_agent: str
) -> tuple[int, int, int]:
    """A run of ``task`` (its seed evaluated) and a candidate variant whose task agent is
    ``candidate_agent``: (run id, champion id, candidate id)."""
    Run.create(
        task=task,
        name=name,
        seed=1,
        storage=storage,
        config=RunConfig.parse({}, sandbox="process", subset_size=4),
    ).optimize(0)
    record = storage.get_run_by_name(name)
    champion = champion_of(storage.list_variants(record.id))
    assert champion is not None
    seed = storage.get_program(champion.program_id or "")
    program = seed.with_files({"task_agent.py": candidate_agent})
    candidate = storage.create_variant(
        run_id=record.id,
        generation=1,
        parent_id=champion.id,
        state=VariantState.COMPLETE,
        program_id=storage.put_program(program),
    )
    return record.id, champion.id, candidate
