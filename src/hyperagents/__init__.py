"""hyperagents: self-referential self-improving agents.

A hyperagent is a program with a task agent (solves the task) and a meta agent (edits the
program, itself included, to make it better). :class:`Run` keeps an archive of every variant,
selects parents, runs meta agents and evaluations in a sandbox and records everything in a
storage, so a run can be resumed, reproduced and inspected.

Example:
    >>> import hyperagents                                             # doctest: +SKIP
    >>> run = hyperagents.Run.create(task="review", storage="memory")  # doctest: +SKIP
    >>> run.optimize(generations=10)                                   # doctest: +SKIP

:class:`RunService` is what the command line and the dashboard call: start, resume and replay
runs from typed requests, drive them in the background, and steer them (approve, reject, pin,
ban, stop, delete).
"""

from __future__ import annotations

from hyperagents.exceptions import (
    ConfigError,
    DuplicateError,
    HyperagentsError,
    PatchError,
    ProgramError,
    RunNotFoundError,
    RunStateError,
    SandboxError,
    StorageError,
    StorageURLError,
    TaskError,
    TaskNotFoundError,
    VariantNotFoundError,
)
from hyperagents.program import Program
from hyperagents.runs import (
    Job,
    Mode,
    ReplayRequest,
    ResumeRequest,
    Run,
    RunConfig,
    RunService,
    StartRequest,
)
from hyperagents.storages import (
    BaseStorage,
    InMemoryStorage,
    RDBStorage,
    RunStatus,
    VariantState,
    get_storage,
)
from hyperagents.tasks import Instance, Score, Split, Task, list_tasks, load_task

__version__ = "0.1.0"

__all__ = [
    "BaseStorage",
    "ConfigError",
    "DuplicateError",
    "HyperagentsError",
    "InMemoryStorage",
    "Instance",
    "Job",
    "Mode",
    "PatchError",
    "Program",
    "ProgramError",
    "RDBStorage",
    "ReplayRequest",
    "ResumeRequest",
    "Run",
    "RunConfig",
    "RunNotFoundError",
    "RunService",
    "RunStateError",
    "RunStatus",
    "SandboxError",
    "Score",
    "Split",
    "StartRequest",
    "StorageError",
    "StorageURLError",
    "Task",
    "TaskError",
    "TaskNotFoundError",
    "VariantNotFoundError",
    "VariantState",
    "__version__",
    "get_storage",
    "list_tasks",
    "load_task",
]
