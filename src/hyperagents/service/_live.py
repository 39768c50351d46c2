"""Live examples: requests a served champion answered, with a label or feedback, as training
data of an improvement run.

A :class:`LiveExample` is one served request: its inputs, the output served, and what came
back later: a *label* (the correct output, from a person or an oracle) and/or *feedback* (a
number in ``[0, 1]``). :func:`split_live` divides a batch into

* **train**: labelled examples, which join the improvement run's train split and are scored
  by the task's own trusted scorer against their label (:meth:`Task.target_from_label`);
* **feedback**: examples with feedback and no label, shown to the meta agent in its report
  (inputs, served output, feedback) and never scored (there is nothing to score against);
* **held back**: a fresh, seeded slice of labelled examples that training never sees, the
  one live data that may gate a candidate: it joins the improvement run's val split (so the
  run's champion, chosen on val, is chosen on the live distribution too, not only on the data
  from before a drift) and is checked on its own as well (see
  :func:`hyperagents.service.improvement_outcome`).

A label a plan brought in (``source``: ``teacher``, the configured model's answer; ``self``,
the champion's own answer the task's verifier accepted; ``self-vote``, the answer a majority
of the champion and earlier champions gave, for a task that cannot verify an answer without
its target; ``people``, a label a plan asked people for; see
:mod:`hyperagents.service._more_data`) joins train only: it is never held back, and a
held-back example with such a source is dropped. Its inputs never join a held-back slice
either.

The three are disjoint by request id *and* by inputs (examples with the same inputs, compared
as canonical JSON, always land on the same side; where one of them has a label, those with
feedback only are dropped). Test stays the task's own, and val the task's own plus the
held-back slice: a live example whose inputs equal a val or test instance's is dropped.

After a concept drift (a plan's ``scope``), :func:`split_since` keeps the examples served
since its start on their own sides, and a :class:`LiveTask` without its ``own_data`` trains
and selects on the live examples alone: the task's own labels are stale.

How they reach a run: :class:`LiveTask` wraps the run's task (the ``live`` task spec, see
:data:`hyperagents.tasks.WRAPPER_TASKS`) and takes the examples as task options, so they are
stored with the run in its config (bounded: of each kind the latest :data:`MAX_LIVE_EXAMPLES`
examples within :data:`MAX_KIND_BYTES`, each at most :data:`MAX_EXAMPLE_BYTES`). A run is
rebuilt from its stored spec and options on every resume, replay and listing, so a run killed
at any moment resumes with exactly the same data, and an export carries it. Storing the
examples in the config (rather than as a blob beside the run) needs no new storage record or
migration and keeps the run one self-contained record that any process can rebuild.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hyperagents.exceptions import ConfigError, TaskError
from hyperagents.tasks import Instance, Split, TaskWrapper, load_task

__all__ = [
    "LIVE_ID_PREFIX",
    "LIVE_TASK_SPEC",
    "MAX_EXAMPLE_BYTES",
    "MAX_KIND_BYTES",
    "MAX_LIVE_EXAMPLES",
    "TRAIN_ONLY_SOURCES",
    "LiveExample",
    "LiveSplit",
    "LiveTask",
    "inputs_key",
    "live_task_options",
    "split_live",
    "split_since",
]

#: The task spec of :class:`LiveTask` in the registry.
LIVE_TASK_SPEC = "live"
#: How the ids of live instances begin (never a task's own ids: theirs have no ``live:``).
LIVE_ID_PREFIX = "live:"
#: The most live examples a run takes, in each of train, feedback and held back.
MAX_LIVE_EXAMPLES = 256
#: The largest live example, as JSON (bytes).
MAX_EXAMPLE_BYTES = 16 * 1024
#: The most JSON the examples of one kind (train, feedback, held back) take in a run's config.
MAX_KIND_BYTES = 512 * 1024
#: Where a label a plan brought in comes from (train only, never a gate).
TRAIN_ONLY_SOURCES = ("teacher", "self", "self-vote", "people")
#: The longest request id.
_MAX_ID_CHARS = 200


@dataclass(frozen=True)
class LiveExample:
    """One served request and what came back about it.

    Attributes:
        request_id: The service's id of the request (unique within a batch).
        inputs: What the task agent was given (JSON).
        output: What the served champion answered (JSON).
        label: The correct output, from a person or an oracle (None: not labelled).
        feedback: A score of the served output in ``[0, 1]`` (None: none given).
        source: Where the label comes from when a plan brought it in (one of
            :data:`TRAIN_ONLY_SOURCES`: train only); None for any other label.
    """

    request_id: str
    inputs: Any
    output: Any
    label: Any = None
    feedback: float | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        """Raises: ConfigError: A bad id, feedback outside [0, 1], an unknown source, or too
        large / not JSON."""
        if self.source is not None and (self.source not in TRAIN_ONLY_SOURCES or not self.labelled):
            raise ConfigError(
                f"live example {self.request_id}: a source ({', '.join(TRAIN_ONLY_SOURCES)}) "
                "goes with a label"
            )
        if not isinstance(self.request_id, str) or not 0 < len(self.request_id) <= _MAX_ID_CHARS:
            raise ConfigError(f"a live example needs a request id of 1..{_MAX_ID_CHARS} chars")
        if self.feedback is not None:
            value = self.feedback
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"live example {self.request_id}: feedback must be a number")
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ConfigError(f"live example {self.request_id}: feedback {value} not in 0..1")
        try:
            size = len(json.dumps(self.as_json(), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"live example {self.request_id} is not JSON: {exc}") from None
        if size > MAX_EXAMPLE_BYTES:
            raise ConfigError(
                f"live example {self.request_id} is {size} bytes of JSON "
                f"(at most {MAX_EXAMPLE_BYTES})"
            )

    @property
    def labelled(self) -> bool:
        """Whether it has a label (and can be scored)."""
        return self.label is not None

    @property
    def may_gate(self) -> bool:
        """Whether it may join a held-back slice: a label no plan brought in."""
        return self.labelled and self.source is None

    def as_json(self) -> dict[str, Any]:
        """The example as a JSON object (what a run stores; ``source`` only when set)."""
        data = {
            "request_id": self.request_id,
            "inputs": self.inputs,
            "output": self.output,
            "label": self.label,
            "feedback": self.feedback,
        }
        return data if self.source is None else {**data, "source": self.source}

    @classmethod
    def from_json(cls, data: Any) -> LiveExample:
        """An example from :meth:`as_json`'s object.

        Raises:
            ConfigError: Not such an object, or its values are invalid.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("request_id"), str):
            raise ConfigError(f"not a live example: {str(data)[:200]}")
        unknown = set(data) - {"request_id", "inputs", "output", "label", "feedback", "source"}
        if unknown:
            raise ConfigError(f"live example: unknown keys {sorted(unknown)}")
        return cls(
            request_id=data["request_id"],
            inputs=data.get("inputs"),
            output=data.get("output"),
            label=data.get("label"),
            feedback=data.get("feedback"),
            source=data.get("source"),
        )


def inputs_key(inputs: Any) -> str:
    """A digest of ``inputs`` as canonical JSON (sorted keys): equal inputs, equal keys."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class LiveSplit:
    """A batch of live examples divided (see the module docstring).

    Attributes:
        train: Labelled examples for the train split.
        feedback: Unlabelled examples with feedback, for the meta agent's report.
        held_back: Labelled examples training never sees (a gate check of their own).
        dropped: Examples left out, with why (``{"request_id", "reason"}``).
    """

    train: tuple[LiveExample, ...]
    feedback: tuple[LiveExample, ...]
    held_back: tuple[LiveExample, ...]
    dropped: tuple[dict[str, str], ...] = ()


def _groups(examples: Iterable[LiveExample]) -> dict[str, list[LiveExample]]:
    """The examples by inputs key, in order, one per request id (the last one given wins)."""
    by_id = {example.request_id: example for example in examples}
    groups: dict[str, list[LiveExample]] = {}
    for example in by_id.values():
        groups.setdefault(inputs_key(example.inputs), []).append(example)
    return groups


def split_live(
    examples: Iterable[LiveExample], *, holdout_fraction: float = 0.0, seed: int = 0
) -> LiveSplit:
    """Divide live examples into train, feedback and a held-back slice, disjoint by request
    id and by inputs.

    Args:
        examples: The batch (a request id given twice: its last example counts).
        holdout_fraction: The share of the labelled inputs to hold back, in ``[0, 1)``
            (rounded up when above 0, and at least one labelled input stays for train); only
            inputs labelled from outside the service (:attr:`LiveExample.may_gate`) may be, and
            a label the service made for a held-back input is dropped.
        seed: Which inputs are held back.

    Raises:
        ConfigError: ``holdout_fraction`` outside ``[0, 1)``.
    """
    if not (0.0 <= holdout_fraction < 1.0):
        raise ConfigError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    groups = _groups(examples)
    labelled = [key for key, group in groups.items() if any(e.may_gate for e in group)]
    count = math.ceil(holdout_fraction * len(labelled)) if holdout_fraction > 0 else 0
    count = min(count, max(0, len(labelled) - 1))
    held = set(random.Random(seed).sample(sorted(labelled), count))
    train: list[LiveExample] = []
    feedback: list[LiveExample] = []
    held_back: list[LiveExample] = []
    dropped: list[dict[str, str]] = []
    for key, group in groups.items():
        has_label = any(e.labelled for e in group)
        for example in group:
            if example.labelled and key in held and not example.may_gate:
                dropped.append(_drop(example, "its inputs are held back"))
            elif example.labelled:
                (held_back if key in held else train).append(example)
            elif has_label:
                dropped.append(_drop(example, "its inputs have a label"))
            elif example.feedback is not None:
                feedback.append(example)
            else:
                dropped.append(_drop(example, "neither a label nor feedback"))
    kept_train, kept_feedback = _bounded(train, dropped), _bounded(feedback, dropped)
    kept_held = _bounded(held_back, dropped)
    return LiveSplit(kept_train, kept_feedback, kept_held, tuple(dropped))


def split_since(split: LiveSplit, served: Sequence[LiveExample], since: str) -> LiveSplit:
    """``split`` keeping only the examples served at or after request ``since`` (in the
    order of ``served``, oldest first): the fresh data after a concept drift. Each part keeps
    its own (a held-back example stays held back), so the parts stay disjoint; the older
    examples join ``dropped``.

    Raises:
        ConfigError: ``since`` is not a request of ``served``.
    """
    order = {example.request_id: k for k, example in enumerate(served)}
    if since not in order:
        raise ConfigError(f"since {since!r} is not a request of the live examples")
    start = order[since]
    dropped = list(split.dropped)

    def fresh(examples: tuple[LiveExample, ...]) -> tuple[LiveExample, ...]:
        """Those of ``examples`` served since ``since`` (the others join ``dropped``)."""
        kept = []
        for example in examples:
            if order.get(example.request_id, -1) >= start:
                kept.append(example)
            else:
                dropped.append(_drop(example, f"served before {since}"))
        return tuple(kept)

    parts = (fresh(split.train), fresh(split.feedback), fresh(split.held_back))
    return LiveSplit(*parts, tuple(dropped))


def _bounded(examples: list[LiveExample], dropped: list[dict[str, str]]) -> tuple[LiveExample, ...]:
    """The latest of ``examples`` within :data:`MAX_LIVE_EXAMPLES` and
    :data:`MAX_KIND_BYTES` (the older ones join ``dropped``)."""
    kept: list[LiveExample] = []
    used = 0
    for example in reversed(examples):
        size = len(json.dumps(example.as_json()))
        if len(kept) < MAX_LIVE_EXAMPLES and used + size <= MAX_KIND_BYTES:
            kept.append(example)
            used += size
        else:
            dropped.append(_drop(example, "older than the examples a run takes"))
    return tuple(reversed(kept))


def _drop(example: LiveExample, reason: str) -> dict[str, str]:
    return {"request_id": example.request_id, "reason": reason}


def live_task_options(
    base: str,
    base_options: Mapping[str, Any] | None,
    split: LiveSplit,
    *,
    own_data: bool = True,
) -> dict[str, Any]:
    """The task options of a :class:`LiveTask` over the task ``base`` (a spec) created with
    ``base_options``, holding ``split``'s examples (the latest :data:`MAX_LIVE_EXAMPLES` of
    each kind); ``own_data`` False: without the task's own train and val (stale labels)."""
    options = {
        "base": base,
        "base_options": dict(base_options or {}),
        "train": [e.as_json() for e in split.train[-MAX_LIVE_EXAMPLES:]],
        "feedback": [e.as_json() for e in split.feedback[-MAX_LIVE_EXAMPLES:]],
        "held_back": [e.as_json() for e in split.held_back[-MAX_LIVE_EXAMPLES:]],
    }
    return options if own_data else {**options, "own_data": False}


def _examples(items: Sequence[Any] | None, what: str) -> tuple[LiveExample, ...]:
    """Examples from stored JSON objects.

    Raises:
        ConfigError: More than :data:`MAX_LIVE_EXAMPLES`, or one is invalid.
    """
    items = list(items or ())
    if len(items) > MAX_LIVE_EXAMPLES:
        raise ConfigError(f"{len(items)} {what} live examples: at most {MAX_LIVE_EXAMPLES}")
    examples = tuple(LiveExample.from_json(item) for item in items)
    size = sum(len(json.dumps(e.as_json())) for e in examples)
    if size > MAX_KIND_BYTES:
        raise ConfigError(f"{what} live examples take {size} bytes: at most {MAX_KIND_BYTES}")
    return examples


class LiveTask(TaskWrapper):
    """A task with live examples added: its train split gains the labelled ones, its val split
    the held-back ones, its meta agents' reports the ones with feedback only; test stays the
    wrapped task's.

    With ``own_data`` False (a plan found the task's own labels stale: concept drift), train
    is the labelled live examples alone and val the held-back slice alone: the run trains
    and selects on fresh data only; the wrapped task's own training data and fresh held-out
    draws (the same stale labels) are left out too.

    Args:
        base: The wrapped task's spec (a built-in name, an entry point, ``path.py:Class``).
        base_options: Its options.
        train: Labelled live examples (JSON objects, see :meth:`LiveExample.as_json`).
        feedback: Live examples with feedback only.
        held_back: Labelled live examples kept from training (:meth:`held_back_instances`).
        own_data: Whether the wrapped task's own train and val join (see above).

    Raises:
        ConfigError: Too many examples, or an invalid one.
        TaskError: The wrapped task does not load.
    """

    name: ClassVar[str] = LIVE_TASK_SPEC
    description: ClassVar[str] = (
        "A task with live examples added (the service's improvement runs): labelled ones join "
        "train, a held-back slice val, feedback-only ones the meta agent's report."
    )

    def __init__(
        self,
        base: str,
        base_options: dict[str, Any] | None = None,
        train: list[Any] | None = None,
        feedback: list[Any] | None = None,
        held_back: list[Any] | None = None,
        own_data: bool = True,
    ) -> None:
        if base.strip() == LIVE_TASK_SPEC:
            raise ConfigError("a live task cannot wrap another live task")
        if not isinstance(own_data, bool):
            raise ConfigError(f"own_data must be true or false, not {own_data!r}")
        self.own_data = own_data
        super().__init__(load_task(base, base_options or {}))
        self.dropped: list[dict[str, str]] = []
        inner = self.wrapped_task
        gate = {inputs_key(i.inputs) for s in (Split.VAL, Split.TEST) for i in inner.instances(s)}
        taken = {i.id for s in Split for i in inner.instances(s)}  # grows as examples join
        train_keys = {inputs_key(i.inputs) for i in inner.instances(Split.TRAIN)}
        self._train = self._admitted(_examples(train, "train"), gate, taken)
        self._feedback = self._admitted(_examples(feedback, "feedback"), gate, taken)
        seen = train_keys | {inputs_key(e.inputs) for e in self._train + self._feedback}
        stored = _examples(held_back, "held-back")
        never = "a label a plan brought in never gates"
        self.dropped += [_drop(e, never) for e in stored if not e.may_gate]
        self._held_back = self._admitted(tuple(e for e in stored if e.may_gate), seen, taken)

    def _admitted(
        self, examples: Sequence[LiveExample], excluded: set[str], taken: set[str]
    ) -> tuple[LiveExample, ...]:
        """``examples`` without those whose inputs are ``excluded`` or whose id is ``taken``
        (each dropped one recorded in :attr:`dropped`); the ids kept join ``taken``."""
        kept: list[LiveExample] = []
        for example in examples:
            instance_id = LIVE_ID_PREFIX + example.request_id
            if inputs_key(example.inputs) in excluded:
                self.dropped.append(_drop(example, "its inputs are in data it must not join"))
            elif instance_id in taken:
                self.dropped.append(_drop(example, "its id is taken"))
            else:
                taken.add(instance_id)
                kept.append(example)
        return tuple(kept)

    def _instances(self, examples: Sequence[LiveExample]) -> list[Instance]:
        """Labelled examples as instances, their target from the label (an example the task
        cannot score against its label is left out: see :attr:`dropped`)."""
        made = []
        for example in examples:
            try:
                target = self.wrapped_task.target_from_label(example.label)
            except TaskError as exc:
                self.dropped.append(_drop(example, f"its label cannot be scored: {exc}"))
                continue
            made.append(Instance(LIVE_ID_PREFIX + example.request_id, example.inputs, target))
        return made

    def instances(self, split: Split) -> Sequence[Instance]:
        """The wrapped task's instances; train with the labelled live examples after them,
        val with the held-back slice after them (the fresh live data that may gate); without
        its own data, train and val are the live ones alone."""
        kept = self.own_data or split not in (Split.TRAIN, Split.VAL)
        own = list(self.wrapped_task.instances(split)) if kept else []
        kinds = {
            Split.TRAIN: ("_live_train", self._train),
            Split.VAL: ("_live_val", self._held_back),
        }
        if split not in kinds:
            return own
        key, examples = kinds[split]
        cached: list[Instance] | None = vars(self).get(key)
        if cached is None:
            cached = self._instances(examples)
            vars(self)[key] = cached
        return own + cached

    def held_back_instances(self) -> list[Instance]:
        """The held-back live examples as instances: in val only (a gate: the run's champion
        is chosen on val), never in train, test or a meta agent's report."""
        return self._instances(self._held_back)

    @property
    def live_examples(self) -> dict[str, tuple[LiveExample, ...]]:
        """The live examples it holds, by kind (``train``, ``feedback``, ``held_back``)."""
        return {"train": self._train, "feedback": self._feedback, "held_back": self._held_back}

    def feedback_examples(self) -> Sequence[Mapping[str, Any]]:
        """The wrapped task's own feedback examples, then the live ones with feedback only,
        as the meta agent's report shows them."""
        return [*self.wrapped_task.feedback_examples()] + [
            {
                "id": LIVE_ID_PREFIX + e.request_id,
                "inputs": e.inputs,
                "output": e.output,
                "feedback": e.feedback,
            }
            for e in self._feedback
        ]

    def input_features(self) -> dict[str, str]:
        """The input features the wrapped task declares (none when it declares none)."""
        declare = getattr(self.wrapped_task, "input_features", None)
        return dict(declare()) if callable(declare) else {}

    def holdout_instances(self, seed: int) -> Sequence[Instance]:
        """The wrapped task's fresh instances (live examples are never among them); none
        without its own data (they carry its stale labels: a re-check then uses val)."""
        return self.wrapped_task.holdout_instances(seed) if self.own_data else ()

    def own_val_instances(self) -> list[Instance]:
        """The wrapped task's own val (information on the old labels when they are stale)."""
        return list(self.wrapped_task.instances(Split.VAL))

    def training_examples(self) -> Sequence[Instance]:
        """The wrapped task's own training data (none without its own data)."""
        return self.wrapped_task.training_examples() if self.own_data else ()
