"""A task that tells valid strings from invalid ones on a labelled suite (the shape of
``email_validation`` and ``ip_validation``).

Each instance is one string (``inputs`` ``{suite_key: str}``) with the target
``{"valid": bool, "reason": str}``; the task agent's ``solve`` returns a bool, scored 1 when it
is the label and 0 otherwise (anything but a bool scores 0 with the reason). The suite's rows
(``{suite_key, "valid", "reason", "category"}``) are dealt by category: each category shuffled
with the task's ``seed`` and dealt 40% to train, 30% to val and 30% to test, so each split has
every kind of case. This is also the shape the arena takes (see
:meth:`~hyperagents.tasks.Task.arena`).
"""

from __future__ import annotations

import json
import random
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from hyperagents.exceptions import TaskError
from hyperagents.tasks._base import Instance, Score, Split, Task, short_repr

__all__ = ["LabelledStringTask", "distinct_mutations", "label_rows", "read_suite", "write_suite"]

#: Each split's share of every category: train 40%, val 30%, test 30% (of ten).
_DEAL = (Split.TRAIN,) * 4 + (Split.VAL,) * 3 + (Split.TEST,) * 3


class LabelledStringTask(Task):
    """Valid or invalid strings of a labelled suite, scored by accuracy (see the module
    docstring).

    Args:
        seed: How each category is dealt to the splits.

    Raises:
        TaskError: ``seed`` is not an int.
    """

    #: The key of the string in each instance's inputs (and each suite row).
    suite_key: ClassVar[str] = "text"
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)  # accuracy
    instance_timeout: ClassVar[float] = 2.0
    target_score: ClassVar[float | None] = 1.0

    def __init__(self, *, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TaskError(f"seed must be an int, not {seed!r}")
        self.seed = seed

    @abstractmethod
    def suite_rows(self) -> list[dict[str, Any]]:
        """The labelled suite: rows ``{suite_key, "valid", "reason", "category"}``."""

    @cached_property
    def _splits(self) -> dict[Split, list[Instance]]:
        rows = self.suite_rows()
        splits: dict[Split, list[Instance]] = {split: [] for split in Split}
        for category in sorted({str(row["category"]) for row in rows}):
            members = [(i, row) for i, row in enumerate(rows) if row["category"] == category]
            random.Random(f"{self.seed}:{category}").shuffle(members)
            for k, (i, row) in enumerate(members):
                split = _DEAL[k % len(_DEAL)]
                target = {"valid": bool(row["valid"]), "reason": str(row["reason"])}
                inputs = {self.suite_key: str(row[self.suite_key])}
                splits[split].append(Instance(f"{split.value}-{i}", inputs, target))
        for dealt in splits.values():
            dealt.sort(key=lambda inst: int(inst.id.rpartition("-")[2]))
        return splits

    def instances(self, split: Split) -> Sequence[Instance]:
        """The strings of ``split``, in the suite's order."""
        return self._splits[Split(split)]

    def score(self, instance: Instance, output: Any) -> Score:
        """1 for the oracle's answer, else 0; feedback shows the expected answer."""
        valid, reason = instance.target["valid"], instance.target["reason"]
        expected = "valid" if valid else f"invalid ({reason})"
        if not isinstance(output, bool):
            return Score(0.0, f"invalid output {short_repr(output, 60)}: expected a bool")
        shown = short_repr(instance.inputs[self.suite_key], 100)
        if output == valid:
            return Score(1.0, f"{shown}: right, {expected}")
        return Score(0.0, f"{shown}: said {'valid' if output else 'invalid'}, is {expected}")


def distinct_mutations(
    seed: int,
    n: int,
    bases: Sequence[str],
    mutate: Callable[[str, random.Random], str],
    exclude: Iterable[str],
) -> list[str]:
    """``n`` distinct seeded mutations (``mutate`` of a base drawn from ``bases``), none of
    them in ``exclude`` (the hand-written strings)."""
    rng = random.Random(seed)
    known = set(exclude)
    found: list[str] = []
    while len(found) < n:
        candidate = mutate(rng.choice(bases), rng)
        if candidate not in known:
            known.add(candidate)
            found.append(candidate)
    return found


def label_rows(
    pairs: Iterable[tuple[str, str]], label: Callable[[str], tuple[bool, str]], *, key: str
) -> list[dict[str, Any]]:
    """The labelled suite of ``(category, text)`` pairs (each text once, the first time):
    rows ``{key, "valid", "reason", "category"}``, labelled by ``label(text) -> (valid,
    reason)`` (the task's oracle)."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for category, text in pairs:
        if text in seen:
            continue
        seen.add(text)
        valid, reason = label(text)
        rows.append({key: text, "valid": valid, "reason": reason, "category": category})
    return rows


def read_suite(path: Path) -> list[dict[str, Any]]:
    """A stored labelled suite (a JSON list of rows)."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(rows, list)
    return rows


def write_suite(path: Path, rows: list[dict[str, Any]]) -> None:
    """Store a labelled suite as :func:`read_suite` reads it."""
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=0) + "\n", "utf-8")
