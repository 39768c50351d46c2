"""A task wrapper hands the whole task protocol on to the task it wraps: every public member of
:class:`Task` (the class attributes, the optional hooks, the arena's declaration and oracle) and
the duck-typed hooks a task declares beyond it; the live task (the service's wrapper) is one."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from arena_helpers import live_email_task
from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.service import LiveTask
from hyperagents.tasks import (
    ArenaSpec,
    Instance,
    Score,
    Split,
    Task,
    TaskWrapper,
    Verdict,
    innermost_task,
    load_task,
)
from hyperagents.tasks._wrapper import DERIVED, TAKEN_OVER


class Probe(Task):
    """A task whose every hook answers something of its own."""

    name = "probe"
    description = "probe task"
    score_range = (-1.0, 2.0)
    entry_points: ClassVar[Mapping[str, tuple[str, ...]]] = {"task_agent.py": ("solve", "x")}
    instance_timeout = 3.5
    sandbox_preload = ("json",)
    meta_files = ("meta_agent.py", "probe_meta.py")
    constitution: ClassVar[Any] = {"rules": []}
    carries_model = True
    has_verifier = False
    verifier_needs_target = False
    target_score = 1.5
    uses_judge = True

    def instances(self, split: Split) -> list[Instance]:
        return [Instance(f"{split}-{i}", {"text": t}, {"valid": True, "reason": ""})
                for i, t in enumerate(("ab", "cd"))]  # fmt: skip

    def score(self, instance: Instance, output: Any) -> Score:
        return Score(1.25, "probe")

    def seed_program(self) -> Program:
        return Program({"task_agent.py": "def solve(inputs):\n    return 'probe'\n"})

    def holdout_instances(self, seed: int) -> Sequence[Instance]:
        return [Instance(f"h{seed}", {"text": "zz"}, {"valid": True, "reason": ""})]

    def training_examples(self) -> Sequence[Instance]:
        return [Instance("ex", {"text": "q"}, "answer")]

    def target_from_label(self, label: Any) -> Any:
        return {"from": label}

    def feedback_examples(self) -> Sequence[Mapping[str, Any]]:
        return [{"id": "f", "inputs": {}, "output": 1, "feedback": 0.5}]

    def accepts(self, instance: Instance, output: Any) -> bool:
        return output == "yes"

    def arena(self) -> ArenaSpec | None:
        return ArenaSpec(input_key="text", seeds=("ab",))

    def oracle(self, value: str) -> Verdict:
        return Verdict(value == "ab", "probe oracle")

    def aggregate(self, scores: Sequence[float]) -> float:
        return 0.75

    def is_meta_file(self, path: str) -> bool:
        return path == "probe_meta.py"

    def with_meta_agent(self, program: Program, source: Mapping[str, bytes | str]) -> Program:
        return program.with_files({"probe_meta.py": "# probe"})

    def input_features(self) -> dict[str, str]:  # a duck-typed hook beyond Task
        return {"text": "the probe's input"}


def _public_members() -> set[str]:
    return {name for name in dir(Task) if not name.startswith("_")}


def test_every_public_member_of_the_task_protocol_is_handed_on() -> None:
    # A hook added to Task and not handed on by the wrapper (nor listed as derived) fails here.
    own = set(vars(TaskWrapper))
    handled = own | set(TAKEN_OVER) | DERIVED | {"constitution"}
    assert _public_members() - handled == set()
    for name in DERIVED:  # derived helpers call the hooks, never hold behaviour of their own
        assert inspect.isfunction(getattr(Task, name))


def test_a_wrapper_answers_every_hook_as_the_wrapped_task() -> None:
    inner = Probe()
    task = TaskWrapper(inner)
    assert innermost_task(TaskWrapper(task)) is inner and innermost_task(inner) is inner
    for name in TAKEN_OVER:
        assert getattr(task, name) == getattr(inner, name), name
    assert task.constitution == inner.constitution
    inst = inner.instances(Split.TRAIN)[0]
    assert task.instances(Split.VAL) == inner.instances(Split.VAL)
    assert task.score(inst, "x") == Score(1.25, "probe") == task.checked_score(inst, "x")
    assert task.seed_program().id == inner.seed_program().id
    assert [i.id for i in task.holdout_instances(7)] == ["h7"]
    assert [i.id for i in task.training_examples()] == ["ex"]
    assert task.target_from_label(3) == {"from": 3}
    assert task.feedback_examples() == inner.feedback_examples()
    assert task.accepts(inst, "yes") and not task.accepts(inst, "no")
    assert task.arena() == inner.arena() and task.arena_spec() == inner.arena_spec()
    assert task.oracle("ab") == Verdict(True, "probe oracle")
    assert task.aggregate([0.0]) == 0.75
    assert task.is_meta_file("probe_meta.py") and not task.is_meta_file("meta_agent.py")
    assert "probe_meta.py" in task.with_meta_agent(task.seed_program(), {})
    assert task.input_features() == {"text": "the probe's input"}  # beyond Task: looked up
    with pytest.raises(AttributeError):
        task.no_such_hook  # noqa: B018 - the lookup is the test


def test_a_live_task_keeps_the_arena_protocol_and_the_optional_hooks() -> None:
    live = live_email_task("new.person@example.org", valid=True)
    inner = load_task("email_validation", {})
    assert live.name == "email_validation" and innermost_task(live).name == inner.name
    assert live.arena_spec() == inner.arena_spec()
    assert live.oracle("a@b.example") == inner.oracle("a@b.example")
    assert live.oracle("no at sign") == inner.oracle("no at sign")
    assert live.target_score == inner.target_score and live.has_verifier == inner.has_verifier
    # What the live task changes stays changed: its train split gains the live example.
    assert [i.id for i in live.instances(Split.TRAIN)][-1] == "live:r1"


def test_a_live_task_over_a_judged_task_still_needs_its_judge() -> None:
    live = LiveTask("summaries")
    assert live.uses_judge and innermost_task(live).uses_judge
    assert live.rubrics == innermost_task(live).rubrics  # a judged task's own hook


def test_a_wrapped_task_without_the_protocol_is_still_refused() -> None:
    with pytest.raises(ConfigError, match="cannot play an arena"):
        LiveTask("support").arena_spec()
