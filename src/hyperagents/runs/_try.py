"""Trying a variant's task agent on one input, outside any run: in the run's sandbox, with no
labels, no scoring and no model (``llm.complete`` fails inside, as it does for a run without
one)."""

from __future__ import annotations

import json
import threading
from typing import Any

from hyperagents.evaluation import solve_in_sandbox
from hyperagents.exceptions import ConfigError, RunStateError
from hyperagents.program import Program
from hyperagents.runs._config import RunConfig
from hyperagents.runs._context import own_sandbox
from hyperagents.runs._create import record_task
from hyperagents.sandbox import Limits, Outcome
from hyperagents.storages import BaseStorage, RunRecord, VariantRecord
from hyperagents.tasks import Split, Task

__all__ = ["TRY_INPUT_LIMIT", "try_example", "try_variant"]

#: Largest input accepted by a try (bytes of JSON).
TRY_INPUT_LIMIT = 256 * 1024
#: Characters of the agent's output streams kept in a try's answer.
_STREAM_TAIL = 20_000


def try_example(record: RunRecord) -> dict[str, Any]:
    """What a try offers to start from: the first train instance's inputs (never a label)."""
    task = record_task(record)
    instances = task.instances(Split.TRAIN)
    return {
        "task": task.name or record.task,
        "description": task.description,
        "instance_timeout": task.instance_timeout,
        "example": instances[0].inputs if instances else None,
    }


def try_variant(
    store: BaseStorage,
    record: RunRecord,
    variant: VariantRecord,
    inputs: Any,
    *,
    slots: threading.Semaphore,
) -> dict[str, Any]:
    """Run the variant's task agent on ``inputs`` in the run's sandbox.

    Args:
        store: The storage holding the variant's program.
        record: The variant's run (its task and sandbox settings).
        variant: The variant.
        inputs: The task agent's input (JSON).
        slots: Tries that may run at once; one is taken for this one, without waiting.

    Raises:
        RunStateError: The variant has no program, or no slot is free.
        ConfigError: The input is too large.
    """
    if variant.program_id is None:
        raise RunStateError(f"variant {variant.id} has no program ({variant.state.name.lower()})")
    if len(json.dumps(inputs)) > TRY_INPUT_LIMIT:
        raise ConfigError(f"the input is larger than {TRY_INPUT_LIMIT // 1024} KiB")
    task = record_task(record)
    config = RunConfig.parse(dict(record.config))
    program = store.get_program(variant.program_id)
    if not slots.acquire(blocking=False):
        raise RunStateError("two tries are running already: wait for one to finish")
    try:
        return _solve(program, task, config, inputs)
    finally:
        slots.release()


def _solve(program: Program, task: Task, config: RunConfig, inputs: Any) -> dict[str, Any]:
    """Solve one input in a sandbox of its own, closed afterwards; the answer as JSON."""
    limits = Limits(wall_time=task.instance_timeout + 15.0, memory_mb=config.memory_mb)
    with own_sandbox(config, task) as sandbox:
        result, answered = solve_in_sandbox(
            program,
            [("try", inputs)],
            instance_timeout=task.instance_timeout,
            sandbox=sandbox,
            limits=limits,
        )
    message = answered.get("try")
    error = None
    if message is None:
        error = result.reason or "no output"
    elif message.get("error"):
        error = str(message["error"])
    return {
        "ok": result.outcome is Outcome.OK and error is None,
        "outcome": result.outcome.name.lower(),
        "output": None if message is None else message.get("output"),
        "error": error,
        "stdout": result.stdout[-_STREAM_TAIL:],
        "stderr": result.stderr[-_STREAM_TAIL:],
        "wall": result.wall,
        "sandbox": getattr(sandbox, "name", "?"),
    }
