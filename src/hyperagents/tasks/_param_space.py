"""Checking a task agent's declared search space (``PARAMS`` and ``PARAM_SPACE``) before a run.

The offline meta agent tunes the values of a task agent's top-level ``PARAMS`` literal within the
space its ``PARAM_SPACE`` literal declares. It reads both defensively: an entry it cannot use is
skipped, so a typo (``"hi"`` for ``"high"``) would give a run whose every child says "no change".
This module reads the two literals without running the file and names every problem, so a run
is refused at creation with the key at fault instead.

A ``PARAM_SPACE`` entry is a dict with these keys (all optional except the bounds of a number):

* ``type``: ``"float"``, ``"int"``, ``"bool"`` or ``"choice"`` (default: from ``choices``, else
  from the value in ``PARAMS``);
* ``low``, ``high``: finite bounds of a float or int, ``low <= high``;
* ``scale``: ``"linear"`` (default) or ``"log"`` (needs ``low > 0``);
* ``choices``: a non-empty list of the values a ``choice`` may take;
* ``feature``: the input feature (a name, or a list of names) the parameter acts on.
"""

from __future__ import annotations

import ast
import difflib
import math
from typing import Any

from hyperagents.program import Program

__all__ = [
    "SPACE_KEYS",
    "param_space_errors",
    "program_param_space_errors",
    "space_kind",
    "top_level_assignments",
]

#: The keys a ``PARAM_SPACE`` entry may have.
SPACE_KEYS = ("choices", "feature", "high", "low", "scale", "type")
_TYPES = ("float", "int", "bool", "choice")
#: The keys that mean something for each kind (besides ``type`` and ``feature``).
_KIND_KEYS = {
    "float": ("high", "low", "scale"),
    "int": ("high", "low", "scale"),
    "choice": ("choices",),
    "bool": (),
}
_SCALES = ("linear", "log")


def program_param_space_errors(program: Program, path: str = "task_agent.py") -> list[str]:
    """The problems of ``program``'s declared search space (none if it declares none)."""
    if path not in program:
        return []
    try:
        source = program.text(path)
    except UnicodeDecodeError:
        return []  # not a Python source this check can read; validation reports it
    return [f"{path}: {error}" for error in param_space_errors(source)]


def param_space_errors(source: str) -> list[str]:
    """The problems of the ``PARAMS``/``PARAM_SPACE`` literals of a task agent's ``source``.

    Nothing is reported when the source declares no ``PARAM_SPACE`` or does not parse (a
    program that does not parse is the validation's to report).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return []
    nodes = top_level_assignments(tree)
    if "PARAM_SPACE" not in nodes:
        return []
    space, error = _literal(nodes["PARAM_SPACE"], "PARAM_SPACE")
    if error is not None:
        return [error]
    if "PARAMS" not in nodes:
        return ["PARAM_SPACE is declared but PARAMS is not: the values it bounds live in PARAMS"]
    params, error = _literal(nodes["PARAMS"], "PARAMS")
    if error is not None:
        return [error]
    if not isinstance(space, dict):
        return [f"PARAM_SPACE must be a dict literal, got {type(space).__name__}"]
    if not isinstance(params, dict):
        return [f"PARAMS must be a dict literal, got {type(params).__name__}"]
    errors: list[str] = []
    for name, spec in space.items():
        errors.extend(_entry_errors(name, spec, params))
    return errors


def top_level_assignments(tree: ast.Module) -> dict[str, ast.expr]:
    """The value assigned last to each plain top-level name (``X = ...`` or ``X: T = ...``)."""
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
        elif (
            isinstance(node, ast.AnnAssign)
            and node.value is not None
            and isinstance(node.target, ast.Name)
        ):
            found[node.target.id] = node.value
    return found


def _literal(node: ast.expr, name: str) -> tuple[Any, str | None]:
    """The literal value of ``node``, or an error naming ``name`` if it is not a literal."""
    try:
        return ast.literal_eval(node), None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, (
            f"{name} must be a literal (the offline meta agent reads it without running the "
            f"file), not an expression on line {node.lineno}"
        )


def _entry_errors(name: Any, spec: Any, params: dict[Any, Any]) -> list[str]:
    """The problems of one ``PARAM_SPACE`` entry."""
    where = f"PARAM_SPACE[{name!r}]"
    if not isinstance(name, str):
        return [f"{where}: a parameter's name must be a string"]
    if name not in params:
        hint = _did_you_mean(name, [key for key in params if isinstance(key, str)])
        return [f"{where}: no parameter {name!r} in PARAMS{hint}"]
    if not isinstance(spec, dict):
        return [f"{where}: must be a dict (keys: {', '.join(SPACE_KEYS)})"]
    errors = [
        f"{where}: unknown key {key!r}{_did_you_mean(str(key), SPACE_KEYS)} "
        f"(allowed: {', '.join(SPACE_KEYS)})"
        for key in spec
        if key not in SPACE_KEYS
    ]
    errors.extend(_feature_errors(where, spec.get("feature")))
    kind = space_kind(spec, params[name])
    if kind is not None:
        errors.extend(
            f"{where}: {key!r} does not apply to a {kind} parameter"
            for key in spec
            if key in SPACE_KEYS and key not in ("type", "feature", *_KIND_KEYS[kind])
        )
    if kind is None:
        errors.append(f"{where}: type {spec.get('type')!r} is not one of {', '.join(_TYPES)}")
    elif kind == "choice":
        errors.extend(_choice_errors(where, spec, params[name]))
    elif kind in ("float", "int"):
        errors.extend(_number_errors(where, kind, spec, params[name]))
    elif not isinstance(params[name], bool):
        errors.append(f"{where}: a bool parameter, but PARAMS[{name!r}] = {params[name]!r}")
    return errors


def space_kind(spec: dict[Any, Any], value: Any) -> str | None:
    """The parameter's kind: the declared ``type``, else guessed as the meta agent does."""
    if "type" in spec:
        declared = spec["type"]
        return declared if declared in _TYPES else None
    if "choices" in spec:
        return "choice"
    if isinstance(value, bool):
        return "bool"
    return "int" if isinstance(value, int) else "float"


def _number_errors(where: str, kind: str, spec: dict[Any, Any], value: Any) -> list[str]:
    """The problems of a float or int entry: its bounds, scale and current value."""
    errors: list[str] = []
    low: Any = spec.get("low")
    high: Any = spec.get("high")
    for key, bound in (("low", low), ("high", high)):
        if key not in spec:
            errors.append(f"{where}: a {kind} needs {key!r}")
        elif not _finite(bound):
            errors.append(f"{where}: {key!r} must be a finite number, got {bound!r}")
    scale = spec.get("scale", "linear")
    if scale not in _SCALES:
        errors.append(f"{where}: scale {scale!r} is not one of {', '.join(_SCALES)}")
    if errors:
        return errors
    if high < low:
        errors.append(f"{where}: low {low!r} is above high {high!r}")
    if scale == "log" and low <= 0:
        errors.append(f"{where}: scale 'log' needs low > 0, got low {low!r}")
    if not _finite(value):
        errors.append(f"{where}: the value in PARAMS must be a finite number, got {value!r}")
    elif not low <= value <= high:
        errors.append(f"{where}: the value in PARAMS, {value!r}, is outside [{low!r}, {high!r}]")
    return errors


def _choice_errors(where: str, spec: dict[Any, Any], value: Any) -> list[str]:
    """The problems of a choice entry."""
    choices = spec.get("choices")
    if not isinstance(choices, list | tuple) or not choices:
        return [f"{where}: a choice needs 'choices', a non-empty list, got {choices!r}"]
    if value not in choices:
        return [f"{where}: the value in PARAMS, {value!r}, is not among its choices"]
    return []


def _feature_errors(where: str, feature: Any) -> list[str]:
    """The problems of a ``feature`` tag (a name or a list of names)."""
    if feature is None or isinstance(feature, str):
        return []
    if isinstance(feature, list | tuple) and all(isinstance(item, str) for item in feature):
        return []
    return [f"{where}: 'feature' must be a name or a list of names, got {feature!r}"]


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _did_you_mean(word: str, options: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or nothing."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
