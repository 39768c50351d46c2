"""Retries of the gateway: which failures are retried, the wait before each retry, and the log
of a streak of failures (a warning for a new failure, debug for the same one again, one line
when the model answers again).
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Final

from hyperagents.exceptions import LLMResponseError, LLMTransientError
from hyperagents.llm._base import redact_secrets

__all__ = [
    "MAX_RETRY_AFTER",
    "FailureStreak",
    "backoff_delay",
    "log_retry",
    "retryable",
    "server_wait",
]

logger = logging.getLogger("hyperagents.llm")

#: The longest wait a server's retry-after can impose (unless ``max_backoff`` is longer).
MAX_RETRY_AFTER: Final = 60.0


def retryable(exc: Exception) -> bool:
    """Whether a failed attempt is worth another: a transient failure or a malformed reply."""
    return isinstance(exc, LLMTransientError | LLMResponseError)


def server_wait(exc: Exception) -> float | None:
    """The retry-after a server gave with a transient failure, if any."""
    return exc.retry_after if isinstance(exc, LLMTransientError) else None


def backoff_delay(
    *,
    seed: int,
    key: str,
    retry: int,
    backoff: float,
    max_backoff: float,
    retry_after: float | None,
) -> float:
    """The wait before a retry (deterministic for a seed, key and retry number).

    ``min(max_backoff, backoff * 2**(retry-1))`` scaled by a jitter factor in [0.5, 1] drawn
    from a ``random.Random`` seeded by ``(seed, key, retry)``; a server's retry-after wins,
    capped at ``max(max_backoff, MAX_RETRY_AFTER)``.

    Args:
        seed: Seeds the jitter.
        key: The request key.
        retry: Which retry: 1 for the first.
        backoff: The wait before the first retry, before jitter.
        max_backoff: The longest computed wait.
        retry_after: The server's retry-after in seconds, if it gave one.

    Returns:
        Seconds to wait.
    """
    if retry_after is not None:
        return min(max(0.0, retry_after), max(max_backoff, MAX_RETRY_AFTER))
    base = min(max_backoff, backoff * 2.0 ** (retry - 1))
    jitter = random.Random(f"{seed}:{key}:{retry}").random()
    return base * (0.5 + jitter / 2)


class FailureStreak:
    """The failed attempts since the last success, for the log. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: str | None = None
        self._count = 0

    def failed(self, exc: Exception) -> tuple[str, bool]:
        """Count a failed attempt.

        Returns:
            Its description, and whether it repeats the last failure since the last success
            (then it is not logged as a warning again).
        """
        text = f"{type(exc).__name__}: {redact_secrets(str(exc))}"
        with self._lock:
            self._count += 1
            repeated = text == self._last
            self._last = text
        return text, repeated

    def succeeded(self) -> None:
        """End the streak; after failed attempts, say once that the model answers again."""
        with self._lock:
            failed, self._count = self._count, 0
            self._last = None
        if failed:
            logger.info("the LLM answers again after %d failed attempt(s)", failed)


def log_retry(*, attempt: int, attempts: int, failure: str, delay: float, repeated: bool) -> None:
    """Say that an attempt failed and when the next one starts (debug for a repeated failure).

    Args:
        attempt: The attempt that failed (1 for the first).
        attempts: How many attempts a request may make.
        failure: The failure's description.
        delay: Seconds until the next attempt.
        repeated: Whether the same failure was logged just before.
    """
    logger.log(
        logging.DEBUG if repeated else logging.WARNING,
        "LLM call failed (attempt %d of %d, %s); retrying in %.2f s%s",
        attempt,
        attempts,
        failure,
        delay,
        "" if repeated else " (the same failure again is logged at debug level)",
    )
