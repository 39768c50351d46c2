"""An interrupt (Ctrl-C, or SIGTERM under the CLI) that lands between two writes that belong
together is held until the engine next waits, so the work in flight is still finished."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from hyperagents.runs import Run, RunConfig
from hyperagents.runs._interrupts import DeferredInterrupts
from hyperagents.runs._jobs import Jobs
from hyperagents.storages import InMemoryStorage, RunStatus, VariantRecord

from toytask import ToyTask


@pytest.fixture(autouse=True)
def _sigint_interrupts() -> Iterator[None]:
    """Ctrl-C's own handler, also when pytest runs in the background (where a shell starts it
    with SIGINT ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def test_an_interrupt_outside_a_wait_is_held_until_the_next_wait() -> None:
    with DeferredInterrupts() as interrupts:
        signal.raise_signal(signal.SIGINT)  # held: no KeyboardInterrupt here
        assert interrupts.pending
        with pytest.raises(KeyboardInterrupt), interrupts.allowed():
            pytest.fail("the held interrupt is raised on entering the wait")
        assert not interrupts.pending


def test_an_interrupt_inside_a_wait_and_a_second_one_land_at_once() -> None:
    with DeferredInterrupts() as interrupts:
        with pytest.raises(KeyboardInterrupt), interrupts.allowed():
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):  # the second: a person asking to abort
            signal.raise_signal(signal.SIGINT)


def test_the_previous_handlers_run_and_come_back() -> None:
    seen: list[int] = []

    def mine(signum: int, frame: object) -> None:
        seen.append(signum)  # a handler that does not raise is left to do its job

    before = signal.signal(signal.SIGTERM, mine)
    try:
        with DeferredInterrupts() as interrupts:
            signal.raise_signal(signal.SIGTERM)
            assert not interrupts.pending
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)


def test_an_interrupt_right_after_a_child_is_recorded_still_finishes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = InMemoryStorage()
    run = Run.create(
        task=ToyTask(),
        name="interrupted",
        seed=1,
        storage=store,
        config=RunConfig.parse({"subset_size": 10}),
    )
    ask = Jobs.ask
    asked: list[int] = []

    def ask_then_interrupt(self: Jobs, variants: Sequence[VariantRecord], **kw: Any) -> Any:
        job, created = ask(self, variants, **kw)
        asked.append(created.id)
        if len(asked) == 3:  # the child is recorded, not yet handed to a worker
            signal.raise_signal(signal.SIGINT)
        return job, created

    monkeypatch.setattr(Jobs, "ask", ask_then_interrupt)
    record = run.optimize(50)
    assert (record.status, run.last_stop_reason) == (RunStatus.STOPPED, "interrupted")
    variants = run.variants()
    assert asked[2] in {v.id for v in variants}
    assert all(v.state.is_terminal for v in variants)  # the third child was finished too
    assert max(v.generation for v in variants) < 50


def test_a_waiting_main_thread_takes_a_signal_another_thread_received() -> None:
    """The kernel may hand SIGTERM to any thread; the main thread, blocked waiting for work
    that never ends, must still run its handler (an experiment hung so, one time in ten)."""
    from concurrent.futures import Future

    from hyperagents.runs import wait_awake

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    never: Future[None] = Future()
    # The main thread blocks SIGTERM, so the kernel must give it to the other thread.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            wait_awake([never])
    finally:
        timer.cancel()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        signal.signal(signal.SIGTERM, previous)
