"""The seed test agent of a task and its trusted mutators.

The seed test agent (``seeds/test_agent.py``) is generic: it edits strings. For a task it is
written with the task's declaration (:meth:`hyperagents.tasks.Task.arena_spec`): its seed
inputs (``BASES``), the characters it inserts (``ALPHABET``), the generic edits in use
(``GENERIC``) and a weight for each edit (``PARAMS`` and ``PARAM_SPACE``: ``w_<edit>``, the
number of edits, the share of edits that start from a hard input); the task's own mutators, if
it has any, go beside it as ``task_mutators.py``. The same edits, run here as trusted code
(:class:`TrustedMutators`), draw the held-out adversarial suite.
"""

from __future__ import annotations

import ast
import random
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hyperagents.arena.seeds import test_agent as generic
from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.tasks import ArenaSpec

__all__ = ["TASK_MUTATORS", "TrustedMutators", "rule_library", "task_mutators"]

#: The file of a test agent that holds the task's own mutators.
TASK_MUTATORS = "task_mutators.py"
_TEST_AGENT = "test_agent.py"
#: Defaults of the written parameters: each edit's weight, the edits per input, exploitation.
_WEIGHT = 1.0
_MAX_EDITS = 2
_EXPLOIT = 0.3


def task_mutators(spec: ArenaSpec, *, task: str) -> dict[str, Callable[[str, random.Random], str]]:
    """The task's own mutators (``MUTATORS`` of :attr:`ArenaSpec.mutators`, run here as the
    task's trusted code; none when it gives no source).

    Raises:
        ConfigError: The source fails to run or defines no ``MUTATORS`` dict of callables.
    """
    if not spec.mutators:
        return {}
    module = types.ModuleType("task_mutators")
    try:
        exec(compile(spec.mutators, f"<{task} task_mutators>", "exec"), module.__dict__)
    except Exception as exc:
        raise ConfigError(f"task {task!r}: its arena mutators fail to load: {exc!r}") from exc
    found = module.__dict__.get("MUTATORS")
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and callable(v) for k, v in found.items()
    ):
        raise ConfigError(f"task {task!r}: its arena mutators define no MUTATORS dict")
    return dict(found)


def _params(names: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The test agent's ``PARAMS`` and ``PARAM_SPACE`` for edits ``names``."""
    params: dict[str, Any] = {f"w_{name}": _WEIGHT for name in names}
    params |= {"max_edits": _MAX_EDITS, "exploit": _EXPLOIT}
    space: dict[str, Any] = {f"w_{n}": {"type": "float", "low": 0.0, "high": 4.0} for n in names}
    space["max_edits"] = {"type": "int", "low": 1, "high": 4}
    space["exploit"] = {"type": "float", "low": 0.0, "high": 1.0}
    return params, space


def _literal(value: Any) -> str:
    """``value`` as Python source, a dict or a tuple one entry a line."""
    if isinstance(value, dict):
        return "{\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in value.items()) + "}"
    if isinstance(value, tuple) and len(value) > 2:
        return "(\n" + "".join(f"    {item!r},\n" for item in value) + ")"
    return repr(value)


def _write(source: str, values: Mapping[str, Any]) -> str:
    """``source`` with its top-level assignments to the names of ``values`` rewritten."""
    lines = source.splitlines(keepends=True)
    spans = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in values:
                spans.append((node.lineno - 1, node.end_lineno or node.lineno, target.id))
    for start, end, name in sorted(spans, reverse=True):
        lines[start:end] = [f"{name} = {_literal(values[name])}\n"]
    return "".join(lines)


@dataclass(frozen=True)
class TrustedMutators:
    """A task's seed test agent's edits, run here (trusted) with its written parameters.

    Attributes:
        spec: The task's checked arena declaration.
        table: The edits by name (generic ones first).
        params: The seed test agent's ``PARAMS``.
    """

    spec: ArenaSpec
    table: dict[str, Callable[[str, random.Random], str]]
    params: dict[str, Any]

    @classmethod
    def of(cls, spec: ArenaSpec, *, task: str) -> TrustedMutators:
        """The edits of ``spec`` (a checked declaration of the task named ``task``).

        Raises:
            ConfigError: The task's mutators fail to load.
        """
        own = task_mutators(spec, task=task)
        table = generic.build_table(spec.generic, spec.seeds, spec.alphabet, own)
        params, _ = _params(list(table))
        return cls(spec, table, params)

    def mutate(self, value: str, rng: random.Random, *, max_edits: int | None = None) -> str:
        """``value`` after the seed test agent's seeded edits (at most ``max_edits``)."""
        params = self.params if max_edits is None else {**self.params, "max_edits": max_edits}
        return generic.mutate(value, rng, params, self.table)

    def program(self) -> Program:
        """The seed test agent of the task: ``test_agent.py`` written with the declaration,
        and ``task_mutators.py`` where the task has its own mutators."""
        params, space = _params(list(self.table))
        values = {"PARAMS": params, "PARAM_SPACE": space, "BASES": self.spec.seeds}
        values |= {"ALPHABET": self.spec.alphabet, "GENERIC": tuple(self.spec.generic)}
        source = _write(_seed_source(), values)
        files = {_TEST_AGENT: source}
        if self.spec.mutators:
            files[TASK_MUTATORS] = self.spec.mutators
        return Program(files)


def _seed_source() -> str:
    """The generic seed test agent's source."""
    return resources.files("hyperagents.arena.seeds").joinpath(_TEST_AGENT).read_text("utf-8")


def rule_library(spec: ArenaSpec) -> dict[str, str]:
    """The rule synthesis's library for the ``arena`` meta agent: the task's
    ``rule_features`` and ``rule_candidates``, or the generic ones (``seeds/rule_*.py``)."""
    if spec.rule_features:
        return {"rule_features": spec.rule_features, "rule_candidates": spec.rule_candidates}
    folder = resources.files("hyperagents.arena.seeds")
    return {
        name: folder.joinpath(f"{name}.py").read_text("utf-8")
        for name in ("rule_features", "rule_candidates")
    }
