"""A task that wraps another (:class:`TaskWrapper`): the one place where the whole task protocol
is handed on to the wrapped task, so a wrapper that adds something (live data, feedback) keeps
every hook it does not change: the class attributes, the optional hooks (fresh held-out draws,
training data, the verifier, labels, feedback examples), the arena's declaration and trusted
oracle, and any duck-typed hook a task declares beyond :class:`~hyperagents.tasks.Task` (such
as ``input_features``, or a judged task's rubrics), looked up on the wrapped task.

A subclass overrides only what it changes (e.g. :meth:`Task.instances`). A hook added to
:class:`~hyperagents.tasks.Task` must be handed on here too: a test checks that every public
member of the base class is (see :data:`DERIVED`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperagents.program import Program
from hyperagents.sandbox import task_locations
from hyperagents.tasks._arena import ArenaSpec, Verdict
from hyperagents.tasks._base import Instance, Score, Split, Task

__all__ = ["DERIVED", "TAKEN_OVER", "TaskWrapper", "innermost_task"]

#: The class attributes of a task that its wrapper takes over (as instance attributes).
TAKEN_OVER = (
    "name",
    "description",
    "score_range",
    "entry_points",
    "instance_timeout",
    "sandbox_preload",
    "meta_files",
    "carries_model",
    "has_verifier",
    "verifier_needs_target",
    "target_score",
    "uses_judge",
)

#: The public members of :class:`Task` a wrapper keeps as the base class has them: helpers
#: built on the hooks (they call the wrapper's own hooks, so its changes count).
DERIVED = frozenset({"checked_score", "describe", "meta_paths", "normalise"})


def _constitution(task: Task) -> Any:
    """``task``'s default constitution, a relative file path made absolute (it is relative
    to the task's module, which a wrapper does not share)."""
    source = task.constitution
    if isinstance(source, str) and not Path(source).is_absolute():
        where = getattr(sys.modules.get(type(task).__module__), "__file__", None)
        if where:
            return str(Path(where).parent / source)
    return source


def innermost_task(task: Task) -> Task:
    """The task ``task`` wraps, through every wrapper (``task`` itself when it wraps none)."""
    while isinstance(task, TaskWrapper):
        task = task.wrapped_task
    return task


class TaskWrapper(Task):
    """A task that hands every hook of the protocol on to ``wrapped`` (see the module
    docstring); subclasses override what they change.

    Args:
        wrapped: The task it wraps.

    Attributes:
        wrapped_task: The wrapped task.
        hidden_paths: Where the wrapped task's files are: the sandboxes hide them (see
            :func:`hyperagents.sandbox.task_locations`).
    """

    def __init__(self, wrapped: Task) -> None:
        self.wrapped_task = wrapped
        vars(self).update({name: getattr(wrapped, name) for name in TAKEN_OVER})
        vars(self)["constitution"] = _constitution(wrapped)
        self.hidden_paths = task_locations(wrapped)

    def __getattr__(self, name: str) -> Any:
        """A hook the base class does not declare (``input_features``, a judged task's
        ``rubrics``...): the wrapped task's.

        Raises:
            AttributeError: The wrapped task has none either.
        """
        if name.startswith("__") or name == "wrapped_task":
            raise AttributeError(name)
        return getattr(self.wrapped_task, name)

    def instances(self, split: Split) -> Sequence[Instance]:
        """The wrapped task's instances."""
        return self.wrapped_task.instances(split)

    def score(self, instance: Instance, output: Any) -> Score:
        """The wrapped task's trusted scorer."""
        return self.wrapped_task.score(instance, output)

    def seed_program(self) -> Program:
        """The wrapped task's seed program."""
        return self.wrapped_task.seed_program()

    def holdout_instances(self, seed: int) -> Sequence[Instance]:
        """The wrapped task's fresh instances."""
        return self.wrapped_task.holdout_instances(seed)

    def training_examples(self) -> Sequence[Instance]:
        """The wrapped task's own training data."""
        return self.wrapped_task.training_examples()

    def target_from_label(self, label: Any) -> Any:
        """The wrapped task's rule.

        Raises:
            TaskError: The wrapped task cannot score against a label.
        """
        return self.wrapped_task.target_from_label(label)

    def feedback_examples(self) -> Sequence[Mapping[str, Any]]:
        """The wrapped task's feedback examples."""
        return self.wrapped_task.feedback_examples()

    def accepts(self, instance: Instance, output: Any) -> bool:
        """The wrapped task's verifier."""
        return self.wrapped_task.accepts(instance, output)

    def arena(self) -> ArenaSpec | None:
        """The wrapped task's arena declaration."""
        return self.wrapped_task.arena()

    def oracle(self, value: str) -> Verdict:
        """The wrapped task's trusted oracle.

        Raises:
            TaskError: The wrapped task has no oracle, or it cannot run.
        """
        return self.wrapped_task.oracle(value)

    def arena_spec(self) -> ArenaSpec:
        """The wrapped task's checked arena declaration (its seeds from its own train split).

        Raises:
            ConfigError: The wrapped task cannot play an arena.
        """
        return self.wrapped_task.arena_spec()

    def aggregate(self, scores: Sequence[float]) -> float:
        """The wrapped task's aggregation."""
        return self.wrapped_task.aggregate(scores)

    def is_meta_file(self, path: str) -> bool:
        """The wrapped task's rule for meta files."""
        return self.wrapped_task.is_meta_file(path)

    def with_meta_agent(self, program: Program, source: Mapping[str, bytes | str]) -> Program:
        """The wrapped task's way of putting a meta agent into a program."""
        return self.wrapped_task.with_meta_agent(program, source)
