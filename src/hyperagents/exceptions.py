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
    │   ├── ServiceNotFoundError    no such service (``hyperagents serve``)
    │   ├── RequestNotFoundError    no such served request
    │   └── DuplicateError          a unique record (run name, evaluation stage…) already exists
    ├── SandboxError                the sandbox itself broke (infrastructure; retried)
    ├── RunStateError               an operation that the run's current state does not allow
    └── LLMError                    a language-model call failed (not retried)
        ├── LLMTransientError       timeout, connection error, 429 or 5xx (retried by the gateway)
        ├── LLMResponseError        malformed or empty reply (also retried, but distinguishable)
        ├── LLMBudgetExceeded       a cost or token budget is spent (the call was not made)
        ├── LLMReplayError          replay was asked for a call that was not recorded
        └── LLMConfigError          bad LLM spec, missing API key variable or missing extra
                                    (also a ConfigError)

A candidate that fails (times out, crashes, returns garbage) is *not* an exception: it is a
recorded outcome (see :class:`hyperagents.sandbox.SandboxResult`).
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "ConfigError",
    "DuplicateError",
    "HyperagentsError",
    "LLMBudgetExceeded",
    "LLMConfigError",
    "LLMError",
    "LLMReplayError",
    "LLMRequestRejected",
    "LLMResponseError",
    "LLMScriptExhausted",
    "LLMTransientError",
    "PatchError",
    "ProgramError",
    "RequestNotFoundError",
    "RunNotFoundError",
    "RunStateError",
    "SandboxError",
    "ServiceNotFoundError",
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


class ServiceNotFoundError(StorageError, LookupError):
    """No service with the given name or id exists in the storage."""


class RequestNotFoundError(StorageError, LookupError):
    """No served request with the given id exists in the storage."""


class DuplicateError(StorageError):
    """A record that must be unique already exists (run name, evaluation stage, generation)."""


class SandboxError(HyperagentsError):
    """The sandbox itself broke: an infrastructure failure, not a failure of the candidate.

    The engine retries work that failed this way; a candidate that crashed, timed out or
    returned invalid output is a recorded outcome instead.
    """


class RunStateError(HyperagentsError):
    """The requested operation is not allowed in the run's current state."""


def _rebuild_error(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Recreate an exception with keyword-only attributes when it is unpickled."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class LLMError(HyperagentsError):
    """A call to a language model failed in a way that retrying will not fix.

    Examples: authentication failed, the request was rejected (HTTP 4xx), a scripted provider ran
    out of replies. Messages never contain API keys.
    """


class LLMTransientError(LLMError):
    """A call to a language model failed in a way that may succeed when retried.

    Timeouts, connection errors, HTTP 408/409/429 and 5xx. The gateway retries these with
    backoff.

    Attributes:
        status_code: The HTTP status, when there was a response.
        retry_after: Seconds the server asked the client to wait before retrying, if it said.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))


class LLMResponseError(LLMError):
    """A language model answered, but the answer is malformed or empty.

    Not a :class:`LLMTransientError` (so callers can tell the two apart), but the gateway
    retries it the same way, up to its retry count: a sampled model often answers well on a
    second try.
    """


class LLMBudgetExceeded(LLMError):
    """A cost or token budget is spent, so the call was not made.

    Raising the budget (``Gateway.set_budget``) lets the next call through.

    Attributes:
        budget: Which budget: ``"cost"`` (US dollars) or ``"tokens"``.
        limit: The budget's limit.
        spent: What was spent when the call was refused.
    """

    def __init__(
        self, message: str, *, budget: Literal["cost", "tokens"], limit: float, spent: float
    ) -> None:
        super().__init__(message)
        self.budget: Literal["cost", "tokens"] = budget
        self.limit = limit
        self.spent = spent

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))


class LLMReplayError(LLMError, LookupError):
    """Replay was asked for a call that the record does not hold; no model is ever called."""


class LLMConfigError(LLMError, ConfigError):
    """An LLM spec is invalid, an API key variable is unset, or an optional extra is missing."""


class LLMRequestRejected(LLMError):
    """The model server refused this one request as invalid (HTTP 400, 413 or 422: a prompt
    beyond the model's context, a parameter the model does not take…).

    The server answered, so it is up: the request is at fault, not the model. A run's circuit
    breaker does not count these (an agent sending bad requests is the agent's failure).
    """


class LLMScriptExhausted(LLMError):
    """A scripted provider was asked for more replies than its script holds.

    The call consumed no reply: a resumed run with a longer script goes on from the first reply
    not yet used.
    """
