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
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
