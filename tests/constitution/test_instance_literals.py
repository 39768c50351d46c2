"""The ``instance_literals`` rule tells a held-out instance's own values (its id, its whole input,
a value no other instance and no train input has) from the task's vocabulary (values many
instances share, or that the train split shows), so that it catches hard-coded answers without
rejecting a seed that names the task's categories."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from hyperagents.constitution import Constitution, load_constitution
from hyperagents.constitution._literals import Needles, find_instance_literals
from hyperagents.program import Program
from hyperagents.tasks import BUILTIN_TASKS, Split, Task, load_task

RULE = {"rule": [{"name": "no-hardcoded-instances", "kind": "instance_literals"}]}

Pairs = Callable[[str], Iterable[tuple[str, Any]]]


def _instances(task: Task) -> Pairs:
    """``split → (id, inputs)``, as a run feeds its constitution."""
    return lambda split: [(i.id, i.inputs) for i in task.instances(Split(split))]


def _hard(constitution: Constitution, child: Program, task: Task) -> list[str]:
    verdict = constitution.check(child, task.seed_program(), instances=_instances(task), task=task)
    return [str(v) for v in verdict.hard]


def _agent(task: Task, extra: str) -> Program:
    seed = task.seed_program()
    return seed.with_files({"task_agent.py": seed.text("task_agent.py") + "\n" + extra})


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_every_builtin_seed_keeps_the_rule(name: str) -> None:
    task = load_task(name)
    constitution = load_constitution(
        {"rule": [{"kind": "instance_literals", "splits": ["val", "test"]}]}
    )
    verdict = constitution.check(task.seed_program(), None, instances=_instances(task), task=task)
    assert not verdict.violations, [str(v) for v in verdict.violations]


def test_the_review_seed_names_its_categories_freely() -> None:
    task = load_task("review")
    seed = task.seed_program().text("task_agent.py")
    assert '"refactor"' in seed and '"dependency"' in seed  # words of many val instances
    assert not _hard(load_constitution(RULE), task.seed_program(), task)


def test_a_quoted_val_id_is_still_caught() -> None:
    task = load_task("review")
    val = task.instances(Split.VAL)[13]
    child = _agent(task, f"ANSWERS = {{{val.id!r}: {val.target!r}}}\n")
    found = _hard(load_constitution(RULE), child, task)
    assert found and f"quotes held-out instance {val.id}" in found[0]


def test_a_quoted_whole_val_input_is_still_caught() -> None:
    task = load_task("support")
    val = task.instances(Split.VAL)[3]
    message = val.inputs["message"]
    child = _agent(task, f"ANSWERS = {{{message!r}: {val.target!r}}}\n")
    found = _hard(load_constitution(RULE), child, task)
    assert any(f"quotes held-out instance {val.id}" in f for f in found), found
    # Inside a longer literal too.
    child = _agent(task, f"NOTE = {('seen: ' + message)!r}\n")
    assert any(val.id in f for f in _hard(load_constitution(RULE), child, task))


def _pairs(split: str, rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(f"{split}-{k:04d}", row) for k, row in enumerate(rows)]


HELD_OUT = _pairs(
    "val",
    [
        {"kind": "subscription", "note": "refund please", "score": 0.4375},
        {"kind": "subscription", "note": "cancel my plan now", "score": 0.25},
        {"kind": "subscription", "note": "wrong invoice amount", "score": 0.5},
        {"kind": "hardware", "note": "the screen flickers", "score": 0.123},
    ],
)
TRAIN = _pairs("train", [{"kind": "hardware", "note": "the screen flickers", "score": 0.123}])


def _found(literal: str, train: Iterable[tuple[str, Any]] = TRAIN) -> list[str]:
    program = Program({"task_agent.py": f"X = {literal}\n"})
    found = find_instance_literals(program, ["*.py"], HELD_OUT, min_length=8, train=train)
    return [f.what for f in found]


def test_a_value_many_instances_share_is_vocabulary() -> None:
    assert _found('"subscription"') == []
    assert _found('"is it a subscription?"') == []


def test_a_value_the_train_split_shows_is_vocabulary() -> None:
    assert _found('"the screen flickers"') == []
    assert _found("0.123") == []
    # Without the train split, that value is distinctive of the one val instance it is in.
    assert _found('"the screen flickers"', train=()) == ["quotes held-out instance val-0003"]


def test_a_value_of_one_held_out_instance_only_is_a_quote() -> None:
    assert _found('"cancel my plan now"') == ["quotes held-out instance val-0001"]
    assert _found("0.4375") == ["quotes held-out instance val-0000 (0.4375)"]
    assert _found('"val-0002"') == ["quotes held-out instance val-0002"]
    assert _found('"refund"') == []  # shorter than min_length: too common to tell


def test_whole_string_inputs_are_quotes_unless_train_has_them() -> None:
    held_out = [("val-0", "the same question"), ("val-1", "the same question")]
    needles = Needles.build(held_out, [("train-0", "another question")], min_length=8)
    assert needles.quoted("the same question", 8) == "val-0"  # shared, but a whole input
    needles = Needles.build(held_out, [("train-0", "the same question")], min_length=8)
    assert needles.quoted("the same question", 8) is None


def test_the_policy_asks_for_the_train_split() -> None:
    asked: list[str] = []

    def instances(split: str) -> list[tuple[str, Any]]:
        asked.append(split)
        return TRAIN if split == "train" else HELD_OUT if split == "val" else []

    child = Program({"task_agent.py": 'X = "the screen flickers"\n'})
    verdict = load_constitution(RULE).check(child, None, instances=instances)
    assert not verdict.violations and "train" in asked

    def no_train(split: str) -> list[tuple[str, Any]]:
        if split == "train":
            raise KeyError(split)
        return HELD_OUT if split == "val" else []

    # A callable that does not know the train split makes the rule stricter, not looser.
    verdict = load_constitution(RULE).check(child, None, instances=no_train)
    assert [v.message for v in verdict.hard] == ["quotes held-out instance val-0003"]


def test_values_kept_in_a_json_file_are_checked_too() -> None:
    state = b'{\n  "step": 0.15,\n  "memo": {"hint": ["cancel my plan now"]},\n  "on": true\n}\n'
    program = Program({"task_agent.py": b"X = 1\n", "meta_state.json": state})
    found = find_instance_literals(program, ["*.py"], HELD_OUT, min_length=8, train=TRAIN)
    assert [(f.path, f.line, f.what) for f in found] == [
        ("meta_state.json", 3, "quotes held-out instance val-0001")
    ]
    broken = Program({"notes.json": b"{not json", "task_agent.py": b"X = 1\n"})
    assert find_instance_literals(broken, ["*.py"], HELD_OUT, min_length=8, train=TRAIN) == []
