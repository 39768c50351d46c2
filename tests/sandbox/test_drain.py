"""The drain thread: one per request, it reads stdout, stderr and the status pipe, feeds a large
request body, samples usage while the run goes on and acts at the wall-clock deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from hyperagents.sandbox._deadline import Deadline
from hyperagents.sandbox._drain import Drain
from hyperagents.sandbox._readers import CappedBuffer, StatusBuffer


@contextmanager
def child(code: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # and what it left in its group
        proc.wait()
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                stream.close()


def status_pipe(report: bytes | None) -> StatusBuffer:
    """A status buffer whose pipe already holds ``report`` and is closed."""
    read_fd, write_fd = os.pipe()
    if report is not None:
        os.write(write_fd, report)
    os.close(write_fd)
    return StatusBuffer(os.fdopen(read_fd, "rb"), lambda: 1.5)


def test_it_feeds_a_large_body_and_keeps_capped_output() -> None:
    body = os.urandom(1_000_000)
    code = (
        "import sys\nd = sys.stdin.buffer.read()\nsys.stdout.buffer.write(d)\n"
        "sys.stderr.write(str(len(d)))\n"
    )
    with child(code) as proc:
        assert proc.stdin and proc.stdout and proc.stderr
        stdout, stderr = CappedBuffer(proc.stdout, cap=1000), CappedBuffer(proc.stderr)
        status = status_pipe(b'{"type": "isolation"}\n')
        deadline = Deadline(60)
        deadline.start()
        drain = Drain((stdout, stderr, status), status=status)
        drain.watch(deadline, lambda: None)
        drain.feed(proc.stdin, body)
        drain.start()
        assert proc.wait(timeout=30) == 0
        deadline.stop()
        drain.join(timeout=5)
        assert not drain.is_alive()
        assert stdout.data == body[:1000] and stdout.truncated and stdout.size == 1000
        assert stderr.data == b"1000000" and not stderr.truncated
        assert proc.stdin.closed
        assert status.report() == {"type": "isolation"} and status.cpu == 1.5
        status.stream.close()


def test_the_deadline_fires_once_and_a_moved_deadline_is_seen_at_once() -> None:
    with child("import time\ntime.sleep(60)\n") as proc:
        assert proc.stdout and proc.stderr
        status = status_pipe(None)
        deadline = Deadline(0.3, validate_time=600)
        deadline.start()
        fired: list[float] = []

        def kill() -> None:
            fired.append(time.monotonic())
            os.killpg(proc.pid, signal.SIGKILL)

        drain = Drain((CappedBuffer(proc.stdout), CappedBuffer(proc.stderr), status), status=status)
        drain.watch(deadline, kill)
        started = time.monotonic()
        drain.start()
        time.sleep(0.1)
        deadline.validated()  # 600 s became 0.3 s from now: the drain must not sleep on
        assert proc.wait(timeout=10) == -9
        deadline.stop()
        drain.join(timeout=5)
        assert not drain.is_alive()
        assert len(fired) == 1 and 0.35 <= fired[0] - started < 3.0
        assert status.report() is None and status.at is None
        status.stream.close()


def test_it_samples_while_the_run_goes_on_and_stops_with_it() -> None:
    samples: list[float] = []
    with child("import time\ntime.sleep(0.5)\n") as proc:
        assert proc.stdout and proc.stderr
        status = status_pipe(b'{"type": "isolation"}\n')
        deadline = Deadline(60)
        deadline.start()
        drain = Drain(
            (CappedBuffer(proc.stdout), CappedBuffer(proc.stderr), status),
            status=status,
            sample=lambda: samples.append(time.monotonic()),
            interval=0.05,
        )
        drain.watch(deadline, lambda: None)
        drain.start()
        proc.wait(timeout=10)
        deadline.stop()
        drain.join(timeout=5)
        assert not drain.is_alive()
        assert len(samples) >= 4
        count = len(samples)
        time.sleep(0.2)
        assert len(samples) == count
        status.stream.close()


def test_a_pipe_held_by_an_escaped_process_does_not_hold_the_drain() -> None:
    escape = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('left', flush=True)\n"
    )
    with child(escape) as proc:
        assert proc.stdout and proc.stderr
        stdout = CappedBuffer(proc.stdout)
        status = status_pipe(None)
        deadline = Deadline(60)
        deadline.start()
        drain = Drain((stdout, CappedBuffer(proc.stderr), status), status=status)
        drain.watch(deadline, lambda: None)
        drain.start()
        assert proc.wait(timeout=10) == 0
        deadline.stop()
        drain.join(timeout=0.5)
        assert drain.is_alive()  # the grandchild still holds stdout and stderr open
        drain.stop()
        drain.join(timeout=1)
        assert not drain.is_alive()
        assert stdout.data == b"left\n"
        status.stream.close()
