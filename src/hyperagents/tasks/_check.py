"""The protocol checks of a task, without a run (``hyperagents test-task``, and the tests that
``init-task`` scaffolds check the same): splits, ids, targets, the seed program, its search
space, and a ``score()`` that takes any output.

Nothing here runs agent code: the seed agent is run in the sandbox by
:func:`hyperagents.runs.evaluate_seed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hyperagents.exceptions import TaskError
from hyperagents.tasks._base import Split, Task
from hyperagents.tasks._param_space import program_param_space_errors
from hyperagents.tasks._seeds import offline_meta_agent

__all__ = ["ODD_OUTPUTS", "TaskCheck", "check_task"]

#: Outputs an agent may return (anything JSON holds) that ``score()`` must take without raising.
ODD_OUTPUTS: tuple[Any, ...] = (
    None,
    True,
    -1,
    1e308,
    "",
    "x" * 10_000,
    [],
    [1, [2]],
    {},
    {"a": None},
)


@dataclass(frozen=True)
class TaskCheck:
    """One check of a task.

    Attributes:
        name: What is checked.
        ok: It passed.
        detail: What was found (why it failed, or what it saw).
    """

    name: str
    ok: bool
    detail: str


def check_task(task: Task) -> list[TaskCheck]:
    """Every protocol check of ``task``, in order (a check that cannot run says why)."""
    return [
        _splits(task),
        _unique_ids(task),
        _targets_hidden(task),
        _seed_files(task),
        _search_space(task),
        _any_output(task),
        _malformed_minimum(task),
    ]


def _splits(task: Task) -> TaskCheck:
    sizes = {split.value: len(task.instances(split)) for split in Split}
    empty = [name for name, n in sizes.items() if n == 0]
    shown = ", ".join(f"{name} {n}" for name, n in sizes.items())
    if empty:
        return TaskCheck("splits", False, f"{shown}: {', '.join(empty)} has no instances")
    return TaskCheck("splits", True, shown)


def _unique_ids(task: Task) -> TaskCheck:
    seen: set[str] = set()
    for split in Split:
        for instance in task.instances(split):
            if instance.id in seen:
                return TaskCheck("unique ids", False, f"{instance.id!r} appears twice")
            seen.add(instance.id)
    return TaskCheck("unique ids", True, f"{len(seen)} ids across the splits")


def _targets_hidden(task: Task) -> TaskCheck:
    """No train instance's (string) target is a value of its inputs: agents see inputs."""
    for instance in task.instances(Split.TRAIN):
        target, inputs = instance.target, instance.inputs
        values = inputs.values() if isinstance(inputs, dict) else [inputs]
        if isinstance(target, str) and target and any(v == target for v in values):
            return TaskCheck(
                "targets hidden", False, f"{instance.id}: its target {target!r} is in its inputs"
            )
    return TaskCheck("targets hidden", True, "no train target is one of its inputs")


def _seed_files(task: Task) -> TaskCheck:
    program = task.seed_program()
    missing = [path for path in task.entry_points if path not in program]
    if missing:
        return TaskCheck("seed program", False, f"no {', '.join(missing)}")
    return TaskCheck("seed program", True, f"{len(list(program))} files")


def _search_space(task: Task) -> TaskCheck:
    """The seed's ``PARAM_SPACE``, as the built-in offline meta agent reads it."""
    program = task.seed_program()
    offline = offline_meta_agent().get("meta_agent.py")
    if "meta_agent.py" not in program or program.text("meta_agent.py") != offline:
        return TaskCheck("search space", True, "not checked: a meta agent of the task's own")
    errors = program_param_space_errors(program)
    if errors:
        return TaskCheck("search space", False, "; ".join(errors))
    return TaskCheck("search space", True, "PARAMS and PARAM_SPACE fit the offline meta agent")


def _any_output(task: Task) -> TaskCheck:
    instances = task.instances(Split.TRAIN) or task.instances(Split.VAL)
    if not instances:
        return TaskCheck("score takes any output", False, "no instance to score")
    for output in ODD_OUTPUTS:
        try:
            task.checked_score(instances[0], output)
        except TaskError as exc:
            shown = repr(output)[:40]
            return TaskCheck("score takes any output", False, f"on {shown}: {exc}")
    return TaskCheck("score takes any output", True, f"{len(ODD_OUTPUTS)} odd outputs scored")


def _malformed_minimum(task: Task) -> TaskCheck:
    instances = task.instances(Split.TRAIN) or task.instances(Split.VAL)
    if not instances:
        return TaskCheck("malformed output scores the minimum", False, "no instance to score")
    low = task.score_range[0]
    try:
        value = task.checked_score(instances[0], None).value
    except TaskError as exc:
        return TaskCheck("malformed output scores the minimum", False, str(exc))
    if value != low:
        return TaskCheck("malformed output scores the minimum", False, f"None scored {value}")
    return TaskCheck("malformed output scores the minimum", True, f"None scored {low}")
