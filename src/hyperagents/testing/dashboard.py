"""``hyperagents dashboard`` in a process of its own, for browser tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hyperagents.testing._servers import cli_server

__all__ = ["dashboard_server"]


@contextmanager
def dashboard_server(storage_url: str, *, start_timeout: float = 120.0) -> Iterator[str]:
    """Serve ``storage_url`` with ``hyperagents dashboard`` on a free loopback port (no token)
    and yield its base URL once it answers; stop it on exit.

    It waits for the server's first answer itself: the default patience is only there to tell
    a server that never starts, however long a busy machine takes to start one.

    Raises:
        RuntimeError: It did not answer within ``start_timeout`` seconds (its output is given).
    """
    with cli_server(
        ["dashboard", "--storage", storage_url],
        probe="/api/info",
        what="the dashboard",
        drop_env=("HYPERAGENTS_DASHBOARD_TOKEN",),
        start_timeout=start_timeout,
    ) as (base, _):
        yield base
