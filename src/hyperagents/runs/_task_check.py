"""Trying a task's seed program without a run (``hyperagents test-task``): validated and its task
agent evaluated on val in the sandbox a run would use, exactly as a run's seed is."""

from __future__ import annotations

from dataclasses import dataclass

from hyperagents.evaluation import StageResult, ValidationResult, validate_and_evaluate
from hyperagents.runs._config import RunConfig
from hyperagents.runs._context import own_sandbox
from hyperagents.runs._create import seed_program
from hyperagents.sandbox import Limits
from hyperagents.tasks import Split, Task
from hyperagents.weights import entry_points_of

__all__ = ["SeedTrial", "evaluate_seed"]


@dataclass(frozen=True)
class SeedTrial:
    """What the seed program did on val.

    Attributes:
        validation: Whether it compiles, imports and has its entry points.
        result: Its val result (None: it is invalid).
        sandbox: The sandbox it ran in.
    """

    validation: ValidationResult
    result: StageResult | None
    sandbox: str


def evaluate_seed(task: Task, config: RunConfig | None = None) -> SeedTrial:
    """Validate ``task``'s seed program (with ``config``'s meta agent) and evaluate it on val,
    in a sandbox of its own that is closed afterwards.

    Raises:
        ConfigError: The sandbox cannot work here.
        SandboxError: The sandbox itself failed.
        TaskError: The task broke its protocol (its aggregation).
    """
    config = config or RunConfig.parse({})
    program = seed_program(task, config, None)
    instances = list(task.instances(Split.VAL))
    wall = task.instance_timeout * max(1, len(instances)) + config.eval_overhead
    limits = Limits(
        wall_time=wall, memory_mb=config.memory_mb, validate_time=config.validate_timeout
    )
    with own_sandbox(config, task) as sandbox:
        validation, result = validate_and_evaluate(
            program,
            entry_points=entry_points_of(task.entry_points, program),
            task=task,
            instances=instances,
            stage="val",
            split=Split.VAL.value,
            sandbox=sandbox,
            limits=limits,
        )
    return SeedTrial(validation, result, str(getattr(sandbox, "name", type(sandbox).__name__)))
