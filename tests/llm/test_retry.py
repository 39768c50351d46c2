"""Retry policy: what is retried, the deterministic backoff, and the log of a failure streak."""

from __future__ import annotations

import logging

import pytest

from hyperagents.exceptions import LLMError, LLMResponseError, LLMTransientError
from hyperagents.llm import Gateway, ScriptedProvider
from hyperagents.llm._retry import (
    MAX_RETRY_AFTER,
    FailureStreak,
    backoff_delay,
    retryable,
    server_wait,
)


def test_transient_failures_and_malformed_replies_are_retried_nothing_else() -> None:
    assert retryable(LLMTransientError("t")) and retryable(LLMResponseError("r"))
    assert not retryable(LLMError("e")) and not retryable(ValueError("v"))
    assert server_wait(LLMTransientError("t", retry_after=2.0)) == 2.0
    assert server_wait(LLMResponseError("r")) is None


def test_the_backoff_is_the_gateways_and_a_server_wait_is_capped() -> None:
    gateway = Gateway(ScriptedProvider(["a"]), backoff=0.5, max_backoff=3.0, seed=9)
    for retry in (1, 2, 3, 4):
        delay = backoff_delay(
            seed=9, key="k", retry=retry, backoff=0.5, max_backoff=3.0, retry_after=None
        )
        assert delay == gateway.retry_delay("k", retry)
        assert min(3.0, 0.5 * 2 ** (retry - 1)) / 2 <= delay <= min(3.0, 0.5 * 2 ** (retry - 1))
    capped = backoff_delay(seed=0, key="k", retry=1, backoff=0.5, max_backoff=3.0, retry_after=1e6)
    assert capped == MAX_RETRY_AFTER


def test_a_streak_warns_once_per_failure_and_says_when_the_model_answers_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    streak = FailureStreak()
    assert streak.failed(LLMTransientError("slow")) == ("LLMTransientError: slow", False)
    assert streak.failed(LLMTransientError("slow"))[1] is True
    assert streak.failed(LLMError("key sk-abcdefghijkl")) == ("LLMError: key sk-***", False)
    with caplog.at_level(logging.INFO, logger="hyperagents.llm"):
        streak.succeeded()
        streak.succeeded()
    assert [r.getMessage() for r in caplog.records] == [
        "the LLM answers again after 3 failed attempt(s)"
    ]
    assert streak.failed(LLMTransientError("slow"))[1] is False
