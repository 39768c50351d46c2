"""The arena's suites: cases labelled by the task's trusted oracle, the growing suite and the
held-out adversarial suite.

A *case* is ``{"input", "valid", "reason", "round", "by"}``: an input, the oracle's label and
reason, the round it was accepted in and who proposed it (``"task"`` for the task's own train
instances). Every label comes from :func:`label_inputs`, which calls the task's oracle here, in
the engine: what a test agent says about its inputs is never read.

The growing suite starts as the task's train split and takes, each round, the proposed inputs
some code agent got wrong (hard cases), deduplicated, up to a cap (past it the oldest proposed
cases go first; the task's own cases stay). The held-out suite is made by the trusted mutators
(the seed test agent's, run here as trusted code) with a seed of its own, labelled by the
oracle, without any input of the task's suite; it is only ever used to score champions here.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from hyperagents.exceptions import ConfigError
from hyperagents.runs import derive_seed
from hyperagents.tasks import Instance, Split, Task

__all__ = [
    "INPUT_KEY",
    "Case",
    "grow_suite",
    "heldout_cases",
    "heldout_suite",
    "instances_of",
    "label_inputs",
    "oracle_of",
    "task_cases",
]

#: The key of the one input the arena's tasks take (``{"address": str}``).
INPUT_KEY = "address"

Case = dict[str, Any]


def oracle_of(task: Task) -> Any:
    """The task's trusted oracle, ``label(input) -> (valid, reason)``.

    Raises:
        ConfigError: The task has no oracle for new inputs (``label``).
    """
    if task.name == "email_validation":
        from hyperagents.tasks.email_validation import oracle_label

        return oracle_label
    label = getattr(task, "label", None)
    if not callable(label):
        raise ConfigError(f"task {task.name!r} has no trusted oracle (label) for new inputs")
    return lambda value: (bool(label(value)), "")


def label_inputs(
    task: Task, inputs: Iterable[str], *, round_no: int, by: str, oracle: Any = None
) -> list[Case]:
    """Cases of ``inputs``, each labelled by the task's oracle (in this process).

    Raises:
        ConfigError: The task has no oracle.
        TaskError: The oracle's package is not installed.
    """
    label = oracle if oracle is not None else oracle_of(task)
    cases = []
    for value in inputs:
        valid, reason = label(value)
        cases.append(
            {"input": value, "valid": bool(valid), "reason": str(reason)[:300]}
            | {"round": round_no, "by": by}
        )
    return cases


def task_cases(task: Task) -> list[Case]:
    """The task's own train instances as cases (their stored, oracle-made labels)."""
    cases = []
    for inst in task.instances(Split.TRAIN):
        target = inst.target
        cases.append(
            {"input": inst.inputs[INPUT_KEY], "valid": bool(target["valid"])}
            | {"reason": str(target.get("reason", "")), "round": 0, "by": "task"}
        )
    return cases


def instances_of(cases: Sequence[Case], prefix: str = "c") -> list[Instance]:
    """Task instances of ``cases`` (id ``{prefix}-{index}``), scored by the task's ``score``."""
    return [
        Instance(
            f"{prefix}-{i}",
            {INPUT_KEY: case["input"]},
            {"valid": case["valid"], "reason": case["reason"]},
        )
        for i, case in enumerate(cases)
    ]


def grow_suite(suite: Sequence[Case], hard: Sequence[Case], *, cap: int) -> list[Case]:
    """``suite`` with the ``hard`` cases not in it yet, at most ``cap`` cases: past it the
    oldest proposed cases go first (the task's own stay)."""
    known = {case["input"] for case in suite}
    grown = list(suite)
    for case in hard:
        if case["input"] not in known:
            known.add(case["input"])
            grown.append(case)
    excess = len(grown) - cap
    if excess > 0:
        proposed = [i for i, case in enumerate(grown) if case["by"] != "task"]
        dropped = set(proposed[:excess])
        grown = [case for i, case in enumerate(grown) if i not in dropped]
    return grown


def heldout_suite(task: Task, *, seed: int, size: int) -> list[Case]:
    """The held-out adversarial suite: ``size`` distinct mutations (by the trusted mutators,
    seeded with ``seed``) of the seed test agent's bases, none in the task's suite, labelled by
    the oracle, about as many valid as invalid where the mutations allow.

    Raises:
        ConfigError: The task has no oracle.
        TaskError: The oracle's package is not installed.
    """
    from hyperagents.arena.seeds import test_agent

    oracle = oracle_of(task)
    rng = random.Random(seed)
    known = {inst.inputs[INPUT_KEY] for split in Split for inst in task.instances(split)}
    half = {True: (size + 1) // 2, False: size // 2}
    chosen: list[Case] = []
    for _ in range(size * 60):
        if len(chosen) >= size:
            break
        base = rng.choice(test_agent.BASES)
        value = test_agent.mutate(base, rng, {**test_agent.PARAMS, "max_edits": 3})
        if value in known:
            continue
        known.add(value)
        valid, reason = oracle(value)
        if half[bool(valid)] <= 0:
            continue
        half[bool(valid)] -= 1
        chosen.append({"input": value, "valid": bool(valid), "reason": str(reason)[:300]})
    return [case | {"round": -1, "by": "heldout"} for case in chosen]


def heldout_cases(task: Task, *, seed: int, size: int) -> list[Case]:
    """The held-out suite of an arena seeded ``seed`` (its own seed derived from it).

    Raises:
        ConfigError: The task has no oracle.
        TaskError: The oracle's package is not installed.
    """
    return heldout_suite(task, seed=derive_seed(seed, "arena", "heldout"), size=size)
