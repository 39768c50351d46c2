"""``hyperagents serve`` in a process of its own, for end-to-end tests and benchmarks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from hyperagents.testing._servers import cli_server

__all__ = ["service_server"]


@contextmanager
def service_server(
    storage_url: str,
    run: str,
    *,
    workers: int = 2,
    token: str | None = None,
    start_timeout: float = 120.0,
    extra_args: Sequence[str] = (),
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve a run's champion with ``hyperagents serve`` on a free loopback port and yield the
    base URL and the process once it answers; stop it (SIGTERM) on exit. ``extra_args`` are
    more options of ``serve`` (``--improve``…).

    Raises:
        RuntimeError: It did not answer within ``start_timeout`` seconds (its output is given).
    """
    args = ["serve", run, "--storage", storage_url, "--workers", str(workers), *extra_args]
    if token is not None:
        args += ["--token", token]
    with cli_server(
        args,
        probe="/api/service/status",
        what="the service",
        drop_env=("HYPERAGENTS_SERVICE_TOKEN",),
        headers={"Authorization": f"Bearer {token}"} if token else None,
        start_timeout=start_timeout,
    ) as found:
        yield found
