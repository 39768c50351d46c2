"""Warm standbys: the pool keeps its target, hands out live ones, and leaves nothing behind."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from hyperagents.sandbox._standby import StandbyPool


@dataclass
class _Fake:
    number: int
    alive: bool = True
    thread: str = field(default_factory=lambda: threading.current_thread().name)


class _Factory:
    """Starts fake standbys (optionally held at a gate) and records what was discarded."""

    def __init__(self, *, fail: bool = False) -> None:
        self.numbers = itertools.count()
        self.started: list[_Fake] = []
        self.discarded: list[_Fake] = []
        self.gate = threading.Event()
        self.gate.set()
        self.starting = threading.Event()
        self.fail = fail

    def start(self) -> _Fake:
        self.starting.set()
        self.gate.wait(30)
        if self.fail:
            raise OSError("no interpreter")
        standby = _Fake(next(self.numbers))
        self.started.append(standby)
        return standby

    def discard(self, standby: _Fake) -> None:
        self.discarded.append(standby)

    def pool(self) -> StandbyPool[_Fake]:
        return StandbyPool(
            start=self.start, alive=lambda s: s.alive, discard=self.discard, name="fake"
        )


def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the pool did not get there"
        time.sleep(0.005)


def test_the_pool_keeps_its_target_and_replaces_what_is_taken() -> None:
    factory = _Factory()
    pool = factory.pool()
    pool.set_target(2)
    _until(lambda: pool.waiting == 2)
    first = pool.take()
    assert first is not None and first.number == 0  # the oldest first
    assert pool.waiting == 1
    pool.replenish()
    _until(lambda: pool.waiting == 2)
    assert len(factory.started) == 3 and factory.discarded == []
    # Every standby is started by the one long-lived thread (bubblewrap's --die-with-parent
    # follows the thread that started the process).
    assert {s.thread for s in factory.started} == {"hyperagents-standby"}
    pool.close()


def test_a_dead_standby_is_discarded_not_handed_out() -> None:
    factory = _Factory()
    pool = factory.pool()
    pool.set_target(2)
    _until(lambda: pool.waiting == 2)
    factory.started[0].alive = False
    taken = pool.take()
    assert taken is factory.started[1]
    assert factory.discarded == [factory.started[0]]
    assert pool.take() is None  # nothing waits until it is replenished
    pool.close()


def test_turning_warm_starts_off_leaves_no_standby_even_one_still_starting() -> None:
    factory = _Factory()
    pool = factory.pool()
    pool.set_target(1)
    _until(lambda: pool.waiting == 1)
    factory.gate.clear()  # the next standby hangs while it starts
    factory.starting.clear()
    pool.take()
    pool.replenish()
    assert factory.starting.wait(30)
    threading.Timer(0.05, factory.gate.set).start()
    pool.set_target(0)  # returns once the standby that was starting has been discarded
    assert pool.waiting == 0 and pool.target == 0
    assert [s.number for s in factory.discarded] == [1]


def test_close_discards_everything_and_starts_nothing_more_until_reopened() -> None:
    factory = _Factory()
    pool = factory.pool()
    pool.set_target(2)
    _until(lambda: pool.waiting == 2)
    pool.close()
    assert pool.waiting == 0 and len(factory.discarded) == 2
    pool.replenish()
    time.sleep(0.05)
    assert pool.waiting == 0 and len(factory.started) == 2
    pool.set_target(1)  # reopens
    _until(lambda: pool.waiting == 1)
    pool.close()


def test_a_standby_that_fails_to_start_costs_only_a_cold_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = _Factory(fail=True)
    pool = factory.pool()
    with caplog.at_level(logging.WARNING, logger="hyperagents"):
        pool.set_target(1)
        _until(lambda: "could not start a warm fake sandbox: no interpreter" in caplog.text)
    assert pool.take() is None
    pool.close()


def test_a_standby_put_back_waits_again_and_a_dead_one_is_replaced() -> None:
    factory = _Factory()
    pool = factory.pool()
    pool.set_target(1)
    _until(lambda: pool.waiting == 1)
    server = pool.take()
    assert server is not None and pool.waiting == 0
    pool.put_back(server)  # it served a request and can serve more
    assert pool.waiting == 1 and factory.discarded == []
    again = pool.take()
    assert again is server
    again.alive = False
    pool.put_back(again)  # it died while serving: discarded, and a new one is started
    assert factory.discarded == [server]
    _until(lambda: pool.waiting == 1)
    assert len(factory.started) == 2
    pool.close()


def test_a_standby_put_back_to_a_closed_pool_is_discarded() -> None:
    factory = _Factory()
    pool = factory.pool()
    pool.set_target(1)
    _until(lambda: pool.waiting == 1)
    server = pool.take()
    assert server is not None
    pool.close()
    pool.put_back(server)
    assert factory.discarded == [server] and pool.waiting == 0
