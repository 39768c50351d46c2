"""The wall-clock deadline of a run, in one phase or two (validation, then the rest)."""

from __future__ import annotations

import threading

from hyperagents.sandbox._deadline import Deadline


def test_one_phase_expires_at_its_limit_unless_stopped() -> None:
    deadline = Deadline(0.01)
    deadline.start()
    assert deadline.limit == 0.01 and deadline.expired()
    stopped = Deadline(600)
    stopped.start()
    stopped.stop()
    assert not stopped.expired()


def test_the_verdict_moves_a_validating_deadline_once() -> None:
    deadline = Deadline(0.01, validate_time=600)
    deadline.start()
    assert deadline.limit == 600  # the validation's limit is in force
    # Without the verdict this would wait ten minutes; with it, the rest has 0.01 s.
    threading.Timer(0.01, deadline.validated).start()
    assert deadline.expired()
    assert deadline.limit == 0.01
    later = Deadline(600, validate_time=0.01)
    later.start()
    later.validated()
    later.validated()  # a second verdict changes nothing
    threading.Timer(0.05, later.stop).start()
    assert not later.expired() and later.limit == 600


def test_a_validation_that_never_ends_expires_at_its_own_limit() -> None:
    deadline = Deadline(600, validate_time=0.01)
    deadline.start()
    assert deadline.expired() and deadline.limit == 0.01


def test_a_one_phase_deadline_ignores_verdicts() -> None:
    deadline = Deadline(600)
    deadline.start()
    deadline.validated()
    threading.Timer(0.05, deadline.stop).start()
    assert not deadline.expired() and deadline.limit == 600


def test_a_verdict_read_after_the_kill_leaves_the_limit_that_killed() -> None:
    deadline = Deadline(600, validate_time=0.01)
    deadline.start()
    assert deadline.expired()
    deadline.validated()
    assert deadline.limit == 0.01
    stopped = Deadline(300, validate_time=600)
    stopped.start()
    stopped.stop()
    stopped.validated()
    assert stopped.limit == 600 and not stopped.expired()
