"""The Ray sandbox: each job a Ray task that runs it, on a node, in an inner sandbox.

:class:`RaySandbox` implements the sandbox protocol for a Ray cluster (the optional extra
``ray``). The engine stays where it is; each :meth:`~RaySandbox.run` ships the workspace's files
and the harness request to a node as one Ray task (:func:`~hyperagents.sandbox._ray_node.run_job`),
which runs it there in the *inner* sandbox (bubblewrap by default): the candidate is sandboxed on
the node exactly as it would be on the engine's machine, and only what the local sandbox would
give it travels (never labels, scores, the task's files or API keys).

Time: a job waits in Ray's queue up to ``queue_timeout`` seconds (then it is cancelled and the
sandbox raises :class:`~hyperagents.exceptions.SandboxError`, which the engine retries); its own
deadline counts from when it starts on its node. The inner sandbox enforces the limits there;
should the Ray worker itself hang past them (plus ``grace``), the engine cancels the task
(``ray.cancel(force=True)``, which kills the worker and its sandboxed processes) and records a
timeout. A worker or node lost while running a job, or a reply that is not one, is retried
(``retries`` times) and then recorded as a crash of that candidate: never an error of the run.

Language-model calls from sandboxed code on a node come back to the engine through a relay
actor (:class:`~hyperagents.sandbox._ray_node.Relay`) and are answered by the engine's own
handler, so the API key never leaves the engine and budgets and the record apply as with a
local sandbox.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hyperagents.exceptions import ConfigError, ProgramError, SandboxError
from hyperagents.program import Program
from hyperagents.sandbox._base import Limits, Outcome, Sandbox, SandboxResult
from hyperagents.sandbox._ray_node import NodeJob, NodeReply, Relay, run_job

__all__ = ["RAY_MISSING", "RaySandbox", "import_ray"]

logger = logging.getLogger("hyperagents")

RAY_MISSING = "the ray sandbox needs Ray, which is not installed: pip install 'hyperagents[ray]'"
INNER_SANDBOXES = ("auto", "bwrap", "process")

#: Seconds the engine waits for news of a job (its start, a language-model request) at a time.
_POLL = 0.5

#: One process-wide connection to Ray: whoever connects first holds this while connecting.
_CONNECTING = threading.Lock()

LLMHandler = Callable[[dict[str, Any]], dict[str, Any]]


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ConfigError: Ray is not installed (the extra ``ray``).
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(RAY_MISSING) from exc
    return ray


class _Lost(Exception):
    """The Ray worker or node running a job was lost, or its reply was not one."""


class _RelayLost(_Lost):
    """The relay actor died (a new one is started for the next attempt)."""


class RaySandbox:
    """Runs each job as a Ray task, in an inner sandbox on the node that takes it.

    Args:
        address: The cluster: None starts a local Ray instance in this process (or uses the
            one already started here); ``"auto"`` joins the cluster this machine belongs to;
            ``"ray://host:port"`` (Ray Client) or ``"host:port"`` names one.
        inner: The sandbox a job runs in on its node (``bwrap``, ``auto``, ``process``), or a
            picklable sandbox object.
        preload: Modules the inner sandbox imports ahead of time.
        hide: Host paths agent code must not see (the run's task), hidden where they exist on
            the node too.
        queue_timeout: Seconds a job may wait for a node (None: no limit).
        grace: Seconds a started job may run beyond its own limits before the engine cancels
            the Ray worker.
        retries: Times a job whose worker or node was lost is tried again before it is
            recorded as the candidate's crash.
        num_cpus: CPUs a job takes on its node (Ray's scheduling).

    Raises:
        ConfigError: Ray is not installed, or the inner sandbox is unknown.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        inner: str | Sandbox = "bwrap",
        preload: tuple[str, ...] = (),
        hide: Iterable[str] = (),
        queue_timeout: float | None = 600.0,
        grace: float = 30.0,
        retries: int = 2,
        num_cpus: float = 1.0,
    ) -> None:
        import_ray()
        if isinstance(inner, str) and inner not in INNER_SANDBOXES:
            raise ConfigError(
                f"unknown inner sandbox {inner!r} for ray; choose one of: "
                + ", ".join(INNER_SANDBOXES)
            )
        self.address, self.inner = address, inner
        self.preload, self.hide = tuple(preload), tuple(str(p) for p in hide)
        self.queue_timeout, self.grace = queue_timeout, grace
        self.retries, self.num_cpus = retries, num_cpus
        self._lock = threading.Lock()
        self._relay: Any = None
        self._remote: Any = None
        self._in_flight: set[Any] = set()

    # -- connection ----------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster (or start the local instance) and start the relay, once.

        Raises:
            SandboxError: Ray cannot be reached or started.
        """
        ray = import_ray()
        with self._lock:
            if self._relay is not None:
                return
            _connect(ray, self.address)
            try:
                self._remote = ray.remote(num_cpus=self.num_cpus, max_retries=0)(run_job)
                relay = ray.remote(num_cpus=0, max_concurrency=1000)(Relay)
                self._relay = relay.options(**_near_here(ray)).remote()
            except Exception as exc:
                raise SandboxError(f"cannot start the Ray relay: {exc}") from exc

    def set_warm(self, count: int) -> None:
        """Connect ahead of the first job when a run starts (nothing stays warm here)."""
        if count > 0:
            self.connect()

    def close(self) -> None:
        """Cancel the jobs still running and stop the relay (the cluster keeps running)."""
        ray = import_ray()
        with self._lock:
            refs, self._in_flight = list(self._in_flight), set()
            relay, self._relay = self._relay, None
        for ref in refs:
            _cancel(ray, ref, force=True)
        if relay is not None:
            try:
                ray.kill(relay)
            except Exception as exc:  # pragma: no cover - the cluster is gone already
                logger.debug("could not stop the Ray relay: %s", exc)

    # -- one job -------------------------------------------------------------------------------
    def run(
        self,
        workspace: Path,
        request: dict[str, Any],
        *,
        limits: Limits,
        llm: LLMHandler | None = None,
    ) -> SandboxResult:
        """Run the harness with ``request`` on a Ray node, in the inner sandbox there.

        The workspace's files travel with the job; when the request is an ``improve``, the
        files the meta agent left come back into ``workspace``.

        Raises:
            SandboxError: Ray cannot be reached, the inner sandbox broke on its node, or no
                node took the job within ``queue_timeout``.
        """
        try:
            program = Program.from_directory(workspace)
        except ProgramError as exc:
            raise SandboxError(f"cannot ship the workspace: {exc}") from exc
        job = NodeJob(
            job_id=uuid.uuid4().hex,
            program=program,
            request=request,
            limits=limits,
            inner=self.inner,
            preload=self.preload,
            hide=self.hide,
            relay_llm=llm is not None,
            return_workspace=request.get("action") == "improve",
        )
        began = time.perf_counter()
        lost: list[str] = []
        for _ in range(self.retries + 1):
            try:
                self.connect()
                result = self._attempt(job, llm)
            except _Lost as exc:
                lost.append(str(exc))
                logger.warning("Ray job lost (%s): trying again", exc)
                if isinstance(exc, _RelayLost):
                    with self._lock:
                        self._relay = None
                continue
            if isinstance(result, NodeReply):
                return _finish(result, workspace, time.perf_counter() - began)
            return result
        return SandboxResult(
            Outcome.CRASH,
            reason=f"the Ray worker running it was lost {len(lost)} times: {lost[-1]}"[:500],
            wall=time.perf_counter() - began,
            extra={"ray": {"lost": lost}},
        )

    def _attempt(self, job: NodeJob, llm: LLMHandler | None) -> NodeReply | SandboxResult:
        """Submit ``job`` once and wait for it.

        Raises:
            _Lost: Its worker or node was lost, or its reply was not one.
            SandboxError: Queue timeout, or Ray itself failed.
        """
        ray = import_ray()
        relay = self._relay
        if relay is None:
            raise SandboxError("the ray sandbox was closed")
        ref = self._remote.remote(job, relay)
        with self._lock:
            self._in_flight.add(ref)
        try:
            return self._await(ray, ref, relay, job, llm)
        except _RelayLost:
            _cancel(ray, ref, force=True)  # nobody could answer it or see its start any more
            raise
        finally:
            with self._lock:
                self._in_flight.discard(ref)
            try:
                relay.close.remote(job.job_id)
            except Exception as exc:  # the relay is gone: nothing to forget
                logger.debug("could not close a job in the Ray relay: %s", exc)

    def _await(
        self, ray: Any, ref: Any, relay: Any, job: NodeJob, llm: LLMHandler | None
    ) -> NodeReply | SandboxResult:
        """Wait for a submitted job, answering its language-model calls, keeping its
        deadlines."""
        limits = job.limits
        allowed = limits.wall_time + (limits.validate_time or 0.0) + self.grace
        submitted, started = time.monotonic(), None
        poll = relay.poll.remote(job.job_id, _POLL)
        while True:
            ready, _ = ray.wait([ref, poll], num_returns=1, timeout=_POLL * 2)
            if ref in ready:
                return _collect(ray, ref)
            if poll in ready:
                news = _get(ray, poll)
                if news.get("started") and started is None:
                    started = time.monotonic()
                for call_id, request in news.get("requests", ()):
                    relay.answer.remote(job.job_id, call_id, _answer(llm, request))
                poll = relay.poll.remote(job.job_id, _POLL)
            now = time.monotonic()
            if started is None and self.queue_timeout is not None:
                if now - submitted > self.queue_timeout:
                    _cancel(ray, ref, force=False)
                    raise SandboxError(
                        f"no Ray node took the job within {self.queue_timeout:g} s "
                        "(the cluster has no free CPU)"
                    )
            elif started is not None and now - started > allowed:
                _cancel(ray, ref, force=True)
                return SandboxResult(
                    Outcome.TIMEOUT,
                    reason=f"the Ray worker did not return within {allowed:g} s of starting "
                    "(cancelled)",
                    wall=now - started,
                    extra={"ray": {"queued": started - submitted, "cancelled": True}},
                )


def _connect(ray: Any, address: str | None) -> None:
    """``ray.init`` once per process, from a thread that lives as long as the process: the
    local instance's processes die with the *thread* that started them (``PR_SET_PDEATHSIG``),
    and an engine's worker threads come and go.

    Raises:
        SandboxError: Ray cannot be reached or started.
    """
    with _CONNECTING:
        if ray.is_initialized():
            return
        done = threading.Event()
        failure: list[BaseException] = []

        def keep() -> None:
            try:
                ray.init(**_init_options(address))
            except BaseException as exc:
                failure.append(exc)
            done.set()
            if not failure:
                threading.Event().wait()  # holds the local instance until the process exits

        threading.Thread(target=keep, name="hyperagents-ray", daemon=True).start()
        done.wait()
        if failure:
            where = "a local Ray instance" if address is None else f"Ray at {address}"
            raise SandboxError(f"cannot start {where}: {failure[0]}") from failure[0]


def _init_options(address: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        # None means a new local instance: never a cluster found through RAY_ADDRESS or the
        # file a `ray start` left behind (perhaps a cluster that is gone)
        "address": "local" if address is None else address,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
        "ignore_reinit_error": True,
    }
    if address is None:
        options["include_dashboard"] = False
    return options


def _near_here(ray: Any) -> dict[str, Any]:
    """Options placing the relay on the engine's node when Ray can say which it is."""
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = ray.get_runtime_context().get_node_id()
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)}
    except Exception:
        return {}


def _answer(llm: LLMHandler | None, request: Any) -> dict[str, Any]:
    """The engine's reply to one relayed request (the local sandbox's rules: its failure is
    the agent's error reply)."""
    if llm is None:
        return {"error": "no language model is configured for this run"}
    if not isinstance(request, dict):
        return {"error": "malformed request"}
    try:
        return dict(llm(request))
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:1000]}


def _get(ray: Any, ref: Any) -> dict[str, Any]:
    """A relay reply.

    Raises:
        _Lost: The relay died (the job is tried again with a new one).
    """
    try:
        news = ray.get(ref)
    except ray.exceptions.RayError as exc:
        raise _RelayLost(f"relay: {type(exc).__name__}: {exc}"[:300]) from exc
    return news if isinstance(news, dict) else {}


def _collect(ray: Any, ref: Any) -> NodeReply | SandboxResult:
    """The finished task's reply.

    Raises:
        _Lost: Its worker or node was lost, or it returned something else.
        SandboxError: Ray failed in a way that is no job's doing.
    """
    errors = ray.exceptions
    try:
        reply = ray.get(ref)
    except errors.OutOfMemoryError as exc:
        return SandboxResult(
            Outcome.MEMORY, reason=f"Ray killed the worker for memory: {exc}"[:500]
        )
    except errors.TaskCancelledError as exc:
        raise SandboxError("the Ray job was cancelled") from exc
    except errors.RayTaskError as exc:  # the trusted task code raised: infrastructure
        raise SandboxError(f"the Ray job failed on its node: {exc}"[:1000]) from exc
    except errors.RayError as exc:  # worker crashed, node died, object lost…
        raise _Lost(f"{type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(reply, NodeReply) or not (
        reply.result is None or isinstance(reply.result, SandboxResult)
    ):
        raise _Lost(f"the Ray job returned {type(reply).__name__}, not a reply")
    if reply.result is None:
        raise SandboxError(reply.broke or "the inner sandbox broke on its node")
    return reply


def _finish(reply: NodeReply, workspace: Path, wall: float) -> SandboxResult:
    """The result of a job that came back, its edited workspace written back first."""
    result = reply.result
    assert result is not None  # checked by _collect
    extra = {**result.extra, "ray": {"node": reply.node, "wall": wall}}
    if reply.workspace_error:
        return _replace(
            result,
            outcome=Outcome.INVALID_OUTPUT,
            reason=f"left an invalid workspace: {reply.workspace_error}"[:500],
            extra=extra,
        )
    if reply.workspace is not None:
        _write_back(reply.workspace, workspace)
    return _replace(result, extra=extra)


def _write_back(program: Program, workspace: Path) -> None:
    """Make ``workspace`` hold exactly ``program``'s files."""
    from hyperagents.sandbox._workspace import remove_tree

    for entry in list(workspace.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            remove_tree(entry)
        else:
            entry.unlink()
    program.write_to(workspace)


def _replace(result: SandboxResult, **changes: Any) -> SandboxResult:
    from dataclasses import replace

    return replace(result, **changes)


def _cancel(ray: Any, ref: Any, *, force: bool) -> None:
    try:
        ray.cancel(ref, force=force)
    except Exception as exc:  # already finished, or the cluster is gone
        logger.debug("could not cancel a Ray job: %s", exc)
