"""Tasks: the protocol, the registry and the built-in tasks.

A task is named by a *spec*:

* a built-in name (``review``, ``packing``, ``support``, ``support-lora``, ``forecast``,
  ``shipping``, ``arith``, ``email_validation``, ``ip_validation``, ``snake``,
  ``summaries``), or of a wrapper of another task (``live``: a task with live examples added,
  see :class:`hyperagents.service.LiveTask`);
* the name of an entry point in the group ``hyperagents.tasks`` (installed plugins);
* ``path/to/file.py:ClassName`` (a task defined in a local file);
* ``path/to/folder``: a task folder in the seed format (``config.py``, ``initial_solution.py``,
  ``benchmark.py``), run as it is (see :mod:`hyperagents.tasks._folder`).

A task class is created with the spec's *options* as keyword arguments (none by default;
``--task-option KEY=VALUE`` on the command line, ``task_options`` in a run's config, stored with
the run: see :mod:`hyperagents.tasks._options`). A task is trusted code: it runs in the engine
process (scoring must, so that agents never see targets).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from hyperagents._modules import import_file
from hyperagents.exceptions import TaskError, TaskNotFoundError
from hyperagents.tasks._arena import GENERIC_MUTATORS, ArenaSpec, Verdict
from hyperagents.tasks._base import (
    META_STATE_FILE,
    Instance,
    Score,
    Split,
    Task,
    is_meta_agent_file,
)
from hyperagents.tasks._check import ODD_OUTPUTS, TaskCheck, check_task
from hyperagents.tasks._declared import DeclaredParam, DeclaredSpace, declared_space
from hyperagents.tasks._folder import FolderTask, folder_task_class, is_task_folder
from hyperagents.tasks._generated import GeneratedTask, SeededTask
from hyperagents.tasks._judge import (
    Fact,
    Judge,
    JudgedTask,
    draft_prompt,
    draft_rubrics,
    judge_rubric,
    parse_drafted_facts,
    parse_rubric,
)
from hyperagents.tasks._labelled import LabelledStringTask
from hyperagents.tasks._options import (
    check_task_options,
    create_task,
    format_task_options,
    merge_task_options,
    parse_task_option,
    parse_task_options,
    stored_task_options,
    task_keywords,
    task_label,
)
from hyperagents.tasks._param_space import param_space_errors, program_param_space_errors
from hyperagents.tasks._scaffold import scaffold_task, task_class_name
from hyperagents.tasks._wrapper import TaskWrapper, innermost_task

__all__ = [
    "BUILTIN_TASKS",
    "ENTRY_POINT_GROUP",
    "GENERIC_MUTATORS",
    "META_STATE_FILE",
    "ODD_OUTPUTS",
    "WRAPPER_TASKS",
    "ArenaSpec",
    "DeclaredParam",
    "DeclaredSpace",
    "Fact",
    "FolderTask",
    "GeneratedTask",
    "Instance",
    "Judge",
    "JudgedTask",
    "LabelledStringTask",
    "Score",
    "SeededTask",
    "Split",
    "Task",
    "TaskCheck",
    "TaskInfo",
    "TaskWrapper",
    "Verdict",
    "check_task",
    "check_task_options",
    "declared_space",
    "draft_prompt",
    "draft_rubrics",
    "file_spec",
    "folder_task_class",
    "format_task_options",
    "innermost_task",
    "is_meta_agent_file",
    "is_task_folder",
    "judge_rubric",
    "list_tasks",
    "load_task",
    "merge_task_options",
    "param_space_errors",
    "parse_drafted_facts",
    "parse_rubric",
    "parse_task_option",
    "parse_task_options",
    "program_param_space_errors",
    "scaffold_task",
    "stored_task_options",
    "task_class_name",
    "task_keywords",
    "task_label",
]

ENTRY_POINT_GROUP = "hyperagents.tasks"

#: Built-in tasks: name → ``module:Class``.
BUILTIN_TASKS: dict[str, str] = {
    "review": "hyperagents.tasks.review:ReviewTask",
    "packing": "hyperagents.tasks.packing:PackingTask",
    "support": "hyperagents.tasks.support:SupportTask",
    "support-lora": "hyperagents.tasks.support_lora:SupportLoraTask",
    "forecast": "hyperagents.tasks.forecast:ForecastTask",
    "shipping": "hyperagents.tasks.shipping:ShippingTask",
    "arith": "hyperagents.tasks.arith:ArithTask",
    "email_validation": "hyperagents.tasks.email_validation:EmailValidationTask",
    "ip_validation": "hyperagents.tasks.ip_validation:IpValidationTask",
    "snake": "hyperagents.tasks.snake:SnakeTask",
    "summaries": "hyperagents.tasks.summaries:SummariesTask",
}

#: Tasks that wrap another one (given as their ``base`` option): name → ``module:Class``. They
#: load like built-ins but are not listed (a run is never started on one by hand).
WRAPPER_TASKS: dict[str, str] = {"live": "hyperagents.service:LiveTask"}


@dataclass(frozen=True)
class TaskInfo:
    """A task the registry can load."""

    name: str
    source: str  #: "builtin" or "entry point"
    target: str  #: ``module:Class``
    description: str
    options: str = ""  #: the keyword arguments its class takes, with their defaults


def _import_target(target: str, spec: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskError(f"cannot import task {spec!r} ({target}): {exc}") from exc
    try:
        return getattr(module, attr) if attr else module
    except AttributeError as exc:
        raise TaskError(f"task {spec!r}: {module_name} has no attribute {attr!r}") from exc


def file_spec(spec: str) -> tuple[str, str] | None:
    """A ``path/to/file.py:ClassName`` spec's path and class name (None for any other spec)."""
    path, colon, name = spec.strip().rpartition(":")
    return (path, name) if colon and path.endswith(".py") else None


def _load_file(path_text: str, class_name: str, spec: str) -> Any:
    path = Path(path_text).expanduser()
    if not class_name.isidentifier():
        raise TaskNotFoundError(f"task spec {spec!r}: expected path/to/file.py:ClassName")
    if not path.is_file():
        raise TaskNotFoundError(f"task file {path} does not exist")
    try:
        module = import_file(path, "_hyperagents_task_")
    except ImportError as exc:
        raise TaskError(f"cannot load task file {path}") from exc
    except Exception as exc:
        raise TaskError(f"task file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, class_name)
    except AttributeError as exc:
        raise TaskNotFoundError(f"task file {path} defines no {class_name!r}") from exc


def _entry_point_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_task(spec: str | Task, options: Mapping[str, Any] | None = None) -> Task:
    """Load a task from a spec (see the module docstring) or pass a Task through.

    Args:
        spec: A built-in or entry-point name, ``path/to/file.py:ClassName``, or a task object.
        options: Keyword arguments of the task class's constructor (JSON values; see
            :func:`check_task_options`). None or empty: the class is created without any.

    Raises:
        TaskNotFoundError: Nothing matches the spec.
        TaskError: The task exists but cannot be loaded or does not follow the protocol; an
            option the class does not take, or its constructor raised (the message names it);
            options given for a task object or for a spec that names an object.
    """
    options = dict(options or {})
    if isinstance(spec, Task):
        if options:
            raise TaskError(
                f"task options ({format_task_options(options)}) need a task spec, not a task "
                "object: create the object with them"
            )
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise TaskNotFoundError(f"invalid task spec {spec!r}")
    spec = spec.strip()
    if spec in BUILTIN_TASKS or spec in WRAPPER_TASKS:
        obj = _import_target({**BUILTIN_TASKS, **WRAPPER_TASKS}[spec], spec)
    elif spec in (targets := _entry_point_targets()):
        obj = _import_target(targets[spec], spec)
    elif (parts := file_spec(spec)) is not None:
        obj = _load_file(*parts, spec)
    elif is_task_folder(spec):
        obj = folder_task_class(spec)
    else:
        known = sorted(set(BUILTIN_TASKS) | set(_entry_point_targets()))
        raise TaskNotFoundError(
            f"unknown task {spec!r}; known tasks: {', '.join(known)} "
            "(or give path/to/file.py:ClassName, or a seed-format task folder)"
        )
    if isinstance(obj, type) and issubclass(obj, Task):
        task = create_task(obj, options, spec)
    elif isinstance(obj, Task):
        if options:
            raise TaskError(f"task {spec!r} is an object, not a class: it takes no options")
        task = obj
    else:
        raise TaskError(f"task {spec!r} is not a hyperagents.tasks.Task subclass: {obj!r}")
    if not task.name:
        raise TaskError(f"task {spec!r} has no name")
    return task


def list_tasks() -> list[TaskInfo]:
    """All tasks the registry knows (built-ins first, then entry points), without loading data."""
    infos: list[TaskInfo] = []
    for source, targets in (("builtin", BUILTIN_TASKS), ("entry point", _entry_point_targets())):
        for name, target in sorted(targets.items()):
            if source != "builtin" and name in BUILTIN_TASKS:
                continue
            options = ""
            try:
                cls = _import_target(target, name)
                description = str(getattr(cls, "description", "") or "").strip()
                options = task_keywords(cls) if isinstance(cls, type) else ""
            except TaskError as exc:
                description = f"(cannot load: {exc})"
            first = description.splitlines()[0] if description else ""
            infos.append(TaskInfo(name, source, target, first, options))
    return infos
