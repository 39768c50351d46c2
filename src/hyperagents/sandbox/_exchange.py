"""One request's exchange with a started harness: what the launcher does once the process is
there (a fork server's child or a cold start).

:class:`Exchange` feeds the request, enforces the wall clock, waits for the process, and
classifies the outcome from what the engine read and measured outside it. It holds the hooks
this needs (each documented where it is defined) with their defaults; a sandbox overrides them
on its launcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._base import Limits, Outcome, SandboxResult
from hyperagents.sandbox._checkpoint import CheckpointHook, progress_hook
from hyperagents.sandbox._cleanup import kill_group, processes_of
from hyperagents.sandbox._deadline import Deadline
from hyperagents.sandbox._forkserver import ForkedProcess
from hyperagents.sandbox._messages import classify
from hyperagents.sandbox._outcome import Started, annotate, cpu_limit, finish_readers, measured
from hyperagents.sandbox._readers import LLMHandler, MessageHook

__all__ = ["Exchange", "Hooks"]

#: What a run answers and reports to as the sandboxed code goes: its LLM handler, the hook
#: that takes its progress messages, and the one that takes the checkpoints they name.
Hooks = tuple[LLMHandler | None, MessageHook | None, CheckpointHook | None]

#: Seconds a fork server may take, after its child's wall-clock limit, to report on it.
_SERVER_GRACE = 30.0
#: Bytes a pipe holds without a reader on Linux (the default size).
_PIPE_CAPACITY = 65536


class Exchange:
    """Feed a started harness its request, wait for it and classify the outcome (the base of
    :class:`~hyperagents.sandbox._launcher.Launcher`)."""

    #: The sandbox's name, in messages and logs.
    name = "launcher"
    #: Whether the sandbox itself (not the harness) gives the code an empty network namespace.
    isolates_network = False
    #: Whether the waited-for process is a monitor whose rusage misses the harness's, so the
    #: harness's usage is read from ``/proc`` while it runs (and an unexplained SIGKILL is the
    #: hard CPU limit, the one thing inside that sends it).
    reports_usage = False

    def _request_extras(self) -> dict[str, Any]:
        """Isolation settings added to every request (read by the harness)."""
        return {}

    def _forked_extras(self, *, own_pids: bool) -> dict[str, Any]:
        """Isolation settings for a request run by a fork server's child, instead of
        :meth:`_request_extras` (default: the same); ``own_pids``: the child runs in a PID
        namespace of its own."""
        return self._request_extras()

    def _after(self, uid: int | None, directory: Path | None = None) -> None:
        """Clean up after the process exited (the process group is already killed)."""

    def _exit_code(self, code: int) -> int:
        """The harness's exit code, given the started process's."""
        return code

    def _check_started(self, code: int, stderr: str) -> None:
        """Raise SandboxError when the sandbox itself failed before the harness ran."""

    def _payload(
        self,
        request: dict[str, Any],
        limits: Limits,
        uid: int | None,
        *,
        forked: ForkedProcess | None = None,
    ) -> bytes:
        """The request as the harness reads it, with its limits and isolation settings.

        Raises:
            SandboxError: The request is not JSON-serialisable.
        """
        cpu = cpu_limit(limits)
        payload = dict(request)
        nproc = limits.max_processes
        if uid is None and hasattr(os, "getuid") and os.getuid() != 0:
            # The kernel counts every process of the user: leave room for those already running.
            nproc += len(processes_of(os.getuid()))
        payload["limits"] = {
            "cpu_time": cpu,
            "memory_mb": limits.memory_mb,
            "max_processes": nproc,
            "max_file_size_mb": limits.max_file_size_mb,
        }
        payload["user"] = uid
        if self.reports_usage and forked is None:
            payload["await_ack"] = True  # stay until the engine has read its usage from /proc
        if forked is not None:
            payload.update(self._forked_extras(own_pids=forked.pid_namespace))
        else:
            payload.update(self._request_extras())
        try:
            return json.dumps(payload, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise SandboxError(f"request is not JSON-serialisable: {exc}") from exc

    def _finish(
        self,
        started: Started,
        request: dict[str, Any],
        limits: Limits,
        hooks: Hooks = (None, None, None),
    ) -> SandboxResult:
        """Send the request to a started process, wait for it and classify the outcome."""
        llm, on_message, on_checkpoint = hooks
        proc = started.proc
        validates = isinstance(request.get("validate"), dict)
        deadline = Deadline(limits.wall_time, limits.validate_time if validates else None)
        started.channel.on_validation = deadline.validated
        started.channel.handler = llm
        started.channel.on_progress = progress_hook(
            on_message,
            on_checkpoint,
            started.directory,
            max_bytes=4 * limits.max_file_size_mb * 1024 * 1024,
        )
        # A fork server reports its child's usage: nothing to read from /proc before it exits.
        started.channel.ack_final = self.reports_usage and not started.forked
        started.stdout.cap = started.stderr.cap = limits.max_output_bytes
        started.channel.cap = limits.max_result_bytes
        try:
            forked = started.proc if isinstance(started.proc, ForkedProcess) else None
            body = self._payload(request, limits, started.uid, forked=forked)
        except SandboxError:
            kill_group(proc.pid)
            with contextlib.suppress(ChildProcessError):
                proc.wait()
            raise
        timed_out, wall, usage = self._wait(started, body, deadline)
        # A run killed while it validated was held to (and is reported with) that limit.
        held_to = replace(limits, wall_time=deadline.limit)
        return self._outcome(started, limits, held_to, timed_out=timed_out, wall=wall, usage=usage)

    def _wait(self, started: Started, body: bytes, deadline: Deadline) -> tuple[bool, float, Any]:
        """Feed the request and wait for the process, killing its group at the ``deadline``
        and after it exited; return (timed out, wall seconds, the kernel's resource usage).

        Raises:
            SandboxError: The process was lost (a bug in the engine).
        """
        proc = started.proc
        timed_out = threading.Event()

        def kill_at_deadline() -> None:  # called by the drain thread, at most once
            timed_out.set()
            started.probe.sample()  # the last reading before the kill
            kill_group(proc.pid)

        start = time.perf_counter()
        deadline.start()
        started.drain.watch(deadline, kill_at_deadline)
        assert proc.stdin is not None
        if len(body) < _PIPE_CAPACITY:
            _feed(proc.stdin, body)  # fits in the pipe: cannot block
        else:
            started.drain.feed(proc.stdin, body)  # written as the harness reads it
        for reader in started.readers:
            reader.start()
        usage: Any
        try:
            if isinstance(proc, ForkedProcess):
                # The drain kills the child at the limit; its server then reports at once.
                status, usage = proc.wait4(deadline.longest + _SERVER_GRACE)
            else:
                _, status, usage = os.wait4(proc.pid, 0)
        except ChildProcessError as exc:  # pragma: no cover - would be a bug in the engine
            raise SandboxError(f"lost the sandboxed process: {exc}") from exc
        finally:
            deadline.stop()
            started.channel.closed.set()  # the job is over: answer no more LLM requests
            # Whatever the child left in its group (daemonised helpers…) dies with it.
            kill_group(proc.pid)
            self._after(started.uid, started.directory)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return timed_out.is_set(), time.perf_counter() - start, usage

    def _outcome(
        self,
        started: Started,
        limits: Limits,
        held_to: Limits,
        *,
        timed_out: bool,
        wall: float,
        usage: Any,
    ) -> SandboxResult:
        """Classify a finished run from what the engine read and measured outside it
        (``held_to``: its limits, with the wall-clock limit of the phase it ended in).

        Raises:
            SandboxError: The harness did not report itself isolated.
        """
        finish_readers(started)
        report = self._isolation_report(started, timed_out)
        cpu_used, peak_mb = self._usage(started, usage)
        received = started.channel.received
        problem = next((r.problem for r in received if r.problem), None)
        if started.channel.truncated:
            problem = problem or f"more than {limits.max_result_bytes} bytes of messages"
        result = classify(
            messages=measured(received, started.status),
            problem=problem,
            timed_out=timed_out,
            exit_code=self._exit_code_of(started),
            cpu_used=cpu_used,
            cpu_limit=cpu_limit(limits),
            limits=held_to,
            stdout=started.stdout.data.decode("utf-8", "replace"),
            stderr=started.stderr.data.decode("utf-8", "replace"),
            wall=wall,
            peak_mb=peak_mb,
            cpu_unknown=self.reports_usage and not started.forked,
        )
        if isinstance(started.proc, ForkedProcess) and started.proc.server_lost and not timed_out:
            why = "crash: the sandboxed code killed or stopped the fork server that ran it"
            result = replace(result, outcome=Outcome.CRASH, reason=why)
        annotate(result, started, report, network=self.isolates_network)
        result.extra["start"] = "forked" if started.forked else "cold"
        refused = [r.problem for r in received if r.problem]
        if refused:
            result.extra["refused_messages"] = {"count": len(refused), "first": refused[0]}
        return result

    def _isolation_report(self, started: Started, timed_out: bool) -> dict[str, Any]:
        """The harness's own status report, read from the pipe the agent never held.

        Raises:
            SandboxError: The harness could not isolate itself, or never got as far as saying
                so (the interpreter or the sandbox did not start): no agent code ran.
        """
        report = started.status.report()
        if report is not None and report.get("type") == "isolation":
            return report
        if report is not None:
            raise SandboxError(f"{self.name} sandbox: {str(report.get('error'))[:500]}")
        code = started.proc.returncode
        stderr = started.stderr.data.decode("utf-8", "replace")
        if not timed_out and code is not None and code != 0:
            self._check_started(code, stderr)
        tail = stderr.strip().splitlines()[-1:] or [""]
        what = "within the wall-clock limit" if timed_out else f"(exit code {code})"
        raise SandboxError(
            f"the {self.name} sandbox's harness did not start {what}: {tail[0][:300]}".rstrip(": ")
        )

    def _exit_code_of(self, started: Started) -> int:
        """The harness's exit code (a fork server's child is waited for directly)."""
        code = started.proc.returncode
        assert code is not None
        return code if started.forked else self._exit_code(code)

    def _usage(self, started: Started, usage: Any) -> tuple[float, float]:
        """CPU seconds and peak MiB of the run, measured outside the sandbox."""
        started.probe.sample()
        cpu = started.probe.cpu or 0.0
        peak = started.probe.peak_mb
        if not self.reports_usage or started.forked:
            # The waited-for process is the harness itself (or a fork server's child, which
            # its server waited for): the kernel's account is complete.
            cpu = max(cpu, usage.ru_utime + usage.ru_stime)
            peak = max(peak, usage.ru_maxrss / 1024.0)
        return cpu, peak


def _feed(stream: IO[bytes], body: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        stream.write(body)
    with contextlib.suppress(OSError, ValueError):
        stream.close()
