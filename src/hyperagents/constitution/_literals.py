"""The ``instance_literals`` check: literals in agent code that quote a held-out instance.

A literal quotes an instance when it holds something *distinctive* of it, something that names
that instance rather than the task:

* its id;
* its whole input, when the input is a string (unless a train input is the same string);
* a value of its inputs (a string at least ``min_length`` long, or a number with three or more
  decimals) that no other held-out instance has and no train input has.

A value shared by several held-out instances, or found in the train split's inputs, is the
task's vocabulary (a category such as ``"refactor"``, a channel such as ``"web form"``): an agent
may name it, and learn it from the train split.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hyperagents.constitution._rules import Finding, Unanalysable, _line, python_files
from hyperagents.program import Program

__all__ = ["Needles", "find_instance_literals"]


def _precise(value: float) -> bool:
    """A float with at least three decimals: unlikely to appear in code by chance."""
    return value != round(value, 2)


def _leaves(value: Any) -> Iterator[Any]:
    """The scalars of a JSON-like value (mapping values and list items, recursively)."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _values(inputs: Any, min_length: int) -> set[str | float]:
    """The values of ``inputs`` that could tell an instance: long strings and precise floats."""
    found: set[str | float] = set()
    for leaf in _leaves(inputs):
        long_string = isinstance(leaf, str) and len(leaf) >= min_length
        if long_string or (isinstance(leaf, float) and _precise(leaf)):
            found.add(leaf)
    return found


@dataclass(frozen=True)
class Needles:
    """What quotes a held-out instance: distinctive strings and numbers → the instance's id."""

    strings: Mapping[str, str]
    numbers: Mapping[float, str]

    @classmethod
    def build(
        cls,
        held_out: Iterable[tuple[str, Any]],
        train: Iterable[tuple[str, Any]] = (),
        *,
        min_length: int,
    ) -> Needles:
        """The needles of the ``held_out`` instances, less the vocabulary that ``train`` shows
        (see the module docstring)."""
        known: set[str | float] = set()
        for _, inputs in train:
            known |= _values(inputs, min_length)
            if isinstance(inputs, str):
                known.add(inputs)
        owners: dict[str | float, list[str]] = {}
        wholes: dict[str, str] = {}
        ids: dict[str, str] = {}
        for instance_id, inputs in held_out:
            ids[instance_id] = instance_id
            if isinstance(inputs, str) and len(inputs) >= min_length and inputs not in known:
                wholes.setdefault(inputs, instance_id)
            for value in _values(inputs, min_length):
                owners.setdefault(value, []).append(instance_id)
        distinctive = {
            value: only[0]
            for value, only in owners.items()
            if len(only) == 1 and value not in known
        }
        strings = {v: i for v, i in distinctive.items() if isinstance(v, str)} | wholes | ids
        numbers = {v: i for v, i in distinctive.items() if isinstance(v, float)}
        return cls(strings, numbers)

    def quoted(self, literal: object, min_length: int) -> str | None:
        """The id of the instance ``literal`` quotes, or None."""
        if isinstance(literal, float):
            return self.numbers.get(literal)
        if not isinstance(literal, str):
            return None
        hit = self.strings.get(literal)
        if hit is None and len(literal) >= min_length:
            long = ((text, i) for text, i in self.strings.items() if len(text) >= min_length)
            hit = next((i for text, i in long if text in literal), None)
        return hit


def find_instance_literals(
    program: Program,
    globs: Sequence[str],
    instances: Iterable[tuple[str, Any]],
    *,
    min_length: int,
    train: Iterable[tuple[str, Any]] = (),
) -> list[Finding]:
    """Literals in the matching Python files, and values in every JSON file of the program
    (data an agent reads, such as a meta agent's state), that quote a held-out instance of
    ``instances`` (``(id, inputs)`` pairs), telling the task's vocabulary by ``train`` (the
    train split's pairs; see the module docstring): signs of answers hard-coded per instance."""
    needles = Needles.build(instances, train, min_length=min_length)
    found = _json_quotes(program, needles, min_length)
    for path, source, tree in python_files(program, globs):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or isinstance(node.value, bool):
                continue
            hit = needles.quoted(node.value, min_length)
            if hit is None:
                continue
            line = getattr(node, "lineno", 0)
            what = f"quotes held-out instance {hit}"
            if isinstance(node.value, float):
                what += f" ({node.value!r})"
            found.append(Finding(path, line, _line(source, line), what))
    return found


def _json_quotes(program: Program, needles: Needles, min_length: int) -> list[Finding]:
    """Values of the program's JSON files that quote a held-out instance (a file that is not
    JSON is not data any agent reads as such: left alone).

    Raises:
        Unanalysable: A JSON file too deep to read.
    """
    found: list[Finding] = []
    for path in sorted(program):
        if not path.endswith(".json"):
            continue
        source = program[path].decode("utf-8", errors="replace")
        try:
            data = json.loads(source)
        except ValueError:
            continue
        except RecursionError:
            raise Unanalysable(f"{path} is too deep to analyse") from None
        for leaf in _leaves(data):
            if isinstance(leaf, bool):
                continue
            hit = needles.quoted(leaf, min_length)
            if hit is not None:
                line = _json_line(source, leaf)
                found.append(
                    Finding(path, line, _line(source, line), f"quotes held-out instance {hit}")
                )
    return found


def _json_line(source: str, value: Any) -> int:
    """The first line of ``source`` that holds ``value`` as JSON writes it (0: not found)."""
    text = json.dumps(value)
    return next((n for n, line in enumerate(source.splitlines(), 1) if text in line), 0)
