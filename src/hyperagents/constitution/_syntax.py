"""Reading a policy file's text as TOML or YAML, with errors that say where: ``FILE:LINE:COL``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from hyperagents.exceptions import ConfigError

__all__ = ["parse_policy"]

#: Where ``tomllib`` says a problem is, at the end of its message (Python 3.11 to 3.13).
_TOML_WHERE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)$")


def parse_policy(path: Path, text: str) -> Any:
    """The data of a policy file: YAML for ``.yaml`` / ``.yml``, TOML otherwise.

    Raises:
        ConfigError: The text does not parse; the one-line message starts with
            ``FILE:LINE:COLUMN:`` (1-based) where the parser stopped.
    """
    if path.suffix.lower() in (".yaml", ".yml"):
        return _yaml(path, text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(path, text, exc)) from exc


def _end(text: str) -> tuple[int, int]:
    """The 1-based line and column just past the end of ``text``."""
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _toml_error(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> str:
    """``FILE:LINE:COL: not valid TOML: what`` for a ``tomllib`` error."""
    line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
    message = str(getattr(exc, "msg", None) or exc)
    found = _TOML_WHERE.search(message)
    if found is not None:
        message = message[: found.start()]
        if line is None:
            line, column = (int(found[1]), int(found[2])) if found[1] else _end(text)
    if line is None or column is None:
        return f"{path}: not valid TOML: {_one_line(message)}"
    return f"{path}:{line}:{column}: not valid TOML: {_one_line(message)}"


def _yaml(path: Path, text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = _one_line(exc.problem or exc.context or "syntax error")
        if exc.context and exc.problem and exc.context_mark is not None:
            start = exc.context_mark
            what += f" ({exc.context} at line {start.line + 1}, column {start.column + 1})"
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {_one_line(what)}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_one_line(str(exc))}") from exc
