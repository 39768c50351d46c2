"""The task plugin protocol.

A task defines the work a hyperagent is improved on. Subclass :class:`Task` and provide:

* ``name`` and ``description`` (class attributes);
* ``score_range``: the ``(low, high)`` range every per-instance score lies in, higher is better;
* ``entry_points``: for each file a program must contain, the names it must define (checked
  when a child is validated), e.g. ``{"task_agent.py": ("solve",), "meta_agent.py": ("improve",)}``;
* :meth:`Task.instances` for the ``train``, ``val`` and ``test`` splits, deterministic for a
  given task configuration;
* :meth:`Task.score`: **trusted** scoring, run in the engine process (never in the sandbox), that
  receives the instance (with its private ``target``) and the output the task agent returned;
* :meth:`Task.seed_program`: the starting hyperagent (task agent + meta agent).

A task whose agents carry a model (weights in the program's ``model/`` folder, trained by its
``trainer.py``, see :mod:`hyperagents.weights`) sets :attr:`Task.carries_model` and may give
:meth:`Task.training_examples` (its own labelled training data) and a sharper
:meth:`Task.accepts` (the verifier that keeps an agent's own outputs as training data).

What an agent sees: the task agent's ``solve(inputs)`` receives :attr:`Instance.inputs` only. The
meta agent receives an evaluation report with scores and per-instance feedback for the train
split (never the test split, never targets). :attr:`Instance.target` stays in the engine.

A task that classifies one string may take part in an arena (test agents propose inputs, code
agents co-evolve, see :mod:`hyperagents.arena`): it returns an
:class:`~hyperagents.tasks.ArenaSpec` from :meth:`Task.arena` and labels new inputs with its
trusted :meth:`Task.oracle` (see :mod:`hyperagents.tasks._arena`).

Scores are aggregated with :meth:`Task.aggregate` (the mean by default). Scores outside
``score_range`` are a bug in the task and raise :class:`~hyperagents.exceptions.TaskError`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar

from hyperagents.exceptions import ConfigError, LLMError, RunStateError, TaskError
from hyperagents.program import Program
from hyperagents.sandbox import is_meta_module
from hyperagents.tasks._arena import (
    MAX_SEED_CHARS,
    MAX_SEEDS,
    ArenaSpec,
    Verdict,
    check_arena_spec,
    default_alphabet,
)

__all__ = [
    "META_STATE_FILE",
    "Instance",
    "Score",
    "Split",
    "Task",
    "is_meta_agent_file",
    "short_repr",
]

#: JSON-compatible value: what crosses the sandbox boundary.
JSON = Any

#: The file where a meta agent keeps the state it adapts (the offline seed's strategy), apart
#: from its code: a meta file, data only, so that a change to it is adaptation, never new code.
META_STATE_FILE = "meta_state.json"


def is_meta_agent_file(path: str) -> bool:
    """Whether ``path`` is a file of the program's meta agent: a module (a top-level
    ``meta_*.py``, see :func:`hyperagents.sandbox.is_meta_module`) or its state file
    (:data:`META_STATE_FILE`)."""
    return path == META_STATE_FILE or is_meta_module(path)


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (ending in ``...``), for feedback that shows
    an agent's output."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Split(StrEnum):
    """The data splits of a task."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


@dataclass(frozen=True)
class Instance:
    """One unit of work.

    Attributes:
        id: Unique within the task (across splits).
        inputs: JSON-compatible value given to the task agent's ``solve``.
        target: Private data for scoring (a label, a reference); never leaves the engine.
    """

    id: str
    inputs: JSON
    target: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Score:
    """The trusted verdict on one output.

    Attributes:
        value: Score within the task's ``score_range`` (higher is better).
        feedback: Human- and agent-readable explanation, shown to meta agents for train instances.
    """

    value: float
    feedback: str = ""


class Task(ABC):
    """Base class of task plugins; see the module docstring for the protocol."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    entry_points: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "task_agent.py": ("solve",),
        "meta_agent.py": ("improve",),
    }
    #: Seconds the task agent may spend on one instance before it counts as timed out.
    instance_timeout: ClassVar[float] = 10.0
    #: Modules warm sandbox processes import before their request (what the agents use).
    sandbox_preload: ClassVar[tuple[str, ...]] = ()
    #: Files that belong to the meta level, besides the modules of the program's meta agent
    #: (every top-level ``meta_*.py``): see :meth:`is_meta_file`. ``reviewer.py`` is the
    #: reviewer of runs with ``review`` on (levels: ``feedback``).
    meta_files: ClassVar[tuple[str, ...]] = (
        "meta_agent.py",
        "select_parent.py",
        "planner.py",
        "reviewer.py",
    )
    #: The task's default constitution (a mapping, or a TOML/YAML file path relative to the
    #: task's module); a run's own ``constitution`` replaces it.
    constitution: ClassVar[Mapping[str, Any] | str | None] = None
    #: Whether the seed program carries a model: a ``trainer.py`` defining ``train`` (and,
    #: once trained, ``model/config.json`` with ``model/*.safetensors``).
    carries_model: ClassVar[bool] = False
    #: Whether :meth:`accepts` can tell a right output from a wrong one on a train instance (it
    #: needs the instance's target). A task without a verifier (False) keeps an agent's own
    #: outputs as training data by majority vote of the program's lineage instead, and a
    #: teacher's answers as the teacher gave them (see :mod:`hyperagents.weights`).
    has_verifier: ClassVar[bool] = True
    #: Whether :meth:`accepts` needs the instance's target to judge an output (True, the
    #: default's case: it scores the output against the target). A task whose verifier judges
    #: an output from the inputs alone (it checks a proof, runs the tests the input carries)
    #: sets it False: then an agent's answers to inputs nobody labelled (live requests a
    #: service served) can be verified; otherwise a service keeps them by majority vote of
    #: its champions (see :mod:`hyperagents.service`).
    verifier_needs_target: ClassVar[bool] = True
    #: A score at which nothing better is sought: a run stops once its champion's val score
    #: reaches it (None: no such score).
    target_score: ClassVar[float | None] = None
    #: Whether :meth:`score` asks the run's language model (a judged task, see
    #: :class:`~hyperagents.tasks.JudgedTask`): such a task runs only with a model.
    uses_judge: ClassVar[bool] = False

    @abstractmethod
    def instances(self, split: Split) -> Sequence[Instance]:
        """Return the instances of ``split`` in a fixed order."""

    @abstractmethod
    def score(self, instance: Instance, output: JSON) -> Score:
        """Score ``output`` (whatever ``solve`` returned, after a JSON round trip) on ``instance``.

        Must not raise on malformed output: return the lowest score with a reason instead.
        """

    @abstractmethod
    def seed_program(self) -> Program:
        """Return the seed hyperagent program."""

    def holdout_instances(self, seed: int) -> Sequence[Instance]:
        """Fresh instances never used in the search, for re-checking a would-be champion
        (quarantine); ``seed`` makes each draw new. Default: none (the val split is evaluated
        again, in a fresh process)."""
        return ()

    def training_examples(self) -> Sequence[Instance]:
        """The task's own labelled training data, apart from the train/val/test splits: each
        instance's ``inputs`` and ``target`` may enter the training sandbox as an example
        with the source ``task`` (its ``target`` is the output the model is trained to give).
        Ids must not be those of split instances. Default: none."""
        return ()

    def target_from_label(self, label: JSON) -> Any:
        """The :attr:`Instance.target` that scores an output against ``label``, the output a
        person (or an oracle) says is correct for a request that was served live: a labelled
        live example joins the train split as an instance with this target and is scored by
        :meth:`score`. Default: the label itself (the target is the correct output, as for
        :meth:`training_examples`). A task whose targets are not outputs overrides it, or
        raises :class:`~hyperagents.exceptions.TaskError` to refuse labels.

        Raises:
            TaskError: The task cannot score against a label.
        """
        return label

    def feedback_examples(self) -> Sequence[Mapping[str, Any]]:
        """Examples shown to meta agents in their report and never scored: e.g. live
        requests whose served output got feedback but no label (``{"id", "inputs",
        "output", "feedback"}``). Default: none."""
        return ()

    def accepts(self, instance: Instance, output: JSON) -> bool:
        """The trusted verifier: whether ``output`` of the task agent on the train
        ``instance`` may be kept as training data (run in the engine, like :meth:`score`).
        Default: the output scores the top of :attr:`score_range`; a scorer that raises
        rejects it."""
        try:
            value = self.checked_score(instance, output).value
        except TaskError:
            return False
        return value >= self.score_range[1] - 1e-9

    def arena(self) -> ArenaSpec | None:
        """The task's arena declaration (None, the default: it takes no part in arenas).

        An arena-capable task classifies one string (``inputs`` ``{key: str}``, targets
        ``{"valid": bool, "reason": str}``, bool outputs), returns an
        :class:`~hyperagents.tasks.ArenaSpec` here and overrides :meth:`oracle`.
        """
        return None

    def oracle(self, value: str) -> Verdict:
        """The trusted oracle: the :class:`~hyperagents.tasks.Verdict` on a new input (one no
        split holds), run in the engine. Must not raise on odd strings: label them.

        Raises:
            TaskError: The task has no oracle (the default), or its oracle cannot run (a
                missing package).
        """
        raise TaskError(f"task {self.name!r} has no trusted oracle for new inputs")

    def arena_spec(self) -> ArenaSpec:
        """:meth:`arena`'s declaration checked, with its defaults filled: the seeds (the train
        split's valid inputs where it gives none), capped, and the alphabet.

        Raises:
            ConfigError: The task takes no part in arenas (no :meth:`arena`, or no
                :meth:`oracle` of its own), or its declaration or its train split does not
                follow the protocol.
        """
        declared = self.arena()
        if declared is None or type(self).oracle is Task.oracle:
            raise ConfigError(
                f"task {self.name!r} cannot play an arena: it declares no arena() with a "
                "trusted oracle() (see docs/writing-a-task.md, 'Arena')"
            )
        spec = check_arena_spec(declared, task=self.name)
        key = spec.input_key
        seeds: list[str] = []
        for inst in self.instances(Split.TRAIN):
            value = inst.inputs.get(key) if isinstance(inst.inputs, Mapping) else None
            target = inst.target
            if not isinstance(value, str) or not isinstance(target, Mapping):
                raise ConfigError(
                    f"task {self.name!r}: arena tasks' train inputs are {{{key!r}: str}} with "
                    f'targets {{"valid": bool, "reason": str}}; {inst.id} is not'
                )
            if target.get("valid") is True and value and value not in seeds:
                seeds.append(value)
        chosen = spec.seeds or tuple(seeds)
        chosen = tuple(s for s in chosen if len(s) <= MAX_SEED_CHARS)[:MAX_SEEDS]
        if not chosen:
            raise ConfigError(f"task {self.name!r}: no seed inputs for the arena's test agents")
        alphabet = spec.alphabet or default_alphabet(chosen)
        return replace(spec, seeds=chosen, alphabet=alphabet)

    def aggregate(self, scores: Sequence[float]) -> float:
        """Combine per-instance scores into one split score (mean; 0-length gives the minimum)."""
        if not scores:
            return self.score_range[0]
        return math.fsum(scores) / len(scores)

    # -- helpers used by the engine ---------------------------------------------------------
    def is_meta_file(self, path: str) -> bool:
        """Whether ``path`` belongs to the meta level: one of :attr:`meta_files`, or a file of
        the program's meta agent (a top-level ``meta_*.py``: ``meta_agent.py`` and the sibling
        modules it imports, see :func:`hyperagents.sandbox.is_meta_module`; and its state
        file, :data:`META_STATE_FILE`).

        The one rule for meta files: ``frozen-meta`` mode keeps them as the seed has them, a
        transfer (``meta_from``) carries them, and a change to their code waits for approval
        (a change to the state file is adaptation, not code).
        """
        return path in self.meta_files or is_meta_agent_file(path)

    def meta_paths(self, *programs: Iterable[str]) -> list[str]:
        """The declared :attr:`meta_files` and the meta files of ``programs``, sorted."""
        found = {path for program in programs for path in program if self.is_meta_file(path)}
        return sorted(found.union(self.meta_files))

    def with_meta_agent(self, program: Program, source: Mapping[str, bytes | str]) -> Program:
        """``program`` with the meta agent of ``source`` (a program, or files by path).

        The files of ``program``'s meta agent (its modules and state file) are replaced as a
        whole (those ``source`` lacks are removed); the other declared meta files
        (``select_parent.py``) only where ``source`` has them.
        """
        updates: dict[str, bytes | str | None] = {
            path: None for path in program if is_meta_agent_file(path)
        }
        updates.update({path: source[path] for path in source if self.is_meta_file(path)})
        return program.with_files(updates)

    def checked_score(self, instance: Instance, output: JSON) -> Score:
        """Call :meth:`score` and enforce the protocol on its result.

        A judge that could not answer (a :class:`~hyperagents.exceptions.RunStateError` or
        :class:`~hyperagents.exceptions.LLMError` from a judged task's scorer) is passed on as
        it is: the run's problem, never the output's.

        Raises:
            TaskError: ``score`` raised or returned something outside ``score_range``.
            RunStateError: The run's judge could not answer (budget spent, model cut off).
            LLMError: Likewise.
        """
        try:
            result = self.score(instance, output)
        except (RunStateError, LLMError):
            raise
        except Exception as exc:
            raise TaskError(
                f"task {self.name!r}: score() raised on {instance.id}: {exc!r}"
            ) from exc
        if not isinstance(result, Score):
            raise TaskError(f"task {self.name!r}: score() must return Score, got {result!r}")
        low, high = self.score_range
        value = float(result.value)
        if not (math.isfinite(value) and low - 1e-9 <= value <= high + 1e-9):
            raise TaskError(
                f"task {self.name!r}: score {value!r} for {instance.id} is outside {low}..{high}"
            )
        return result

    def normalise(self, value: float) -> float:
        """Map a score from ``score_range`` to ``[0, 1]``."""
        low, high = self.score_range
        return (value - low) / (high - low) if high > low else 0.0

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (name, description, range, split sizes)."""
        return {
            "name": self.name,
            "description": self.description,
            "score_range": list(self.score_range),
            "splits": {s.value: len(self.instances(s)) for s in Split},
        }
