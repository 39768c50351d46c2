"""The meta agent's choice of lever, and what the run's levers let it do.

A meta agent says how its child should improve in ``training_plan.json`` at the program's top
level (a meta file: it belongs to the meta level), e.g.
``{"lever": "weights", "sources": ["self", "task"], "options": {"epochs": 3}}``: ``lever`` is
``harness`` (an edit of the program's code only), ``weights`` (a weight update only) or
``both``. A child without the file, or whose program has no ``trainer.py``, chose ``harness``.

The run's ``levers`` (``--levers``, an ablation) bound the choice, and a forbidden choice is
*reduced* to what the levers allow, never refused (the child is the meta agent's work, made to
fit the arm), and the reduction is recorded with the child:

* ``levers: harness``: no weight update; the plan's ``weights`` becomes ``harness`` (the code
  edit, if any, is kept), ``both`` becomes ``harness``.
* ``levers: weights``: no code edit; every change of the child outside its meta files and
  ``model/`` is undone (the parent's files come back), ``both``/``harness`` become
  ``weights`` when the program can train, else nothing is left to change (the child fails
  as unchanged, as any child without a change).
* ``levers: both``: the plan as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hyperagents.sandbox import InvalidMessage, loads_bounded

__all__ = [
    "MODEL_DIR",
    "PLAN_FILE",
    "SOURCES",
    "TEACHER_ENTRY",
    "TEACHER_FILE",
    "TRAINER_ENTRY",
    "TRAINER_FILE",
    "Lever",
    "TrainingPlan",
    "entry_points_of",
    "parse_levers",
]

#: The file a meta agent writes its choice to (a meta file).
PLAN_FILE = "training_plan.json"
#: The program's trainer (task-level code, validated when present).
TRAINER_FILE = "trainer.py"
#: The trainer's entry point, as the validation checks it.
TRAINER_ENTRY: Mapping[str, tuple[str, ...]] = {TRAINER_FILE: ("train",)}
#: A teacher program a program may carry (``label(inputs)``: the ``teacher`` source's answers
#: besides the run's model's), validated when present.
TEACHER_FILE = "teacher.py"
#: The teacher program's entry point.
TEACHER_ENTRY: Mapping[str, tuple[str, ...]] = {TEACHER_FILE: ("label",)}
#: The folder of the program's model: the only files a weight update may change.
MODEL_DIR = "model/"
#: Where training data may come from: the parent's own verified outputs on train inputs, the
#: task's training examples, a teacher (the run's language model, or the program's
#: ``teacher.py``), labels posted by people.
SOURCES = ("self", "task", "teacher", "people")

_PLAN_BYTES = 64 * 1024


class Lever(StrEnum):
    """What a child changes: its harness (code), its weights, or both."""

    HARNESS = "harness"
    WEIGHTS = "weights"
    BOTH = "both"

    @property
    def trains(self) -> bool:
        """Whether this lever updates weights."""
        return self is not Lever.HARNESS

    @property
    def edits(self) -> bool:
        """Whether this lever edits code."""
        return self is not Lever.WEIGHTS


def entry_points_of(
    entry_points: Mapping[str, Sequence[str]], program: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """The entry points a program is validated with: the task's, the trainer's (``trainer.py``
    defining ``train``) and the teacher's (``teacher.py`` defining ``label``) when the program
    has them."""
    found = {path: tuple(names) for path, names in entry_points.items()}
    paths = set(program)
    for extra in (TRAINER_ENTRY, TEACHER_ENTRY):
        for path, names in extra.items():
            if path in paths:
                found[path] = tuple(dict.fromkeys([*found.get(path, ()), *names]))
    return found


def parse_levers(value: str | Lever) -> Lever:
    """The run's levers from a name.

    Raises:
        ValueError: Not one of ``harness``, ``weights``, ``both``.
    """
    try:
        return Lever(value)
    except ValueError:
        choices = ", ".join(lever.value for lever in Lever)
        raise ValueError(f"unknown levers {value!r}; choose one of: {choices}") from None


@dataclass(frozen=True)
class TrainingPlan:
    """A child's training plan, as the engine reads it (bounded, checked).

    Attributes:
        lever: What the meta agent chose.
        sources: Where its training data comes from (known names only, in :data:`SOURCES`
            order; default ``self`` and ``task``).
        options: Free-form options handed to the trainer (JSON).
        problems: What was wrong with the file (each ignored part named); empty when sound.
    """

    lever: Lever = Lever.HARNESS
    sources: tuple[str, ...] = ("self", "task")
    options: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @classmethod
    def read(cls, data: bytes | None) -> TrainingPlan:
        """The plan in a child's ``training_plan.json`` (None: no file, the harness lever).

        Whatever the meta agent wrote, this never raises: a file that is not a JSON object
        is the harness lever, an unknown lever or source is left out, each with the problem
        noted (recorded with the child).
        """
        if data is None:
            return cls()
        try:
            value = loads_bounded(data, max_depth=16, max_bytes=_PLAN_BYTES)
        except InvalidMessage as exc:
            return cls(problems=(f"{PLAN_FILE}: {exc}",))
        if not isinstance(value, dict):
            return cls(problems=(f"{PLAN_FILE}: not a JSON object",))
        problems: list[str] = []
        lever = Lever.HARNESS
        try:
            lever = Lever(value.get("lever", "harness"))
        except ValueError:
            problems.append(f"{PLAN_FILE}: unknown lever {str(value.get('lever'))[:40]!r}")
        sources = _sources(value.get("sources", ["self", "task"]), problems)
        options = value.get("options", {})
        if not isinstance(options, dict):
            problems.append(f"{PLAN_FILE}: options is not an object")
            options = {}
        return cls(lever, sources, options, tuple(problems))

    def allowed(self, levers: Lever, *, can_train: bool) -> tuple[Lever, str | None]:
        """The lever this plan comes to under the run's ``levers`` (see the module), and why
        it was reduced (None: as written).

        Args:
            levers: The run's levers.
            can_train: Whether the child has a trainer.
        """
        wanted = self.lever
        if wanted.trains and not can_train:
            return Lever.HARNESS, f"lever {wanted.value!r} without a {TRAINER_FILE}: harness"
        if levers is Lever.BOTH or wanted is levers:
            return wanted, None
        if levers is Lever.HARNESS:
            return Lever.HARNESS, f"levers 'harness' forbid {wanted.value!r}: harness only"
        # levers: weights
        if can_train:
            return Lever.WEIGHTS, f"levers 'weights' forbid {wanted.value!r}: weights only"
        return Lever.WEIGHTS, f"levers 'weights' and no {TRAINER_FILE}: nothing to change"

    def summary(self) -> dict[str, Any]:
        """The plan as recorded with the child (JSON)."""
        return {
            "lever": self.lever.value,
            "sources": list(self.sources),
            "options": dict(self.options),
            "problems": list(self.problems),
        }


def _sources(value: Any, problems: list[str]) -> tuple[str, ...]:
    """The known sources named in ``value`` (in :data:`SOURCES` order)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        problems.append(f"{PLAN_FILE}: sources is not a list")
        return ("self", "task")
    named = {str(v)[:40] for v in value}
    unknown = sorted(named.difference(SOURCES))
    if unknown:
        problems.append(f"{PLAN_FILE}: unknown sources {unknown} left out")
    return tuple(s for s in SOURCES if s in named)
