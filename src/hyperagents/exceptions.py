"""The exception tree of hyperagents.

Every error the library raises on purpose derives from :class:`HyperagentsError`, so callers can
catch one type. The tree::

    HyperagentsError
    ├── ConfigError                 bad configuration value, spec or file
    ├── TaskError                   a task plugin is missing, broken or misbehaving
    │   └── TaskNotFoundError
    ├── ProgramError                a program or patch is malformed
    │   └── PatchError              a unified diff does not apply
    ├── StorageError                the storage backend failed or was misused
    │   ├── StorageURLError         the storage URL is malformed or unsupported
    │   ├── RunNotFoundError
    │   ├── VariantNotFoundError
    │   └── DuplicateError          a unique record (run name, evaluation stage…) already exists
    ├── SandboxError                the sandbox itself broke (infrastructure; retried)
    └── RunStateError               an operation that the run's current state does not allow

A candidate that fails (times out, crashes, returns garbage) is *not* an exception: it is a
recorded outcome (see :class:`hyperagents.sandbox.SandboxResult`).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DuplicateError",
    "HyperagentsError",
    "PatchError",
    "ProgramError",
    "RunNotFoundError",
    "RunStateError",
    "SandboxError",
    "StorageError",
    "StorageURLError",
    "TaskError",
    "TaskNotFoundError",
    "VariantNotFoundError",
]


class HyperagentsError(Exception):
    """Root of every error raised by hyperagents."""


class ConfigError(HyperagentsError, ValueError):
    """A configuration value, spec string or file is invalid."""


class TaskError(HyperagentsError):
    """A task plugin is missing, cannot be loaded, or violates the task protocol."""


class TaskNotFoundError(TaskError, LookupError):
    """No task matches the given name or spec."""


class ProgramError(HyperagentsError, ValueError):
    """A program (file tree) is malformed: bad path, too large, not representable."""


class PatchError(ProgramError):
    """A unified diff cannot be parsed or does not apply to the program."""


class StorageError(HyperagentsError):
    """The storage backend failed or was used against its contract."""


class StorageURLError(StorageError, ConfigError):
    """The storage URL is malformed or names an unsupported backend."""


class RunNotFoundError(StorageError, LookupError):
    """No run with the given name or id exists in the storage."""


class VariantNotFoundError(StorageError, LookupError):
    """No variant with the given id (or run/generation) exists in the storage."""


class DuplicateError(StorageError):
    """A record that must be unique already exists (run name, evaluation stage, generation)."""


class SandboxError(HyperagentsError):
    """The sandbox itself broke: an infrastructure failure, not a failure of the candidate.

    The engine retries work that failed this way; a candidate that crashed, timed out or
    returned invalid output is a recorded outcome instead.
    """


class RunStateError(HyperagentsError):
    """The requested operation is not allowed in the run's current state."""
