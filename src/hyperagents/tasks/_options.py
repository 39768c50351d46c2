"""Task options: the keyword arguments a task class is created with.

A task spec names a class; its options (``--task-option KEY=VALUE``, or ``task_options`` in a
run's config) are given to the class's constructor as keyword arguments. They are stored with
the run (in its config), so a resumed or replayed run, and every listing, rebuilds the same
task. Options are JSON values: what is stored is what the task gets, on creation and on resume.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from hyperagents.exceptions import ConfigError, TaskError

_T = TypeVar("_T")

__all__ = [
    "check_task_options",
    "create_task",
    "format_task_options",
    "merge_task_options",
    "parse_task_option",
    "parse_task_options",
    "stored_task_options",
    "task_keywords",
    "task_label",
]


def _no_constant(text: str) -> Any:
    """Refuse ``NaN``, ``Infinity`` and ``-Infinity``: such a value stays a string."""
    raise ValueError(text)


def parse_task_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as a key and a value: VALUE parsed as JSON when it parses (``3``,
    ``0.5``, ``true``, ``null``, ``[1, 2]``, ``{"a": 1}``, ``"3"``), else the string as given
    (``name=demo``, ``path=data/train.csv``, ``empty=``).

    Raises:
        ConfigError: No ``=``, or KEY is not a Python identifier.
    """
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals or not key.isidentifier():
        raise ConfigError(
            f"task option {text!r}: expected KEY=VALUE, KEY a Python identifier (a keyword "
            "argument of the task class)"
        )
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        value = raw
    return key, value


def parse_task_options(items: Iterable[str]) -> dict[str, Any]:
    """Several ``KEY=VALUE`` options (see :func:`parse_task_option`) as a mapping.

    Raises:
        ConfigError: One is malformed, or a key is given twice.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, value = parse_task_option(item)
        if key in options:
            raise ConfigError(f"task option {key!r} is given twice")
        options[key] = value
    return options


def _finite(value: Any) -> bool:
    """Whether every number inside ``value`` (a JSON value) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def check_task_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` as they are stored and given to the task: keys that are identifiers, values
    as a JSON round trip leaves them (a tuple becomes a list), so a resumed run's task gets
    exactly what the first one got.

    Raises:
        ConfigError: A key is not an identifier, or a value is not JSON (or not finite).
    """
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(f"task option {key!r}: its name must be a Python identifier")
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"task option {key!r}: {value!r} is not a JSON value") from exc
        checked[key] = json.loads(text)
        if not _finite(checked[key]):  # pragma: no cover - allow_nan=False refuses them
            raise ConfigError(f"task option {key!r}: {value!r} is not finite")
    return checked


def format_task_options(options: Mapping[str, Any]) -> str:
    """Options as ``KEY=VALUE`` pairs, each value as JSON (``n_train=100, name="demo"``)."""
    return ", ".join(
        f"{key}={json.dumps(value, separators=(',', ':'))}" for key, value in options.items()
    )


def merge_task_options(
    config: Mapping[str, Any], options: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The ``task_options`` of a run config made of ``config`` (a config file's values) with
    ``options`` (``--task-option``) given over its own, key by key; None when ``options`` is
    empty (the config's stay as they are).

    Raises:
        ConfigError: The config's ``task_options`` is not a mapping.
    """
    if not options:
        return None
    base = config.get("task_options") or {}
    if not isinstance(base, Mapping):
        raise ConfigError(f"invalid run config: task_options: {base!r} is not a mapping")
    return {**base, **options}


def stored_task_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The task options a run's stored config holds (its ``task_options``; none for runs
    stored before there were options)."""
    options = config.get("task_options")
    return dict(options) if isinstance(options, Mapping) else {}


#: The longest option value a task's label shows whole (JSON characters).
LABEL_VALUE_CHARS = 60


def _shown_value(value: Any) -> str:
    """An option's value as a label shows it: its JSON, or for a long one its size
    (``[256 items]``, ``{3 keys}``) or its start (``"abc…``)."""
    text = json.dumps(value, separators=(",", ":"))
    if len(text) <= LABEL_VALUE_CHARS:
        return text
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, dict):
        return f"{{{len(value)} keys}}"
    return text[: LABEL_VALUE_CHARS - 1] + "…"


def task_label(spec: str, options: Mapping[str, Any] | None) -> str:
    """How a task is shown: its spec, and its options when it has any
    (``review (n_train=100, seed=3)``; a long value by its size, e.g. the live examples
    of an improvement run: ``live (base="support", train=[40 items], …)``)."""
    if not options:
        return spec
    return f"{spec} ({', '.join(f'{k}={_shown_value(v)}' for k, v in options.items())})"


def _keywords(cls: type) -> tuple[set[str] | None, list[str]]:
    """The keyword arguments ``cls(...)`` takes (None: any, it has ``**kwargs``; or its
    signature cannot be read) and those it needs (no default)."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None, []
    names: set[str] | None = set()
    required: list[str] = []
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            names = None
        elif parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            if names is not None:
                names.add(parameter.name)
            if parameter.default is inspect.Parameter.empty:
                required.append(parameter.name)
    return names, required


def task_keywords(cls: type) -> str:
    """The options ``cls`` takes, as ``hyperagents tasks`` lists them: each keyword with its
    default (``seed=0, n_train=400``), a required one alone, ``**kwargs`` as ``...``."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return "?"
    shown: list[str] = []
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            shown.append("...")
        elif parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            default = parameter.default
            empty = default is inspect.Parameter.empty
            shown.append(parameter.name if empty else f"{parameter.name}={default!r}")
    return ", ".join(shown)


def create_task(cls: type[_T], options: Mapping[str, Any], spec: str) -> _T:
    """``cls(**options)``, with an error that names the option when it does not fit.

    Raises:
        TaskError: An option the constructor does not take, a keyword it needs that is not
            given, or the constructor raised (the message names the options given).
    """
    takes, required = _keywords(cls)
    if takes is not None:
        unknown = sorted(set(options) - takes)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(takes), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            offered = ", ".join(sorted(takes)) or "none"
            raise TaskError(
                f"task {spec!r} takes no option {unknown[0]!r} ({hint}its options: {offered})"
            )
    missing = [name for name in required if name not in options]
    if missing:
        raise TaskError(
            f"task {spec!r} needs the option {missing[0]!r} (give --task-option {missing[0]}=VALUE)"
        )
    try:
        return cls(**options)
    except Exception as exc:
        given = f" with {format_task_options(options)}" if options else ""
        raise TaskError(f"task {spec!r} could not be created{given}: {exc!r}") from exc
