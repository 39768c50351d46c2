"""The arena protocol of tasks: a task opts in with ``arena()`` and ``oracle()``;
``arena_spec()`` fills the defaults and refuses what does not follow the protocol."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError, TaskError
from hyperagents.program import Program
from hyperagents.tasks import (
    GENERIC_MUTATORS,
    ArenaSpec,
    Instance,
    Score,
    Split,
    Task,
    Verdict,
    load_task,
)


class Hex(Task):
    """Is the string a hex number? (a small arena-capable task, as the guide writes one)"""

    name = "hex"
    declared: ArenaSpec | None = ArenaSpec(input_key="text")
    rows = (("ff", True), ("0a1", True), ("xyz", False), ("", False), ("12", True))

    def instances(self, split: Split) -> list[Instance]:
        return [
            Instance(f"{split}-{i}", {"text": t}, {"valid": v, "reason": ""})
            for i, (t, v) in enumerate(self.rows)
        ]

    def score(self, instance: Instance, output: Any) -> Score:
        return Score(float(output is instance.target["valid"]))

    def seed_program(self) -> Program:
        return Program({"task_agent.py": "def solve(inputs):\n    return True\n"})

    def arena(self) -> ArenaSpec | None:
        return self.declared

    def oracle(self, value: str) -> Verdict:
        ok = bool(value) and all(ch in "0123456789abcdefABCDEF" for ch in value)
        return Verdict(ok, "" if ok else "not hex digits")


class NoOracle(Hex):
    name = "no-oracle"
    oracle = Task.oracle  # type: ignore[assignment]


def test_a_task_opts_in_and_gets_its_defaults() -> None:
    spec = Hex().arena_spec()
    assert spec.input_key == "text"
    assert spec.seeds == ("ff", "0a1", "12")  # the train split's valid inputs, in order
    assert spec.generic == GENERIC_MUTATORS and spec.mutators == ""
    assert spec.alphabet.startswith("012af") and "\x00" in spec.alphabet  # own chars first
    given = Hex()
    given.declared = ArenaSpec(input_key="text", seeds=("beef",), alphabet="xy")
    assert given.arena_spec().seeds == ("beef",) and given.arena_spec().alphabet == "xy"


def test_tasks_without_the_protocol_are_refused_with_a_clear_error() -> None:
    for task in (load_task("arith"), load_task("shipping"), NoOracle()):
        with pytest.raises(ConfigError, match=r"cannot play an arena.*arena\(\).*oracle\(\)"):
            task.arena_spec()
    with pytest.raises(TaskError, match="no trusted oracle"):
        load_task("arith").oracle("1+1")


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ("text", "must return an ArenaSpec"),
        (ArenaSpec(input_key=""), "input_key must be a non-empty string"),
        (ArenaSpec(input_key="text", generic=("char", "flip")), "unknown generic mutators"),
        (ArenaSpec(input_key="text", generic=()), "no mutators"),
        (ArenaSpec(input_key="text", seeds=("",)), "seeds must be non-empty strings"),
        (ArenaSpec(input_key="other"), "train inputs are {'other': str}"),
        (ArenaSpec(input_key="text", rule_features="def arena_feature(n, a, t): ..."), "together"),
    ],
)
def test_a_declaration_that_breaks_the_protocol_is_refused(declared: Any, message: str) -> None:
    task = Hex()
    task.declared = declared
    with pytest.raises(ConfigError, match=re.escape(message)):
        task.arena_spec()


def test_a_task_with_no_valid_input_has_no_seeds() -> None:
    task = Hex()
    task.rows = (("xyz", False),)
    with pytest.raises(ConfigError, match="no seed inputs"):
        task.arena_spec()
    task.declared = replace(ArenaSpec(input_key="text"), seeds=("ab",))
    assert task.arena_spec().seeds == ("ab",)


def test_the_builtin_validation_tasks_opt_in() -> None:
    email = load_task("email_validation").arena_spec()
    assert email.input_key == "address" and email.generic == ("char",)
    assert "MUTATORS" in email.mutators and len(email.seeds) == 8
    assert load_task("ip_validation").arena_spec().input_key == "ip"
