"""The arena tests interrupt runs with Ctrl-C (``_thread.interrupt_main``, SIGINT).

A test process started where SIGINT is ignored (a background job of a shell without job
control, ``nohup ... &``) inherits that: Python then installs no ``KeyboardInterrupt`` handler,
``interrupt_main`` does nothing, and an engine process it spawns ignores SIGINT too. Each test
here runs with Python's own handler, as in a terminal (a process it spawns then gets the
default disposition, and installs its own).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def ctrl_c_interrupts() -> Iterator[None]:
    """SIGINT raises ``KeyboardInterrupt`` during the test, whatever the process inherited."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
