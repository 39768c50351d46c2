"""Behaviour of the seeded task bases: one constructor for every built-in task."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, ClassVar

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.tasks import GeneratedTask, Instance, Score, Split, create_task, task_keywords


class Counting(GeneratedTask):
    name: ClassVar[str] = "counting"
    description: ClassVar[str] = "Count up."

    def generate(self, split_index: int, n: int) -> Iterable[tuple[Any, Any]]:
        return (({"i": i, "stream": split_index + self.seed}, i) for i in range(n))

    def score(self, instance: Instance, output: Any) -> Score:
        return Score(float(output == instance.target))

    def seed_program(self) -> Program:
        return Program({"task_agent.py": b"def solve(inputs):\n    return 0\n"})


class Defaulted(Counting):
    default_sizes: ClassVar[tuple[int, int, int] | None] = (5, 3, 2)
    max_size: ClassVar[int | None] = 9


class OwnConstructor(Defaulted):
    def __init__(self, *, scale: float = 1.0, seed: int = 0) -> None:
        super().__init__(seed=seed, n_val=4)
        self.scale = scale


class Below(OwnConstructor):
    pass


def test_default_sizes_make_the_signature_and_the_defaults() -> None:
    assert task_keywords(Defaulted) == "seed=0, n_train=5, n_val=3, n_test=2"
    task = Defaulted(n_test=9)
    assert task.seed == 0
    assert [len(task.instances(s)) for s in Split] == [5, 3, 9]


def test_without_default_sizes_every_option_is_needed() -> None:
    assert task_keywords(Counting) == "seed, n_train, n_val, n_test"
    with pytest.raises(TypeError, match="'n_test'"):
        Counting(seed=0, n_train=1, n_val=1)
    assert Counting(seed=2, n_train=1, n_val=2, n_test=3).describe()["splits"]["val"] == 2


def test_a_subclass_with_its_own_constructor_keeps_its_signature() -> None:
    for cls in (OwnConstructor, Below):
        assert list(inspect.signature(cls).parameters) == ["scale", "seed"]
        task = create_task(cls, {"scale": 2.0}, "own")
        assert task.scale == 2.0 and [len(task.instances(s)) for s in Split] == [5, 4, 2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_train": 0}, "counting: n_train must be an integer in 1..9, got 0"),
        ({"n_val": 10}, "counting: n_val must be an integer in 1..9, got 10"),
        ({"n_test": None}, "counting: n_test must be an integer in 1..9, got None"),
        ({"n_train": True}, "counting: n_train must be an integer in 1..9, got True"),
        ({"seed": -1}, "counting: seed must be a non-negative integer, got -1"),
        ({"seed": 1.0}, "counting: seed must be a non-negative integer, got 1.0"),
    ],
)
def test_bad_options_are_refused_with_their_names(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Defaulted(**options)
    assert str(caught.value) == message
