"""The checks behind a constitution's rules: on the program's files and their Python AST."""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from hyperagents.program import Program

__all__ = [
    "Finding",
    "changed_lines",
    "find_calls",
    "find_imports",
    "find_patterns",
    "matching_files",
    "module_twins",
    "python_files",
]


@dataclass(frozen=True)
class Finding:
    """Where a rule found what it forbids."""

    path: str
    line: int
    text: str
    what: str


def matching_files(program: Program, globs: Sequence[str]) -> list[str]:
    """The program's paths that match any of ``globs`` (``fnmatch``; ``*`` crosses ``/``)."""
    return [p for p in sorted(program) if any(fnmatch.fnmatchcase(p, g) for g in globs)]


def _text(program: Program, path: str) -> str | None:
    try:
        return program[path].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _line(source: str, number: int) -> str:
    lines = source.splitlines()
    return lines[number - 1].strip()[:300] if 0 < number <= len(lines) else ""


class Unanalysable(Exception):
    """A file the rules cannot analyse (so a child holding it is rejected: fail closed)."""


#: Compiled modules Python can import but no AST rule can read.
_BINARY_MODULES = (".pyc", ".pyo", ".so", ".pyd")


def python_files(program: Program, globs: Sequence[str]) -> Iterator[tuple[str, str, ast.AST]]:
    """``(path, source, tree)`` of the matching Python files, parsed from their bytes (so a
    coding declaration is honoured as Python would). A file that does not parse is left to
    validation, which rejects it.

    Raises:
        Unanalysable: The program holds a compiled module, or a file too deep or large to parse.
    """
    for path in sorted(program):
        if path.endswith(_BINARY_MODULES):
            raise Unanalysable(f"{path} is a compiled module, which no rule can check")
    for path in matching_files(program, globs):
        if not path.endswith(".py"):
            continue
        data = program[path]
        try:
            tree = ast.parse(data, filename=path)
        except (SyntaxError, ValueError):
            continue
        except (MemoryError, RecursionError) as exc:
            why = f"{path} is too deep or large to analyse ({type(exc).__name__})"
            raise Unanalysable(why) from None
        source = data.decode("utf-8", errors="replace")
        yield path, source, tree


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local names bound by imports → what they name (``o`` → ``os``, ``s`` → ``os.system``)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    first = alias.name.split(".")[0]
                    names[first] = first
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _resolve(name: str, aliases: Mapping[str, str]) -> str:
    first, _, rest = name.partition(".")
    base = aliases.get(first, first)
    return f"{base}.{rest}" if rest else base


def _imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module an AST imports, with its line: statements, ``__import__('x')`` and
    ``importlib.import_module('x')`` with a literal name."""
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            target = _resolve(name, aliases) if name else None
            literal = node.args[0] if node.args else None
            if (
                target in ("__import__", "builtins.__import__", "importlib.import_module")
                and isinstance(literal, ast.Constant)
                and isinstance(literal.value, str)
            ):
                yield node.lineno, literal.value


#: Modules that give what a standard module gives under another name, by top-level name: the
#: C implementations and platform modules the standard one is written over (besides ``_NAME``,
#: the twin of every ``NAME``; see :func:`module_twins`).
_TWINS: dict[str, tuple[str, ...]] = {
    "os": ("posix", "nt"),
    "subprocess": ("_posixsubprocess", "_winapi"),
    "multiprocessing": ("_multiprocessing", "_posixshmem", "_posixsubprocess"),
    "importlib": ("_imp", "_frozen_importlib", "_frozen_importlib_external", "imp"),
    "threading": ("_thread",),
    "builtins": ("__builtin__",),
    "pickle": ("_pickle",),
    "socket": ("_socket",),
    "ssl": ("_ssl",),
    "sqlite3": ("_sqlite3",),
}


def module_twins(forbidden: str) -> tuple[str, ...]:
    """``forbidden`` and the names that import the same thing: ``_socket`` for ``socket``,
    ``_posixsubprocess`` for ``subprocess``, ``posix`` / ``nt`` for ``os`` (and ``posix.system``
    for ``os.system``)…, so forbidding a module forbids its C-level twin."""
    top, dot, rest = forbidden.partition(".")
    tops = {top, *_TWINS.get(top, ())}
    if not top.startswith("_"):
        tops.add(f"_{top}")
    return tuple(sorted(f"{name}{dot}{rest}" for name in tops))


def _module_matches(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


def find_imports(program: Program, globs: Sequence[str], modules: Sequence[str]) -> list[Finding]:
    """Imports of any of ``modules``: a module forbids its submodules and its twins too
    (:func:`module_twins`)."""
    twins = {forbidden: module_twins(forbidden) for forbidden in modules}
    found: list[Finding] = []
    for path, source, tree in python_files(program, globs):
        seen: set[tuple[int, str]] = set()
        for line, module in _imported_modules(tree):
            for forbidden in modules:
                if (line, forbidden) in seen:
                    continue
                twin = next((t for t in twins[forbidden] if _module_matches(module, t)), None)
                if twin is not None:
                    seen.add((line, forbidden))
                    what = f"imports {module}" + ("" if twin == forbidden else f" ({forbidden})")
                    found.append(Finding(path, line, _line(source, line), what))
    return found


_WRITE_MODES = re.compile(r"[wax+]")


def _opens_for_writing(call: ast.Call) -> bool:
    mode: ast.AST | None = call.args[1] if len(call.args) > 1 else None
    for keyword in call.keywords:
        if keyword.arg == "mode":
            mode = keyword.value
    return (
        isinstance(mode, ast.Constant)
        and isinstance(mode.value, str)
        and bool(_WRITE_MODES.search(mode.value))
    )


def _call_matches(resolved: str, call: ast.Call, forbidden: str) -> bool:
    """``name`` matches a bare call or ``builtins.name``; ``a.b`` matches that dotted target
    (in ``a`` or a twin of it, see :func:`module_twins`); ``.attr`` matches any method call of
    that name; ``open(write)`` matches an ``open`` call with a writing mode."""
    if forbidden == "open(write)":
        opens = resolved in ("open", "builtins.open") or any(
            resolved in module_twins(name) for name in ("io.open", "os.fdopen")
        )
        return opens and _opens_for_writing(call)
    if forbidden.startswith("."):
        return resolved.endswith(forbidden)
    if "." not in forbidden:
        return resolved in (forbidden, f"builtins.{forbidden}")
    return resolved in module_twins(forbidden)  # os.system is posix.system too


def find_calls(program: Program, globs: Sequence[str], calls: Sequence[str]) -> list[Finding]:
    """Calls of any of ``calls`` (see :func:`_call_matches` for the forms), through aliases."""
    found: list[Finding] = []
    for path, source, tree in python_files(program, globs):
        aliases = _aliases(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            if name is None:
                # A method of a computed receiver, e.g. Path("x").write_text(...).
                if isinstance(node.func, ast.Attribute):
                    for forbidden in calls:
                        if forbidden == f".{node.func.attr}":
                            line = node.lineno
                            found.append(
                                Finding(path, line, _line(source, line), f"calls {forbidden}")
                            )
                continue
            resolved = _resolve(name, aliases)
            for forbidden in calls:
                if _call_matches(resolved, node, forbidden):
                    found.append(
                        Finding(path, node.lineno, _line(source, node.lineno), f"calls {forbidden}")
                    )
    return found


def find_patterns(program: Program, globs: Sequence[str], patterns: Sequence[str]) -> list[Finding]:
    """Lines of the matching text files that match any of the regular expressions."""
    compiled = [re.compile(p) for p in patterns]
    found: list[Finding] = []
    for path in matching_files(program, globs):
        source = program[path].decode("utf-8", errors="replace")
        for number, line in enumerate(source.splitlines(), start=1):
            for pattern in compiled:
                if pattern.search(line):
                    found.append(
                        Finding(path, number, line.strip()[:300], f"matches /{pattern.pattern}/")
                    )
    return found


def changed_lines(old: Program | None, new: Program, path: str) -> tuple[int, str]:
    """The first line of ``path`` that differs between ``old`` and ``new`` (1-based; 0 when
    the file was deleted), with its new text."""
    before = (_text(old, path) or "") if old is not None and path in old else ""
    after = (_text(new, path) or "") if path in new else ""
    a, b = before.splitlines(), after.splitlines()
    for number, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            return number, y.strip()[:300]
    if len(b) > len(a):
        return len(a) + 1, b[len(a)].strip()[:300]
    return (len(b) if b else 0), "(lines removed)" if b or a else "(file deleted)"
