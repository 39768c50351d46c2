"""What sandboxed code must not see: the task plug-ins' own files and the hyperagents package.

A task is trusted code with its labels; an installed plug-in keeps them in its own files (its
package, its data directories), often under a site-packages directory the sandbox must expose
for the interpreter. The sandboxes cover those files: every distribution that provides a
``hyperagents.tasks`` entry point, the module of the run's own task (a file given as
``path/file.py:Class`` too, with its folder), and the hyperagents package (whose built-in tasks
could regenerate their data).

Locations are found without importing plug-ins: entry points name modules, the import system's
finders locate them, and a distribution's record lists its other files.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterable
from importlib.metadata import Distribution, entry_points
from pathlib import Path

__all__ = [
    "hidden_locations",
    "hyperagents_locations",
    "plan_hiding",
    "plugin_locations",
    "task_locations",
]

#: The entry-point group of task plug-ins (as in :mod:`hyperagents.tasks`).
TASK_GROUP = "hyperagents.tasks"
#: Module names of tasks loaded from a file (see :func:`hyperagents.tasks.load_task`).
FILE_TASK_PREFIX = "_hyperagents_task_"
#: At most this many entries are walked to decide whether a directory is a plug-in's own.
_WALK_BUDGET = 5000


#: The hyperagents package's own directory (this file is ``hyperagents/sandbox/_hiding.py``).
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def hyperagents_locations() -> list[str]:
    """Installed locations of the hyperagents package (found from this file, not by importing
    the package)."""
    package = str(_PACKAGE_DIR)
    return [] if package == os.path.realpath(sys.prefix) else [package]


def _module_files(origin: str) -> list[str]:
    """A module file and the bytecode cached for it."""
    files = [origin]
    with contextlib.suppress(ValueError, NotImplementedError):
        cached = importlib.util.cache_from_source(origin)
        if os.path.exists(cached):
            files.append(cached)
    return files


def module_locations(module: str) -> list[str]:
    """Where a module lives, without importing it: the directory of its top-level regular
    package, or its file (a module, an extension); through namespace packages, the deepest
    regular package or module named. Empty when it cannot be found."""
    parts = module.split(".")
    search: list[str] | None = None
    for depth in range(len(parts)):
        name = ".".join(parts[: depth + 1])
        try:
            if search is None:
                spec = importlib.util.find_spec(name)
            else:
                spec = importlib.machinery.PathFinder.find_spec(name, search)
        except (ImportError, ValueError, AttributeError):
            return []
        if spec is None:
            return []
        locations = [str(p) for p in (spec.submodule_search_locations or [])]
        if spec.has_location and spec.origin:
            return locations if locations else _module_files(spec.origin)
        if not locations:  # built-in or frozen: nothing on disk
            return []
        search = locations  # a namespace package: the part below is the plug-in's own
    return search or []


def _record(dist: Distribution) -> tuple[str, set[str], list[str]]:
    """(install root, files under it, files outside it) of a distribution, as real paths."""
    root = os.path.realpath(str(dist.locate_file("")))
    inside: set[str] = set()
    outside: list[str] = []
    for entry in dist.files or ():
        path = os.path.realpath(str(dist.locate_file(entry)))
        (inside.add if path.startswith(root + os.sep) else outside.append)(path)
    return root, inside, outside


def _wholly_owned(directory: str, owned: set[str]) -> bool:
    """Whether every file below ``directory`` (but cached bytecode) is one of ``owned``."""
    seen = 0
    for base, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            seen += 1
            if seen > _WALK_BUDGET or os.path.realpath(os.path.join(base, name)) not in owned:
                return False
    return True


def _owned_parts(directory: str, owned: set[str], owned_dirs: set[str]) -> list[str]:
    """The largest pieces of ``directory`` that belong to the distribution alone."""
    if _wholly_owned(directory, owned):
        return [directory]
    parts: list[str] = []
    with contextlib.suppress(OSError):
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            path = os.path.realpath(entry.path)
            if path in owned_dirs and entry.is_dir(follow_symlinks=False):
                parts.extend(_owned_parts(path, owned, owned_dirs))
            elif path in owned:
                parts.append(path)
    return parts


def distribution_locations(dist: Distribution) -> list[str]:
    """A distribution's own files and directories: its packages and metadata directories
    whole, data directories where nothing else lives in them, single files otherwise (shared
    namespace directories are never covered whole)."""
    root, inside, outside = _record(dist)
    if not inside and not outside:
        return []
    owned_dirs: set[str] = set()
    for path in inside:
        parent = os.path.dirname(path)
        while parent.startswith(root + os.sep) and parent not in owned_dirs:
            owned_dirs.add(parent)
            parent = os.path.dirname(parent)
    found: list[str] = []
    tops = sorted({os.path.join(root, os.path.relpath(p, root).split(os.sep)[0]) for p in inside})
    for top in tops:
        if top.endswith((".dist-info", ".egg-info")) or top in inside:
            found.append(top)
        elif os.path.isdir(top):
            found.extend(_owned_parts(top, inside, owned_dirs))
    found.extend(p for p in outside[:_WALK_BUDGET] if os.path.isfile(p))
    return found


def plugin_locations(group: str = TASK_GROUP) -> list[str]:
    """Files of every installed task plug-in: the modules its entry points name and the files
    of the distribution providing them."""
    found: set[str] = set()
    seen: set[str] = set()
    for point in entry_points(group=group):
        found.update(module_locations(point.module))
        dist = getattr(point, "dist", None)
        name = getattr(dist, "name", None)
        if dist is None or name is None or name.lower() == "hyperagents" or name in seen:
            continue
        seen.add(name)
        with contextlib.suppress(OSError, ValueError):
            found.update(distribution_locations(dist))
    return sorted(found)


def task_locations(task: object) -> tuple[str, ...]:
    """Where a (loaded) task's own code lives: its top-level package's directory or its
    module file; for a task given as ``path/file.py:Class``, the file and its folder (a task
    folder keeps its data beside it). Built-in tasks live in the hyperagents package, which
    the sandboxes hide anyway."""
    own = getattr(task, "hidden_paths", None)
    if isinstance(own, tuple) and own and all(isinstance(p, str) for p in own):
        return own  # a task that says where its files are (a seed-format task folder)
    cls = task if isinstance(task, type) else type(task)
    name = getattr(cls, "__module__", "") or ""
    module = sys.modules.get(name)
    if module is None or name.split(".")[0] == "hyperagents":
        return ()
    top = sys.modules.get(name.split(".")[0], module)
    paths = [str(p) for p in getattr(top, "__path__", [])]
    origin = getattr(module, "__file__", None)
    if not paths and origin:
        paths = _module_files(str(origin))
        if name.startswith(FILE_TASK_PREFIX):  # a task file: its folder keeps its data too
            paths.append(os.path.dirname(str(origin)))
    return tuple(sorted({os.path.realpath(p) for p in paths}))


def hidden_locations(extra: Iterable[str] = ()) -> list[str]:
    """Everything to hide: ``extra`` (the run's task), the task plug-ins, hyperagents."""
    paths = {os.path.realpath(p) for p in extra}
    paths.update(plugin_locations())
    paths.update(hyperagents_locations())
    return sorted(p for p in paths if os.path.lexists(p))


def plan_hiding(paths: Iterable[str], keep: Iterable[str]) -> list[tuple[str, bool]]:
    """``(path, is_directory)`` for each path to cover, outermost first; a path that holds
    something the sandbox needs (``keep``: the interpreter, exposed directories) is left
    visible, as is one inside a path already covered.

    Args:
        paths: Real paths to hide.
        keep: Real paths the sandbox binds and needs.
    """

    def inside(path: str, roots: Iterable[str]) -> bool:
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    needed = list(keep)
    plan: list[tuple[str, bool]] = []
    covered: list[str] = []
    for path in sorted(set(paths)):
        if not os.path.lexists(path) or os.path.islink(path) or inside(path, covered):
            continue
        if any(inside(other, [path]) for other in needed):
            continue
        is_dir = os.path.isdir(path)
        if not is_dir and not os.path.isfile(path):
            continue
        plan.append((path, is_dir))
        covered.append(path)
    return plan
