"""The protocol checks of a task without a run (``check_task``): each names what it found."""

from __future__ import annotations

from typing import Any

import pytest

from hyperagents.program import Program
from hyperagents.tasks import Instance, Score, Split, TaskCheck, check_task, load_task

from toytask import ToyTask


def by_name(checks: list[TaskCheck]) -> dict[str, TaskCheck]:
    return {check.name: check for check in checks}


@pytest.mark.parametrize("name", ["review", "packing", "support"])
def test_the_builtin_tasks_pass(name: str) -> None:
    checks = check_task(load_task(name))
    assert [c.name for c in checks] == [
        "splits",
        "unique ids",
        "targets hidden",
        "seed program",
        "search space",
        "score takes any output",
        "malformed output scores the minimum",
    ]
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


class Broken(ToyTask):
    """A toy task with one protocol break at a time."""

    def __init__(self, fault: str) -> None:
        super().__init__(sizes=(6, 3, 3))
        self.fault = fault

    def instances(self, split: Split) -> list[Instance]:
        found = super().instances(split)
        if self.fault == "empty" and Split(split) is Split.TEST:
            return []
        if self.fault == "duplicate" and Split(split) is Split.VAL:
            return [Instance("train-0", found[0].inputs, found[0].target), *found[1:]]
        if self.fault == "leak":
            return [Instance(i.id, {**i.inputs, "answer": i.target}, i.target) for i in found]
        return found

    def score(self, instance: Instance, output: Any) -> Score:
        if self.fault == "raises" and output is not None:  # None alone is handled
            return Score(1.0 if output.strip() == instance.target else 0.0)
        if self.fault == "partial" and output is None:
            return Score(0.5, "half for trying")
        return super().score(instance, output)

    def seed_program(self) -> Program:
        program = super().seed_program()
        if self.fault == "no-agent":
            return program.with_files({"task_agent.py": None})
        return program


@pytest.mark.parametrize(
    ("fault", "check", "detail"),
    [
        ("empty", "splits", "train 6, val 3, test 0: test has no instances"),
        ("duplicate", "unique ids", "'train-0' appears twice"),
        ("leak", "targets hidden", "train-0: its target"),
        ("no-agent", "seed program", "no task_agent.py"),
        ("raises", "score takes any output", "on True: task 'toy': score() raised on train-0"),
        ("partial", "malformed output scores the minimum", "None scored 0.5"),
    ],
)
def test_each_break_fails_its_check_and_says_what_it_found(
    fault: str, check: str, detail: str
) -> None:
    checks = by_name(check_task(Broken(fault)))
    assert not checks[check].ok
    assert detail in checks[check].detail
    assert [c.name for c in checks.values() if not c.ok] == [check]


def test_the_search_space_is_checked_when_the_seed_uses_the_offline_meta_agent() -> None:
    task = load_task("review")
    good = by_name(check_task(task))["search space"]
    assert good.ok and "fit the offline meta agent" in good.detail
    own = by_name(check_task(ToyTask()))["search space"]
    assert own.ok and "not checked" in own.detail

    class Typo(type(task)):  # type: ignore[misc]
        def seed_program(self) -> Program:
            program = super().seed_program()
            source = program.text("task_agent.py").replace('"high"', '"hi"', 1)
            return program.with_files({"task_agent.py": source})

    typo = by_name(check_task(Typo()))["search space"]
    assert not typo.ok and "unknown key 'hi' (did you mean 'high'?)" in typo.detail
