"""Robustness side by side: a level-3 (hyperagent) champion on the arena's held-out suite, at the
arena's evaluation budget.

The level-3 run is an ordinary hyperagent run of the same task and seed (its seed program, the
offline meta agent), given as many generations as the arena spent code agent evaluations
(each generation evaluates one child; the arena's count includes its screenings and re-scorings,
so the level-3 run never has fewer evaluations than the arena). Its champion (best val score)
is then scored on the same held-out suite as the arena's champion, here in the engine.
"""

from __future__ import annotations

from typing import Any

from hyperagents.arena._agents import arena_sandbox, heldout_score
from hyperagents.arena._config import ArenaConfig
from hyperagents.arena._suite import heldout_cases
from hyperagents.runs import Run
from hyperagents.sandbox import Limits, Sandbox
from hyperagents.storages import BaseStorage, get_storage
from hyperagents.tasks import load_task

__all__ = ["compare_level3"]


def compare_level3(
    config: ArenaConfig,
    *,
    evaluations: int,
    storage: str | BaseStorage | None = None,
    name: str | None = None,
    sandbox: Sandbox | None = None,
) -> dict[str, Any]:
    """Run level 3 on the arena's task for ``evaluations`` generations and score its champion
    on the arena's held-out suite.

    Returns:
        ``{"run", "generations", "champion_val", "heldout"}``.

    Raises:
        ConfigError: Bad settings. TaskError: The task or its oracle cannot be loaded.
        SandboxError: The sandbox kept failing.
    """
    task = load_task(config.task, {})
    box = sandbox or arena_sandbox(config.sandbox, task, memory_mb=config.memory_mb)
    store = get_storage(storage)
    run = Run.create(
        task=config.task,
        name=name or f"level3-{config.task}-s{config.seed}-e{evaluations}",
        mode="hyperagent",
        seed=config.seed,
        storage=store,
        config={"sandbox": config.sandbox},
        sandbox=box,
        arm="level3",
    )
    run.optimize(generations=max(1, evaluations))
    champion = run.champion()
    program = run.program(champion) if champion is not None else task.seed_program()
    cases = heldout_cases(task, seed=config.seed, size=config.heldout_size)
    limits = Limits(wall_time=config.eval_timeout, memory_mb=config.memory_mb)
    return {
        "run": run.name,
        "generations": max(1, evaluations),
        "champion_val": None if champion is None else champion.scores.get("val"),
        "heldout": heldout_score(program, cases, task=task, sandbox=box, limits=limits),
    }
