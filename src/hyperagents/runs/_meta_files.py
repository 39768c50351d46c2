"""A run's meta files: the files of a program that make up its meta level.

The rule is the task's (:meth:`~hyperagents.tasks.Task.is_meta_file`): the task's declared
:attr:`~hyperagents.tasks.Task.meta_files` (``meta_agent.py`` and an editable
``select_parent.py`` by default) and every module of the program's meta agent (a top-level
``meta_*.py``). The run uses them three ways — to give a new run another program's meta agent,
to keep the meta level frozen (``frozen-meta`` mode), and to tell which of a child's changes
touch the meta level (the approval gate) — each through this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hyperagents.program import Program
from hyperagents.tasks import Task

__all__ = ["changed_meta_files", "freeze_meta", "meta_files", "transfer_meta"]


def meta_files(task: Task, *programs: Iterable[str]) -> list[str]:
    """The paths of ``task``'s declared meta files and of the meta files ``programs`` hold,
    sorted."""
    return task.meta_paths(*programs)


def transfer_meta(program: Program, source: Mapping[str, bytes | str], task: Task) -> Program:
    """``program`` with the meta agent of ``source`` (a program, or files by path): its meta
    agent's modules replaced as a whole, the other declared meta files where ``source`` has
    them (see :meth:`~hyperagents.tasks.Task.with_meta_agent`)."""
    return task.with_meta_agent(program, source)


def freeze_meta(program: Program, seed: Program, task: Task) -> Program:
    """``program`` with every meta file exactly as in ``seed`` (a meta file the seed lacks is
    removed): whatever was done to the meta level is dropped."""
    updates: dict[str, bytes | str | None] = {
        path: seed.get(path) for path in meta_files(task, seed, program)
    }
    return program.with_files(updates)


def changed_meta_files(changed: Iterable[str], task: Task) -> list[str]:
    """The paths among ``changed`` that are meta files, in the order given."""
    return [path for path in changed if task.is_meta_file(path)]
