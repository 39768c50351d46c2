"""Sandboxes: where untrusted agent code runs (see :mod:`hyperagents.sandbox._base`).

* ``bwrap``: bubblewrap namespaces (no network, own PID/IPC/UTS, minimal read-only filesystem)
  plus resource limits; the default where bubblewrap works.
* ``process``: a separate process with the same resource limits and a scrubbed environment;
  the fallback, with a visible warning, where bubblewrap is missing.
* ``auto``: ``bwrap`` if available, else ``process``.
* ``ray``: each job a Ray task on a cluster, run on its node in an inner sandbox (``bwrap`` by
  default); the optional extra ``ray`` (:class:`RaySandbox`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from hyperagents.exceptions import ConfigError, SandboxError
from hyperagents.sandbox._base import Limits, Outcome, Sandbox, SandboxResult
from hyperagents.sandbox._bwrap import BwrapSandbox, bwrap_available
from hyperagents.sandbox._checkpoint import CHECKPOINT_DIR, CheckpointHook
from hyperagents.sandbox._cleanup import kill_user_processes
from hyperagents.sandbox._harness import (
    META_MODULE_PREFIX,
    PROTECTED_MODULES,
    is_meta_module,
    shadowing_errors,
)
from hyperagents.sandbox._hiding import task_locations
from hyperagents.sandbox._messages import InvalidMessage, loads_bounded
from hyperagents.sandbox._process import (
    UNSAFE_PROCESS_SANDBOX_ENV,
    ProcessSandbox,
    unsafe_process_sandbox_allowed,
)
from hyperagents.sandbox._provision import harness_path, scrubbed_environment
from hyperagents.sandbox._ray import RAY_MISSING, RaySandbox
from hyperagents.sandbox._workspace import (
    WORKSPACE_PREFIXES,
    remove_tree,
    sweep_stale_workspaces,
    workspace,
    workspace_base,
)

__all__ = [
    "CHECKPOINT_DIR",
    "META_MODULE_PREFIX",
    "PROTECTED_MODULES",
    "RAY_MISSING",
    "SANDBOXES",
    "UNSAFE_PROCESS_SANDBOX_ENV",
    "WORKSPACE_PREFIXES",
    "BwrapSandbox",
    "CheckpointHook",
    "InvalidMessage",
    "Limits",
    "Outcome",
    "ProcessSandbox",
    "RayOptions",
    "RaySandbox",
    "Sandbox",
    "SandboxResult",
    "bwrap_available",
    "get_sandbox",
    "harness_path",
    "is_meta_module",
    "kill_user_processes",
    "loads_bounded",
    "remove_tree",
    "scrubbed_environment",
    "shadowing_errors",
    "sweep_stale_workspaces",
    "task_locations",
    "unsafe_process_sandbox_allowed",
    "workspace",
    "workspace_base",
]

SANDBOXES = ("auto", "bwrap", "process", "ray")
logger = logging.getLogger("hyperagents")


@dataclass(frozen=True)
class RayOptions:
    """Where the ``ray`` sandbox runs jobs (a value object; see :class:`RaySandbox`).

    Attributes:
        address: None starts a local Ray instance; ``"auto"`` or ``"ray://host:port"`` joins
            a cluster.
        inner: The sandbox each job runs in on its node.
        queue_timeout: Seconds a job may wait for a node (None: no limit).
    """

    address: str | None = None
    inner: str = "bwrap"
    queue_timeout: float | None = 600.0


@functools.cache
def _bwrap_problem() -> str | None:
    """Why the bwrap sandbox cannot run this interpreter here (None when it can)."""
    if not bwrap_available():
        return "bubblewrap is not installed or cannot create namespaces"
    try:
        BwrapSandbox().check()
    except Exception as exc:
        return str(exc)
    return None


def get_sandbox(
    name: str | Sandbox = "auto",
    *,
    warm: int = 0,
    preload: tuple[str, ...] = (),
    hide: Iterable[str] = (),
    memory_mb: int | None = None,
    ray: RayOptions | None = None,
) -> Sandbox:
    """Return a sandbox by name (``auto``, ``bwrap``, ``process``, ``ray``) or pass an instance
    through.

    Args:
        name: The sandbox's name, or a sandbox object (returned as is).
        warm: Fork servers to keep started ahead of time (each forks a fresh child per
            request).
        preload: Modules those servers import ahead of time.
        hide: Host paths agent code must not see: the run's task
            (:func:`task_locations`); installed task plug-ins and the hyperagents package are
            hidden in any case.
        memory_mb: The memory limit its runs will have: bubblewrap's ``/tmp`` and ``/dev/shm``
            then hold half of it each (so files there add at most the limit), also where the
            harness cannot resize them per run (an engine that is not root).
        ray: For ``ray``: the cluster, the inner sandbox and the queue timeout.

    Raises:
        ConfigError: Unknown name, ``bwrap`` asked for where it cannot work, the ``process``
            sandbox would run agent code as root without isolation (and no opt-in), or ``ray``
            asked for without Ray installed.
    """
    if not isinstance(name, str):
        return name
    if name not in SANDBOXES:
        raise ConfigError(f"unknown sandbox {name!r}; choose one of: {', '.join(SANDBOXES)}")
    if name == "ray":
        options = ray or RayOptions()
        return RaySandbox(
            address=options.address,
            inner=options.inner,
            queue_timeout=options.queue_timeout,
            preload=preload,
            hide=hide,
        )
    if name in ("auto", "bwrap"):
        problem = _bwrap_problem()
        if problem is None:
            tmp_mb = 512 if memory_mb is None else max(8, int(memory_mb) // 2)
            return BwrapSandbox(warm=warm, preload=preload, hide=hide, tmp_mb=tmp_mb)
        if name == "bwrap":
            raise ConfigError(
                f"the bwrap sandbox is not usable here: {problem} "
                "(it needs bubblewrap: apt-get install bubblewrap)"
            )
        logger.warning(
            "the bwrap sandbox is not usable (%s): falling back to the 'process' sandbox, which "
            "limits resources but does not isolate the filesystem; install bubblewrap for full "
            "isolation",
            problem,
        )
    try:
        return ProcessSandbox(warm=warm, preload=preload, hide=hide)
    except SandboxError as exc:
        raise ConfigError(str(exc)) from exc
