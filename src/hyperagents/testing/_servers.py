"""A ``hyperagents`` command serving HTTP in a process of its own, on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

__all__ = ["cli_server", "free_port"]


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def cli_server(
    args: Sequence[str],
    *,
    probe: str,
    what: str,
    drop_env: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    start_timeout: float = 120.0,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``hyperagents ARGS --port PORT`` and yield its base URL and process once ``probe``
    (a path) answers; stop it (SIGTERM, then SIGKILL) on exit.

    Raises:
        RuntimeError: It did not answer within ``start_timeout`` seconds (its output is given).
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in drop_env}
    command = [sys.executable, "-m", "hyperagents", *args, "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                request = urllib.request.Request(f"{base}{probe}", headers=dict(headers or {}))
                with urllib.request.urlopen(request, timeout=10):
                    break
            except (urllib.error.URLError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    said = process.stdout.read().decode(errors="replace") if process.stdout else ""
                    raise RuntimeError(f"{what} did not start: {said}") from None
                time.sleep(0.2)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
