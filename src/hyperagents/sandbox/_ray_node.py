"""The node side of the Ray sandbox: the task that runs one job, and the relay actor.

A job travels as a :class:`NodeJob` (the program's files, the harness request, the limits and
which inner sandbox to use): no shared filesystem is assumed. :func:`run_job` writes the files
into a fresh workspace on the node and runs the request in the *inner* sandbox there (bubblewrap
by default), so the candidate stays sandboxed on the node exactly as on the engine's machine; a
meta agent's edited workspace travels back as a :class:`~hyperagents.program.Program`, read with
the same bounds as on the engine.

:class:`Relay` is a mailbox (a Ray async actor) between the sandboxed code's ``llm.complete``
calls on a node and the engine: the node posts the harness's request (the same
``{"messages", "params", "purpose"}`` as the local sandbox's channel), the engine takes it,
answers it through its own gateway (the API key, budgets and the record stay in the engine) and
posts the reply back. It also tells the engine when a job has started on its node, which is when
the job's deadline starts counting.

Nothing here imports Ray at module level: the engine imports this module without Ray installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Any

from hyperagents.exceptions import ConfigError, ProgramError, SandboxError
from hyperagents.program import Program
from hyperagents.sandbox._base import Limits, Sandbox, SandboxResult
from hyperagents.sandbox._workspace import workspace

__all__ = ["NO_REPLY", "NodeJob", "NodeReply", "Relay", "run_job"]

#: The reply a sandboxed ``llm.complete`` gets when the engine did not answer.
NO_REPLY = "the engine did not answer this language-model request"


@dataclass(frozen=True)
class NodeJob:
    """One sandboxed job as it travels to a node.

    Attributes:
        job_id: Names the job in the relay.
        program: The workspace's files.
        request: The harness request.
        limits: The inner sandbox's limits.
        inner: The inner sandbox: a name (``bwrap``, ``auto``, ``process``) built on the node,
            or a sandbox object sent as it is.
        preload: Modules the inner sandbox's servers import ahead of time.
        hide: Host paths the candidate must not see (where they exist on the node).
        relay_llm: Whether the engine answers language-model calls (else the harness tells the
            agent there is no model).
        return_workspace: Whether the workspace comes back after the run (a meta agent's edits).
    """

    job_id: str
    program: Program
    request: dict[str, Any]
    limits: Limits
    inner: str | Sandbox = "bwrap"
    preload: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    relay_llm: bool = False
    return_workspace: bool = False


@dataclass(frozen=True)
class NodeReply:
    """What a node sends back for one job.

    Attributes:
        result: The inner sandbox's result (None when it broke).
        broke: Why the inner sandbox broke (infrastructure, not the candidate); "" if it did not.
        workspace: The workspace after the run, when asked for and readable.
        workspace_error: Why the workspace the candidate left could not be read.
        node: The Ray node that ran the job.
    """

    result: SandboxResult | None
    broke: str = ""
    workspace: Program | None = None
    workspace_error: str = ""
    node: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def run_job(job: NodeJob, relay: Any) -> NodeReply:
    """Run ``job`` on this node in its inner sandbox (the body of the Ray task).

    Args:
        job: The job.
        relay: The :class:`Relay` actor's handle.

    Returns:
        The reply; an inner sandbox that could not be built or broke is reported in
        :attr:`NodeReply.broke` (the engine raises :class:`SandboxError` for it).
    """
    import ray

    node = ""
    with contextlib.suppress(Exception):
        node = str(ray.get_runtime_context().get_node_id())
    relay.started.remote(job.job_id)
    try:
        inner = _inner_sandbox(job)
    except (ConfigError, SandboxError) as exc:
        return NodeReply(None, broke=f"inner sandbox on node {node[:12]}: {exc}", node=node)
    handler = _relay_handler(relay, job.job_id, job.limits.wall_time) if job.relay_llm else None
    with workspace(job.program) as path:
        try:
            result = inner.run(path, job.request, limits=job.limits, llm=handler)
        except SandboxError as exc:
            return NodeReply(None, broke=f"inner sandbox on node {node[:12]}: {exc}", node=node)
        finally:
            close = getattr(inner, "close", None)
            if callable(close) and inner is not job.inner:
                close()
        if not (job.return_workspace and result.ok):
            return NodeReply(result, node=node)
        try:
            edited = Program.from_directory(path)
        except ProgramError as exc:
            return NodeReply(result, workspace_error=str(exc), node=node)
    return NodeReply(result, workspace=edited, node=node)


def _inner_sandbox(job: NodeJob) -> Sandbox:
    if not isinstance(job.inner, str):
        return job.inner
    from hyperagents.sandbox import get_sandbox

    return get_sandbox(
        job.inner, preload=job.preload, hide=job.hide, memory_mb=job.limits.memory_mb
    )


def _relay_handler(relay: Any, job_id: str, patience: float) -> Any:
    """The inner sandbox's ``llm`` handler: each call goes to the engine through ``relay``."""
    import ray

    def ask(request: dict[str, Any]) -> dict[str, Any]:
        reply = ray.get(relay.ask.remote(job_id, request, patience), timeout=patience + 10.0)
        return reply if isinstance(reply, dict) else {"error": NO_REPLY}

    return ask


@dataclass
class _Box:
    """One job's mail in the relay."""

    started: bool = False
    told_started: bool = False
    requests: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    news: asyncio.Event = field(default_factory=asyncio.Event)


class Relay:
    """The mailbox between nodes and the engine (made a Ray async actor by the engine).

    Holds no secret: requests are what the sandboxed code asked, replies what the engine's
    gateway answered.
    """

    def __init__(self) -> None:
        self._boxes: dict[str, _Box] = {}
        self._ids = itertools.count(1)

    def _box(self, job_id: str) -> _Box:
        box = self._boxes.get(job_id)
        if box is None:
            box = self._boxes[job_id] = _Box()
        return box

    async def started(self, job_id: str) -> None:
        """The job started on its node (its deadline counts from now)."""
        box = self._box(job_id)
        box.started = True
        box.news.set()

    async def ask(self, job_id: str, request: dict[str, Any], patience: float) -> dict[str, Any]:
        """A node's language-model request; returns the engine's reply (or an error)."""
        box = self._box(job_id)
        call_id = next(self._ids)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        box.waiting[call_id] = reply
        box.requests.append((call_id, request))
        box.news.set()
        try:
            return await asyncio.wait_for(reply, patience)
        except TimeoutError:
            return {"error": NO_REPLY}
        finally:
            box.waiting.pop(call_id, None)

    async def poll(self, job_id: str, wait: float) -> dict[str, Any]:
        """The engine's side: whether the job started, and the requests waiting (up to
        ``wait`` seconds for news)."""
        box = self._box(job_id)
        if not box.requests and box.started == box.told_started:
            box.news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(box.news.wait(), wait)
        requests, box.requests = box.requests, []
        box.told_started = box.started
        return {"started": box.started, "requests": requests}

    async def answer(self, job_id: str, call_id: int, reply: dict[str, Any]) -> None:
        """The engine's reply to one request."""
        box = self._boxes.get(job_id)
        future = None if box is None else box.waiting.get(call_id)
        if future is not None and not future.done():
            future.set_result(reply)

    async def close(self, job_id: str) -> None:
        """The job is over: forget it (a request still waiting gets an error)."""
        box = self._boxes.pop(job_id, None)
        if box is None:
            return
        for future in box.waiting.values():
            if not future.done():
                future.set_result({"error": "the job is over"})
