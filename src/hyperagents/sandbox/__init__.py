"""Sandboxes: where untrusted agent code runs (see :mod:`hyperagents.sandbox._base`).

* ``bwrap``: bubblewrap namespaces (no network, own PID/IPC/UTS, minimal read-only filesystem)
  plus resource limits; the default where bubblewrap works.
* ``process``: a separate process with the same resource limits and a scrubbed environment;
  the fallback, with a visible warning, where bubblewrap is missing.
* ``auto``: ``bwrap`` if available, else ``process``.
"""

from __future__ import annotations

import functools
import logging

from hyperagents.exceptions import ConfigError
from hyperagents.sandbox._base import Limits, Outcome, Sandbox, SandboxResult
from hyperagents.sandbox._bwrap import BwrapSandbox, bwrap_available
from hyperagents.sandbox._process import (
    ProcessSandbox,
    harness_path,
    kill_user_processes,
    scrubbed_environment,
)

__all__ = [
    "SANDBOXES",
    "BwrapSandbox",
    "Limits",
    "Outcome",
    "ProcessSandbox",
    "Sandbox",
    "SandboxResult",
    "bwrap_available",
    "get_sandbox",
    "harness_path",
    "kill_user_processes",
    "scrubbed_environment",
]

SANDBOXES = ("auto", "bwrap", "process")
logger = logging.getLogger("hyperagents")


@functools.cache
def _bwrap_works() -> bool:
    return bwrap_available()


def get_sandbox(
    name: str | Sandbox = "auto", *, warm: int = 0, preload: tuple[str, ...] = ()
) -> Sandbox:
    """Return a sandbox by name (``auto``, ``bwrap``, ``process``) or pass an instance through.

    Args:
        name: The sandbox's name, or a sandbox object (returned as is).
        warm: Processes to keep started ahead of time.
        preload: Modules those processes import before their request.

    Raises:
        ConfigError: Unknown name, or ``bwrap`` asked for where bubblewrap does not work.
    """
    if not isinstance(name, str):
        return name
    if name == "auto":
        if _bwrap_works():
            return BwrapSandbox(warm=warm, preload=preload)
        logger.warning(
            "bubblewrap is not available: falling back to the 'process' sandbox, which limits "
            "resources but does not isolate the filesystem or (without root) the network; "
            "install bubblewrap for full isolation"
        )
        return ProcessSandbox()
    if name == "bwrap":
        if not _bwrap_works():
            raise ConfigError(
                "the bwrap sandbox needs bubblewrap (apt-get install bubblewrap) "
                "and permission to create namespaces"
            )
        return BwrapSandbox()
    if name == "process":
        return ProcessSandbox()
    raise ConfigError(f"unknown sandbox {name!r}; choose one of: {', '.join(SANDBOXES)}")
