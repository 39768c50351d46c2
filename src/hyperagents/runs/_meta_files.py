"""A run's meta files: the files of a program that make up its meta level.

A task declares them (:attr:`~hyperagents.tasks.Task.meta_files`: ``meta_agent.py`` and an
editable ``select_parent.py`` by default). The run uses them three ways — to give a new run
another program's meta agent, to keep the meta level frozen (``frozen-meta`` mode), and to tell
which of a child's changes touch the meta level (the approval gate) — each through this module,
so how meta files are declared is read in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from hyperagents.program import Program
from hyperagents.tasks import Task

__all__ = ["changed_meta_files", "freeze_meta", "meta_files", "transfer_meta"]


def meta_files(task: Task) -> tuple[str, ...]:
    """The paths of ``task``'s meta files."""
    return tuple(task.meta_files)


def transfer_meta(program: Program, source: Program, task: Task) -> Program:
    """``program`` with the meta files that ``source`` holds taken from ``source`` (the others
    are left as they are)."""
    return program.with_files({path: source[path] for path in meta_files(task) if path in source})


def freeze_meta(program: Program, seed: Program, task: Task) -> Program:
    """``program`` with every meta file exactly as in ``seed`` (a meta file the seed lacks is
    removed): whatever was done to the meta level is dropped."""
    updates: dict[str, bytes | str | None] = {path: seed.get(path) for path in meta_files(task)}
    return program.with_files(updates)


def changed_meta_files(changed: Iterable[str], task: Task) -> list[str]:
    """The paths among ``changed`` that are meta files, in the order given."""
    meta = meta_files(task)
    return [path for path in changed if path in meta]
