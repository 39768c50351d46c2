"""Importing a plug-in's Python file by path (tasks, custom constitution rules)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["import_file"]


def import_file(path: Path, prefix: str) -> ModuleType:
    """Import the Python file at ``path`` as a module of its own (named after its resolved
    path, so importing it again returns the same module object's name).

    The file's folder is importable, so a plug-in can import its sibling modules: while the
    file runs, the folder is searched first (as ``python file.py`` would); afterwards it stays
    on ``sys.path`` after everything else, for imports the plug-in makes later.

    Raises:
        ImportError: The file cannot be loaded as a module.
        Exception: Whatever running the file raised (the module is not kept then).
    """
    module_name = f"{prefix}{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        _move_to_end(folder)
    return module


def _move_to_end(folder: str) -> None:
    """Take the ``folder`` put first off ``sys.path``; keep it last (once)."""
    if sys.path and sys.path[0] == folder:
        del sys.path[0]
    elif folder in sys.path:  # the plug-in changed sys.path: take the copy put first
        sys.path.remove(folder)
    if folder not in sys.path:
        sys.path.append(folder)
