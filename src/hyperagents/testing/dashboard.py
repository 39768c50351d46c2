"""``hyperagents dashboard`` in a process of its own, for browser tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["dashboard_server"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def dashboard_server(storage_url: str, *, start_timeout: float = 120.0) -> Iterator[str]:
    """Serve ``storage_url`` with ``hyperagents dashboard`` on a free loopback port (no token)
    and yield its base URL once it answers; stop it on exit.

    It waits for the server's first answer itself: the default patience is only there to tell
    a server that never starts, however long a busy machine takes to start one.

    Raises:
        RuntimeError: It did not answer within ``start_timeout`` seconds (its output is given).
    """
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_DASHBOARD_TOKEN"}
    command = [sys.executable, "-m", "hyperagents", "dashboard", "--storage", storage_url]
    command += ["--port", str(port)]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/info", timeout=10):
                    break
            except (urllib.error.URLError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    said = process.stdout.read().decode(errors="replace") if process.stdout else ""
                    raise RuntimeError(f"the dashboard did not start: {said}") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
