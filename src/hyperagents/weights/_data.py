"""Where training data comes from, each example with its source and instance id.

Four sources (names in :data:`~hyperagents.weights.SOURCES`):

* ``self``: the parent's task agent's own outputs on train inputs, kept only when the task's
  trusted verifier (:meth:`~hyperagents.tasks.Task.accepts`) accepts them (rejection
  sampling, STaR, expert iteration). A task without a verifier
  (:attr:`~hyperagents.tasks.Task.has_verifier` False) keeps them by **majority vote**
  instead (:func:`voted_outputs`, recorded as ``self-vote``): the parent and its ancestors
  (different models and harnesses, fixed when the child is made, so a training redone after a
  crash sees the same voters) each answered the train inputs; an output is kept when at least
  a quorum of them answered the instance and more than half of those gave that output (the
  filter of Lee et al. 2025, who vote across models trained with different seeds);
* ``task``: the task's own labelled training data
  (:meth:`~hyperagents.tasks.Task.training_examples`);
* ``teacher``: the run's language model labels train inputs (through the gateway: counted,
  recorded, replayable), and so does the program's own ``teacher.py`` (``label(inputs)``, run
  in the sandbox; its examples are recorded as ``teacher-program``), the answers kept only when
  the verifier accepts them (as given when the task has no verifier: the teacher is then the
  labeller);
* ``people``: labels people posted for train instances (:mod:`hyperagents.weights._labels`).

**Never val or test data.** Every source goes through one :class:`DataGuard`: an example whose
instance id is a val or test instance's, or whose inputs equal a val or test instance's inputs,
is refused whatever the plan asks or the task returns; ``self``, ``teacher`` and ``people``
examples must moreover be train instances.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hyperagents.exceptions import TaskError
from hyperagents.sandbox import InvalidMessage, loads_bounded
from hyperagents.tasks import Instance, Split, Task

__all__ = [
    "DataGuard",
    "Example",
    "accepted_outputs",
    "people_examples",
    "task_examples",
    "teacher_examples",
    "unverified_outputs",
    "verified",
    "voted_outputs",
]

#: The longest output (characters of JSON) recorded whole with its example.
RECORDED_OUTPUT = 2000

#: Asks the teacher one question (chat messages in, the reply's text out; None: no answer).
Ask = Callable[[list[dict[str, str]]], str | None]


@dataclass(frozen=True)
class Example:
    """One training example, as the run records it.

    Attributes:
        instance_id: The train instance (or the task's training example) it comes from.
        source: ``self``, ``task``, ``teacher`` or ``people``.
        inputs: What the model is given.
        output: What it is trained to answer.
    """

    instance_id: str
    source: str
    inputs: Any
    output: Any

    def for_trainer(self) -> dict[str, Any]:
        """What enters the training sandbox: inputs and output, no source, no id."""
        return {"inputs": self.inputs, "output": self.output}

    def record(self) -> dict[str, Any]:
        """What the run records of it (JSON): its id, source and output (an output longer than
        :data:`RECORDED_OUTPUT` characters of JSON is recorded cut, as text, saying so)."""
        text = _canonical(self.output)
        if len(text) <= RECORDED_OUTPUT:
            return {"id": self.instance_id, "source": self.source, "output": self.output}
        cut = text[:RECORDED_OUTPUT] + "…"
        return {"id": self.instance_id, "source": self.source, "output": cut, "cut": True}


def _canonical(value: Any) -> str:
    """A value's JSON text, keys sorted (unserialisable values by their repr)."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)


class DataGuard:
    """Keeps val and test data out of training (see the module).

    Args:
        task: The task (its splits are read once).
        train: The instances examples may come from (default: the task's train split;
            e.g. live inputs a service served, without targets).
    """

    def __init__(self, task: Task, *, train: Sequence[Instance] | None = None) -> None:
        chosen = task.instances(Split.TRAIN) if train is None else train
        self._train = {inst.id: inst for inst in chosen}
        self._position = {instance_id: k for k, instance_id in enumerate(self._train)}
        held_out = [inst for split in (Split.VAL, Split.TEST) for inst in task.instances(split)]
        self._held_ids = {inst.id for inst in held_out}
        self._held_inputs = {_canonical(inst.inputs) for inst in held_out}
        self.refused = 0

    def train_instance(self, instance_id: str) -> Instance | None:
        """The train instance ``instance_id`` (None: not a train instance, or one a val or
        test instance shares its inputs with)."""
        inst = self._train.get(instance_id)
        if inst is None or not self.allows(inst.id, inst.inputs):
            return None
        return inst

    def position(self, instance_id: str) -> int:
        """Where ``instance_id`` is in the train split (after every train instance: not one)."""
        return self._position.get(instance_id, len(self._position))

    def allows(self, instance_id: str, inputs: Any) -> bool:
        """Whether an example with this id and these inputs may be trained on (counts the
        refusals)."""
        if instance_id in self._held_ids or _canonical(inputs) in self._held_inputs:
            self.refused += 1
            return False
        return True

    def keep(self, examples: Iterable[Example]) -> list[Example]:
        """The examples that may be trained on, in order."""
        return [e for e in examples if self.allows(e.instance_id, e.inputs)]


def verified(task: Task, instance: Instance, output: Any) -> bool:
    """Whether the task's verifier accepts ``output`` on ``instance`` (a verifier that
    raises rejects it: the candidate's output cannot fail the run)."""
    try:
        return bool(task.accepts(instance, output))
    except Exception:
        return False


def accepted_outputs(
    task: Task, guard: DataGuard, outputs: Mapping[str, Any], source: str = "self"
) -> list[Example]:
    """The outputs (by train instance id) that the verifier accepts, as examples of
    ``source``, in the train split's order."""
    examples = []
    for instance_id in sorted(outputs, key=guard.position):
        inst, output = guard.train_instance(instance_id), outputs[instance_id]
        if inst is not None and output is not None and verified(task, inst, output):
            examples.append(Example(inst.id, source, inst.inputs, output))
    return examples


def voted_outputs(
    guard: DataGuard, ballots: Sequence[Mapping[str, Any]], *, quorum: int
) -> list[Example]:
    """The outputs a majority of voters agree on, as ``self-vote`` examples in the train
    split's order.

    Args:
        guard: The run's guard (only train instances are counted).
        ballots: Each voter's outputs by train instance id (a voter that did not answer an
            instance, or answered None, does not vote on it).
        quorum: The fewest voters that must have answered an instance (at least 1; with 1 and
            a single voter every output is kept: plain self-distillation).

    An output wins when more than half of the voters that answered the instance gave it
    (outputs compared as canonical JSON); a tie or a plurality keeps nothing.
    """
    quorum = max(1, quorum)
    counted: dict[str, Counter[str]] = {}
    values: dict[str, Any] = {}
    for ballot in ballots:
        for instance_id, output in ballot.items():
            if output is None or guard.train_instance(instance_id) is None:
                continue
            key = _canonical(output)
            counted.setdefault(instance_id, Counter())[key] += 1
            values.setdefault(key, output)
    examples = []
    for instance_id in sorted(counted, key=guard.position):
        votes = counted[instance_id]
        answered = sum(votes.values())
        key, top = votes.most_common(1)[0]
        if answered >= quorum and 2 * top > answered:
            inst = guard.train_instance(instance_id)
            assert inst is not None
            examples.append(Example(inst.id, "self-vote", inst.inputs, values[key]))
    return examples


def unverified_outputs(
    guard: DataGuard, outputs: Mapping[str, Any], *, source: str
) -> list[Example]:
    """A labeller's outputs (by train instance id) taken as they are, as examples of
    ``source``, in the train split's order: a teacher's answers for a task without a
    verifier."""
    examples = []
    for instance_id in sorted(outputs, key=guard.position):
        inst, output = guard.train_instance(instance_id), outputs[instance_id]
        if inst is not None and output is not None:
            examples.append(Example(inst.id, source, inst.inputs, output))
    return examples


def task_examples(task: Task, guard: DataGuard) -> list[Example]:
    """The task's own training examples that the guard lets through.

    Raises:
        TaskError: An example's inputs or target is not JSON (a bug in the task).
    """
    found = []
    for inst in task.training_examples():
        try:
            json.dumps([inst.inputs, inst.target], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TaskError(
                f"task {task.name!r}: training example {inst.id!r} is not JSON: {exc}"
            ) from None
        found.append(Example(str(inst.id), "task", inst.inputs, inst.target))
    return guard.keep(found)


def people_examples(labels: Mapping[str, Any], guard: DataGuard) -> list[Example]:
    """Labels people posted (by train instance id), as examples."""
    examples = []
    for instance_id, output in labels.items():
        inst = guard.train_instance(instance_id)
        if inst is not None:
            examples.append(Example(inst.id, "people", inst.inputs, output))
    return examples


def teacher_examples(
    task: Task, guard: DataGuard, instances: Sequence[Instance], ask: Ask
) -> list[Example]:
    """Ask the teacher to answer each train instance; keep the answers the verifier accepts.

    The reply is read as JSON when it is JSON, else as its stripped text.
    """
    system = (
        f"You label training data for the task {task.name!r}: {task.description} "
        "Reply with the correct output for the given input and nothing else, as JSON."
    )
    outputs: dict[str, Any] = {}
    for inst in instances:
        if guard.train_instance(inst.id) is None:
            continue
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": _canonical(inst.inputs)},
        ]
        reply = ask(messages)
        if reply is None:
            continue
        outputs[inst.id] = _reply_value(reply)
    if not task.has_verifier:
        return unverified_outputs(guard, outputs, source="teacher")
    return accepted_outputs(task, guard, outputs, source="teacher")


def _reply_value(reply: str) -> Any:
    """A teacher's reply as a value: its JSON, else its stripped text."""
    text = reply.strip()
    try:
        return loads_bounded(text, max_depth=32)
    except InvalidMessage:
        return text
