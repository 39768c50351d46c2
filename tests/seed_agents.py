"""Seed meta agents in a test's workspace, loaded in this process as the sandbox's harness loads
them: ``meta_agent.py`` from its file, its sibling ``meta_*.py`` modules imported by name from
the workspace (never modules of the same names loaded before, from another workspace)."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from hyperagents.improvers import meta_agent_files
from hyperagents.sandbox import is_meta_module

_counter = itertools.count()


def seed_files(kind: str) -> dict[str, str]:
    """The files of the seed meta agent ``kind`` (``offline`` or ``llm``)."""
    files = meta_agent_files(kind)
    assert files is not None and "meta_agent.py" in files
    return files


def write_meta_agent(workspace: Path, kind: str, meta_agent: str | None = None) -> None:
    """Write the seed meta agent ``kind`` into ``workspace`` (with ``meta_agent`` as its
    ``meta_agent.py`` when given)."""
    for name, text in seed_files(kind).items():
        if name == "meta_agent.py" and meta_agent is not None:
            text = meta_agent
        (workspace / name).write_text(text, encoding="utf-8")


@contextlib.contextmanager
def _importing_from(workspace: Path) -> Iterator[None]:
    for name in [name for name in sys.modules if is_meta_module(f"{name}.py")]:
        del sys.modules[name]
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # a workspace holds only what the test wrote there
    sys.path.insert(0, str(workspace))
    try:
        yield
    finally:
        sys.path.remove(str(workspace))
        sys.dont_write_bytecode = saved


def load_meta_agent(workspace: Path) -> ModuleType:
    """``workspace/meta_agent.py`` as a fresh module, with fresh sibling modules."""
    with _importing_from(workspace):
        path = workspace / "meta_agent.py"
        spec = importlib.util.spec_from_file_location(f"_meta_agent_{next(_counter)}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def load_meta_module(workspace: Path, name: str) -> ModuleType:
    """The sibling module ``name`` (e.g. ``meta_model``) of ``workspace``'s meta agent, loaded
    fresh with it."""
    load_meta_agent(workspace)
    return _sibling(workspace, name)


def _sibling(workspace: Path, name: str) -> ModuleType:
    """The module ``name`` of the meta agent last loaded from ``workspace`` (imported from there
    if the agent does not import it)."""
    if name not in sys.modules:
        sys.path.insert(0, str(workspace))
        try:
            importlib.import_module(name)
        finally:
            sys.path.remove(str(workspace))
    module = sys.modules[name]
    assert Path(str(module.__file__)).parent == workspace
    return module


def offline_modules(workspace: Path, **names: str) -> dict[str, ModuleType]:
    """The offline meta agent written into ``workspace`` and loaded fresh, and its modules by
    key: ``offline_modules(ws, model="meta_model")["model"]`` (all of the same load)."""
    write_meta_agent(workspace, "offline")
    load_meta_agent(workspace)
    return {key: _sibling(workspace, name) for key, name in names.items()}
