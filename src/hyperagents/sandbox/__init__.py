"""Sandboxes: where untrusted agent code runs (see :mod:`hyperagents.sandbox._base`)."""

from __future__ import annotations

from hyperagents.exceptions import ConfigError
from hyperagents.sandbox._base import Limits, Outcome, Sandbox, SandboxResult
from hyperagents.sandbox._process import ProcessSandbox, harness_path, scrubbed_environment

__all__ = [
    "Limits",
    "Outcome",
    "ProcessSandbox",
    "Sandbox",
    "SandboxResult",
    "get_sandbox",
    "harness_path",
    "scrubbed_environment",
]

SANDBOXES = ("process",)


def get_sandbox(name: str | Sandbox = "process") -> Sandbox:
    """Return a sandbox by name (``"process"``) or pass an instance through.

    Raises:
        ConfigError: Unknown sandbox name.
    """
    if not isinstance(name, str):
        return name
    if name == "process":
        return ProcessSandbox()
    raise ConfigError(f"unknown sandbox {name!r}; choose one of: {', '.join(SANDBOXES)}")
