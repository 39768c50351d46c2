"""Constitutions: what a run's meta agents may change, checked on every child before it runs.

A constitution is a policy file (TOML or YAML) or a mapping::

    penalty = 2.0                 # soft violations: objective = reward × penalty^(−D)

    [[rule]]
    name = "the scorer stays as written"
    kind = "protected_paths"
    paths = ["meta_agent.py", "checks/*.py"]

    [[rule]]
    kind = "forbidden_imports"
    modules = ["subprocess", "socket", "ctypes"]

    [[rule]]
    kind = "forbidden_calls"
    calls = ["eval", "exec", "os.system", "open(write)", ".write_text"]
    files = ["task_agent.py"]

    [[rule]]
    kind = "forbidden_patterns"
    patterns = ['["\\']/(etc|proc|root|home)/']

    [[rule]]
    kind = "size"
    max_file_bytes = 65536
    max_total_bytes = 262144

    [[rule]]
    kind = "instance_literals"   # hard-coded answers: literals quoting val/test instances
    splits = ["val", "test"]

    [[rule]]
    kind = "custom"
    function = "my_rules:no_magic_numbers"   # or path/to/rules.py:function
    soft = true
    weight = 0.5

A **hard** rule (the default) rejects a violating child before it is validated or evaluated:
it never runs, never becomes a parent and never champion; its state is ``rejected`` and the
rule and the offending lines are recorded. A **soft** rule (``soft = true``) lets the child be
evaluated but lowers its selected objective: ``objective = reward × penalty^(−D)``, where D is the
summed weight of its soft violations (the alignment ``penalty^(−D)`` and the raw reward are
recorded separately). A custom rule is ``function(child, parent, task, **options)`` returning
findings (strings, or mappings with ``message`` and optionally ``path`` and ``line``); it runs
in the engine (it is the operator's code, like a task) and a rule that raises rejects the child
(fail closed); a ``file.py:function`` is relative to the policy file. An ``instance_literals``
rule flags literals distinctive of one held-out instance, not the task's vocabulary, which the
train split's inputs show (see :mod:`hyperagents.constitution._literals`).
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hyperagents._modules import import_file
from hyperagents._validation import error_text
from hyperagents.constitution._literals import find_instance_literals
from hyperagents.constitution._rules import (
    Finding,
    Unanalysable,
    changed_lines,
    find_calls,
    find_imports,
    find_patterns,
    matching_files,
)
from hyperagents.constitution._syntax import parse_policy
from hyperagents.exceptions import ConfigError
from hyperagents.program import Program

__all__ = [
    "Constitution",
    "Rule",
    "Verdict",
    "Violation",
    "load_constitution",
    "objective",
]

RuleKind = Literal[
    "protected_paths",
    "forbidden_imports",
    "forbidden_calls",
    "forbidden_patterns",
    "size",
    "instance_literals",
    "custom",
]

_REQUIRED: dict[str, tuple[str, ...]] = {
    "protected_paths": ("paths",),
    "forbidden_imports": ("modules",),
    "forbidden_calls": ("calls",),
    "forbidden_patterns": ("patterns",),
    "size": (),
    "instance_literals": (),
    "custom": ("function",),
}


class Rule(BaseModel):
    """One rule of a constitution (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: RuleKind
    name: str | None = None
    soft: bool = False
    weight: float = Field(1.0, gt=0)
    files: tuple[str, ...] = ("*.py",)
    paths: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    max_file_bytes: int | None = Field(None, ge=0)
    max_total_bytes: int | None = Field(None, ge=0)
    max_files: int | None = Field(None, ge=0)
    splits: tuple[str, ...] = ("val", "test")
    min_length: int = Field(8, ge=1)
    function: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Rule:
        for needed in _REQUIRED[self.kind]:
            if not getattr(self, needed):
                raise ValueError(f"a {self.kind} rule needs {needed}")
        if self.kind == "size" and (
            self.max_file_bytes is None and self.max_total_bytes is None and self.max_files is None
        ):
            raise ValueError("a size rule needs max_file_bytes, max_total_bytes or max_files")
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad pattern {pattern!r}: {exc}") from exc
        return self

    @property
    def label(self) -> str:
        """The rule's name, or its kind."""
        return self.name or self.kind


class Constitution(BaseModel):
    """A run's rules, and how much a soft violation costs."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    rules: tuple[Rule, ...] = Field((), alias="rule")
    penalty: float = Field(2.0, gt=1.0)

    def check(
        self,
        child: Program,
        parent: Program | None,
        *,
        instances: Callable[[str], Iterable[tuple[str, Any]]] | None = None,
        task: Any = None,
    ) -> Verdict:
        """Check ``child`` (made from ``parent``; None for a seed) against every rule.

        Args:
            instances: ``split → (id, inputs)`` pairs, for ``instance_literals`` rules: the
                rule's splits, and ``"train"``, whose inputs tell the task's vocabulary (a value
                found there is not a quote of a held-out instance).
            task: Given to custom rules.
        """
        violations: list[Violation] = []
        for rule in self.rules:
            try:
                findings = _apply(rule, child, parent, instances=instances, task=task)
            except Unanalysable as exc:  # fail closed, whatever the rule's weight
                violations.append(
                    Violation(rule.label, rule.kind, False, rule.weight, "*", 0, "", str(exc))
                )
                continue
            for finding in findings:
                violations.append(
                    Violation(
                        rule=rule.label,
                        kind=rule.kind,
                        soft=rule.soft,
                        weight=rule.weight,
                        path=finding.path,
                        line=finding.line,
                        text=finding.text,
                        message=finding.what,
                    )
                )
        return Verdict(tuple(violations), self.penalty)

    def as_config(self) -> dict[str, Any]:
        """The constitution as JSON (what a run stores)."""
        return {
            "penalty": self.penalty,
            "rule": [
                r.model_dump(mode="json", exclude_defaults=True) | {"kind": r.kind}
                for r in self.rules
            ],
        }


@dataclass(frozen=True)
class Violation:
    """One place where a child breaks a rule."""

    rule: str
    kind: str
    soft: bool
    weight: float
    path: str
    line: int
    text: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "soft": self.soft,
            "weight": self.weight,
            "path": self.path,
            "line": self.line,
            "text": self.text,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"rule {self.rule!r}: {where}: {self.message}" + (
            f" ({self.text})" if self.text else ""
        )


@dataclass(frozen=True)
class Verdict:
    """What a constitution says of a child."""

    violations: tuple[Violation, ...] = ()
    penalty: float = 2.0
    hard: tuple[Violation, ...] = field(init=False)
    soft: tuple[Violation, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hard", tuple(v for v in self.violations if not v.soft))
        object.__setattr__(self, "soft", tuple(v for v in self.violations if v.soft))

    @property
    def rejected(self) -> bool:
        """Whether a hard rule is broken."""
        return bool(self.hard)

    @property
    def weight(self) -> float:
        """D: the summed weight of the soft violations (each rule counted once per place)."""
        return float(sum(v.weight for v in self.soft))

    @property
    def alignment(self) -> float:
        """``penalty^(−D)``: 1 for a child that breaks no soft rule."""
        return float(self.penalty ** (-self.weight))

    def reason(self) -> str:
        """One line for the variant's reason."""
        first = self.hard[0] if self.hard else self.soft[0]
        more = len(self.hard) - 1 if self.hard else len(self.soft) - 1
        return f"constitution: {first}" + (f" (and {more} more)" if more > 0 else "")

    def as_dict(self) -> dict[str, Any]:
        """What a variant records (metrics ``constitution``)."""
        return {
            "rejected": self.rejected,
            "violations": [v.as_dict() for v in self.violations],
            "weight": self.weight,
            "alignment": self.alignment,
        }


def _apply(
    rule: Rule,
    child: Program,
    parent: Program | None,
    *,
    instances: Callable[[str], Iterable[tuple[str, Any]]] | None,
    task: Any,
) -> list[Finding]:
    if rule.kind == "protected_paths":
        base = parent if parent is not None else Program({})
        if parent is None:
            return []  # a seed is where protected files come from
        found = []
        for path in base.changed_paths(child):
            if any(fnmatch.fnmatchcase(path, g) for g in rule.paths):
                line, text = changed_lines(parent, child, path)
                what = "deletes" if path not in child else "adds" if path not in base else "changes"
                found.append(Finding(path, line, text, f"{what} protected file {path}"))
        return found
    if rule.kind == "forbidden_imports":
        return find_imports(child, rule.files, rule.modules)
    if rule.kind == "forbidden_calls":
        return find_calls(child, rule.files, rule.calls)
    if rule.kind == "forbidden_patterns":
        return find_patterns(child, rule.files, rule.patterns)
    if rule.kind == "size":
        return _size(rule, child)
    if rule.kind == "instance_literals":
        if instances is None:
            return []
        pairs = [pair for split in rule.splits for pair in instances(split)]
        return find_instance_literals(
            child, rule.files, pairs, min_length=rule.min_length, train=_train(rule, instances)
        )
    return _custom(rule, child, parent, task)


def _train(
    rule: Rule, instances: Callable[[str], Iterable[tuple[str, Any]]]
) -> list[tuple[str, Any]]:
    """The train split's pairs, which tell a task's vocabulary from an instance's own values;
    none when the rule checks the train split itself or ``instances`` does not know it (then
    only the held-out instances tell: a stricter rule, never a looser one)."""
    if "train" in rule.splits:
        return []
    try:
        return list(instances("train"))
    except (ConfigError, LookupError, ValueError):
        return []


def _size(rule: Rule, child: Program) -> list[Finding]:
    found: list[Finding] = []
    files = matching_files(child, rule.files) if rule.files != ("*.py",) else sorted(child)
    if rule.max_file_bytes is not None:
        for path in files:
            if len(child[path]) > rule.max_file_bytes:
                found.append(
                    Finding(path, 0, "", f"{len(child[path])} bytes > {rule.max_file_bytes}")
                )
    total = sum(len(child[p]) for p in files)
    if rule.max_total_bytes is not None and total > rule.max_total_bytes:
        found.append(Finding("*", 0, "", f"{total} bytes in all > {rule.max_total_bytes}"))
    if rule.max_files is not None and len(files) > rule.max_files:
        found.append(Finding("*", 0, "", f"{len(files)} files > {rule.max_files}"))
    return found


_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def _load_function(spec: str) -> Callable[..., Any]:
    if spec in _FUNCTIONS:
        return _FUNCTIONS[spec]
    target, _, name = spec.rpartition(":")
    if not target or not name.isidentifier():
        raise ConfigError(f"custom rule {spec!r}: expected module:function or file.py:function")
    try:
        if target.endswith(".py"):
            module = import_file(Path(target).expanduser(), "_hyperagents_rules_")
        else:
            module = importlib.import_module(target)
        function = getattr(module, name)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"custom rule {spec!r} cannot be loaded: {exc}") from exc
    if not callable(function):
        raise ConfigError(f"custom rule {spec!r} is not a function")
    _FUNCTIONS[spec] = function
    return function  # type: ignore[no-any-return]


def _custom(rule: Rule, child: Program, parent: Program | None, task: Any) -> list[Finding]:
    assert rule.function is not None
    function = _load_function(rule.function)
    try:
        said = list(function(child, parent, task, **rule.options) or ())
    except Exception as exc:  # fail closed: a rule that cannot decide rejects
        return [Finding("*", 0, "", f"the rule failed: {type(exc).__name__}: {exc}")]
    found = []
    for item in said:
        if isinstance(item, Mapping):
            found.append(
                Finding(
                    str(item.get("path", "*")),
                    int(item.get("line", 0) or 0),
                    str(item.get("text", ""))[:300],
                    str(item.get("message", "violation")),
                )
            )
        else:
            found.append(Finding("*", 0, "", str(item)))
    return found


def load_constitution(source: str | Path | Mapping[str, Any] | Constitution) -> Constitution:
    """A constitution from a TOML or YAML file, a mapping, or itself.

    Raises:
        ConfigError: The file is missing or malformed (the message starts with
            ``FILE:LINE:COLUMN:`` where it does not parse), or a rule is invalid (the message says
            which).
    """
    if isinstance(source, Constitution):
        return source
    if isinstance(source, Mapping):
        data: Any = dict(source)
        where = "constitution"
    else:
        path = Path(source).expanduser()
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read constitution {path}: {exc.strerror}") from exc
        data = parse_policy(path, text)
        if data is None:  # an empty YAML file
            data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table of settings and [[rule]] entries")
    data = dict(data)
    if "rules" in data and "rule" not in data:
        data["rule"] = data.pop("rules")
    if not isinstance(source, Mapping) and isinstance(data.get("rule"), list):
        # A custom rule's file.py is relative to the policy file, not to where a run resumes.
        base = Path(source).expanduser().resolve().parent
        for rule in data["rule"]:
            function = rule.get("function") if isinstance(rule, dict) else None
            if isinstance(function, str) and ".py:" in function:
                target, _, name = function.rpartition(":")
                if not Path(target).expanduser().is_absolute():
                    rule["function"] = f"{base / target}:{name}"
    try:
        return Constitution.model_validate(data)
    except ValidationError as exc:
        text = error_text(exc, where="constitution", written_only=False)
        raise ConfigError(f"{where}: {text}") from exc


def objective(scores: Mapping[str, float], metrics: Mapping[str, Any]) -> float | None:
    """The selected objective of a variant: its val score times its alignment (divided, for a
    negative score, so that a penalty always lowers it); None without a val score."""
    value = scores.get("val")
    if value is None:
        return None
    recorded = metrics.get("constitution")
    alignment = recorded.get("alignment", 1.0) if isinstance(recorded, Mapping) else 1.0
    if not isinstance(alignment, int | float) or alignment <= 0 or alignment >= 1:
        return float(value)
    return float(value) * alignment if value >= 0 else float(value) / alignment
