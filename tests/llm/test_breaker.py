"""The circuit breaker, and a gateway that does not flood the log while a model is down."""

from __future__ import annotations

import logging
import socket

import pytest

from hyperagents.exceptions import LLMConfigError, LLMTransientError
from hyperagents.llm import CircuitBreaker, Gateway, MemoryRecorder, OpenAICompatibleProvider
from hyperagents.testing import FakeOpenAIServer, FakeReply

Q = [{"role": "user", "content": "hi"}]


def test_it_opens_after_the_limit_of_failures_in_a_row() -> None:
    breaker = CircuitBreaker(3, what="the model m")
    assert not breaker.failure("down", variant_id=1)
    assert not breaker.failure("down", variant_id=2)
    assert breaker.check(3) is None
    assert breaker.failure("connection refused", variant_id=2)
    assert breaker.reason == "the model m failed 3 calls in a row (last: connection refused)"
    assert breaker.check(4) == breaker.reason
    # The variants whose calls failed in the streak, and the one refused after, are cut.
    assert [breaker.was_cut(v) for v in (1, 2, 3, 4)] == [True, True, False, True]
    assert not breaker.was_cut(1)  # asked once, then forgotten


def test_a_success_starts_the_count_again() -> None:
    breaker = CircuitBreaker(2)
    breaker.failure("down", variant_id=1)
    breaker.success()
    assert not breaker.failure("down", variant_id=2)
    assert breaker.reason is None
    assert breaker.failure("down", variant_id=3)
    assert not breaker.was_cut(1)  # its failure was before the success
    assert breaker.was_cut(2) and breaker.was_cut(3)


def test_a_fatal_failure_opens_it_at_once_and_reset_closes_it() -> None:
    breaker = CircuitBreaker(5)
    assert breaker.failure("the script ran out", variant_id=7, fatal=True)
    assert breaker.reason == "the script ran out"
    breaker.reset()
    assert breaker.reason is None and breaker.check(7) is None and not breaker.was_cut(7)


def test_a_long_failure_is_quoted_on_one_short_line() -> None:
    breaker = CircuitBreaker(1)
    breaker.failure("line one\nline two " + "x" * 1000)
    reason = breaker.reason or ""
    assert "\n" not in reason and len(reason) < 400 and "failed a call (last: line one" in reason


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_the_limit_is_checked(limit: object) -> None:
    with pytest.raises(LLMConfigError, match="failure limit"):
        CircuitBreaker(limit)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_model_that_stays_down_is_logged_once_and_every_attempt_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = OpenAICompatibleProvider("m", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    recorder = MemoryRecorder()
    gateway = Gateway(provider, retries=3, sleep=lambda _: None, recorder=recorder)
    with caplog.at_level(logging.DEBUG, logger="hyperagents.llm"):
        for _ in range(5):
            with pytest.raises(LLMTransientError):
                gateway.complete(Q)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "Connection refused" in warnings[0].getMessage()
    assert len(recorder) == 20  # 5 calls of 4 attempts, every one recorded


def test_a_new_failure_is_logged_and_recovery_is_said(caplog: pytest.LogCaptureFixture) -> None:
    replies: list[FakeReply | str] = [
        FakeReply(status=500),
        FakeReply(status=500),
        FakeReply(status=429),
        "ok",
    ]
    with FakeOpenAIServer(replies) as server:
        provider = OpenAICompatibleProvider("m", base_url=server.base_url)
        gateway = Gateway(provider, retries=3, sleep=lambda _: None)
        with caplog.at_level(logging.INFO, logger="hyperagents.llm"):
            assert gateway.complete(Q).text == "ok"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2  # the 500 once, then the 429
    assert "HTTP 500" in warnings[0] and "HTTP 429" in warnings[1]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["the LLM answers again after 3 failed attempt(s)"]
