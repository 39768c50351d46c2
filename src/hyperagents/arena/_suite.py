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
from dataclasses import dataclass
from typing import Any

from hyperagents.arena._testers import TrustedMutators
from hyperagents.exceptions import TaskError
from hyperagents.runs import derive_seed
from hyperagents.tasks import ArenaSpec, Instance, Split, Task, Verdict

__all__ = [
    "Case",
    "Oracle",
    "grow_suite",
    "heldout_cases",
    "heldout_suite",
    "instances_of",
    "label_inputs",
    "oracle_of",
    "task_cases",
]

Case = dict[str, Any]


@dataclass(frozen=True)
class Oracle:
    """The trusted side of a task's arena: its checked declaration, its oracle (calling it
    labels an input: ``(valid, reason)``) and the seed test agent's edits, run here.

    Attributes:
        task: The task.
        spec: Its checked arena declaration (:meth:`~hyperagents.tasks.Task.arena_spec`).
        mutators: Its seed test agent's edits (trusted).
    """

    task: Task
    spec: ArenaSpec
    mutators: TrustedMutators

    @property
    def key(self) -> str:
        """The key of the task's one string input."""
        return self.spec.input_key

    def __call__(self, value: str) -> tuple[bool, str]:
        """The task oracle's label of ``value`` and why (``""`` when valid).

        Raises:
            TaskError: The oracle cannot run (a missing package) or returned no Verdict.
        """
        verdict = self.task.oracle(value)
        if not isinstance(verdict, Verdict):
            raise TaskError(f"task {self.task.name!r}: oracle() returned {verdict!r}")
        return bool(verdict.valid), str(verdict.reason)


def oracle_of(task: Task) -> Oracle:
    """The task's trusted oracle and arena declaration.

    Raises:
        ConfigError: The task cannot play an arena (no :meth:`~hyperagents.tasks.Task.arena`
            with an :meth:`~hyperagents.tasks.Task.oracle`, or one that does not follow the
            protocol, or mutators that fail to load).
    """
    spec = task.arena_spec()
    return Oracle(task, spec, TrustedMutators.of(spec, task=task.name))


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


def task_cases(task: Task, key: str) -> list[Case]:
    """The task's own train instances (their input at ``key``) as cases, with their stored,
    oracle-made labels."""
    cases = []
    for inst in task.instances(Split.TRAIN):
        target = inst.target
        cases.append(
            {"input": inst.inputs[key], "valid": bool(target["valid"])}
            | {"reason": str(target.get("reason", "")), "round": 0, "by": "task"}
        )
    return cases


def instances_of(cases: Sequence[Case], prefix: str = "c", *, key: str) -> list[Instance]:
    """Task instances of ``cases`` (id ``{prefix}-{index}``, the input at ``key``), scored by
    the task's ``score``."""
    return [
        Instance(
            f"{prefix}-{i}",
            {key: case["input"]},
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
    """The held-out adversarial suite: ``size`` distinct mutations (by the seed test agent's
    edits run here as trusted code, seeded with ``seed``) of the task's seed inputs, none in
    the task's suite, labelled by the oracle, about as many valid as invalid where the
    mutations allow.

    Raises:
        ConfigError: The task has no oracle.
        TaskError: The oracle's package is not installed.
    """
    oracle = oracle_of(task)
    rng = random.Random(seed)
    known = {inst.inputs[oracle.key] for split in Split for inst in task.instances(split)}
    half = {True: (size + 1) // 2, False: size // 2}
    chosen: list[Case] = []
    for _ in range(size * 60):
        if len(chosen) >= size:
            break
        base = rng.choice(oracle.spec.seeds)
        value = oracle.mutators.mutate(base, rng, max_edits=3)
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
