"""A circuit breaker: stop calling a model that keeps failing.

A run that cannot reach its model would otherwise go on for hours, every job's calls failing
after their retries and every agent falling back to what it does without a model. The breaker
counts calls that failed (each after the gateway's retries) in a row; at ``limit`` of them, with
no success in between, it opens: callers stop calling the model, and the run stops with the
breaker's one-line reason, to be resumed once the model is fixed.
"""

from __future__ import annotations

import threading

from hyperagents.exceptions import LLMConfigError

__all__ = ["CircuitBreaker"]

#: The longest part of a failure's message a reason quotes.
_MAX_QUOTED = 300


class CircuitBreaker:
    """Counts consecutive failed model calls and opens after ``limit`` of them.

    A success closes the streak (the count starts again). A *fatal* failure, one certain to
    repeat (a script that ran out), opens the breaker at once. Once open, it stays open until
    :meth:`reset`. Thread-safe.

    Jobs are tracked by variant id: a variant whose call failed during the streak that opened
    the breaker, or whose call met the open breaker, is *cut* (:meth:`was_cut`): its job ran
    without its model, so its outcome is not to be recorded.

    Args:
        limit: Failed calls in a row that open the breaker (at least 1).
        what: What is called, for the reason (e.g. ``"the model openai:gpt-4.1-mini"``).

    Raises:
        LLMConfigError: ``limit`` is not an integer >= 1.
    """

    def __init__(self, limit: int, *, what: str = "the model") -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise LLMConfigError(f"the failure limit must be an integer >= 1, not {limit!r}")
        self.limit = limit
        self.what = what
        self._lock = threading.Lock()
        self._failures = 0
        self._streak: set[int] = set()
        self._cut: set[int] = set()
        self._reason: str | None = None

    def __repr__(self) -> str:
        state = "open" if self.reason is not None else f"closed, {self._failures} failed"
        return f"{type(self).__name__}(limit={self.limit}, {state})"

    @property
    def reason(self) -> str | None:
        """Why the breaker is open (one line), or None while it is closed."""
        with self._lock:
            return self._reason

    def check(self, variant_id: int | None = None) -> str | None:
        """Before a call: None to go ahead, or the reason when the breaker is open (the
        variant's job is then cut).

        Args:
            variant_id: The variant the call is for, if any.
        """
        with self._lock:
            if self._reason is not None and variant_id is not None:
                self._cut.add(variant_id)
            return self._reason

    def success(self) -> None:
        """A call succeeded: the streak of failures ends."""
        with self._lock:
            self._failures = 0
            self._streak.clear()

    def failure(self, error: str, *, variant_id: int | None = None, fatal: bool = False) -> bool:
        """A call failed (after its retries).

        Args:
            error: The failure's message (quoted in the reason).
            variant_id: The variant the call was for, if any.
            fatal: The failure is certain to repeat: open at once.

        Returns:
            Whether this failure opened the breaker.
        """
        quoted = " ".join(error.split())
        if len(quoted) > _MAX_QUOTED:
            quoted = quoted[: _MAX_QUOTED - 1] + "…"
        with self._lock:
            if variant_id is not None:
                self._streak.add(variant_id)
            if self._reason is not None:
                self._cut.update(self._streak)
                return False
            self._failures += 1
            if not fatal and self._failures < self.limit:
                return False
            if fatal:
                self._reason = quoted
            else:
                calls = "a call" if self.limit == 1 else f"{self.limit} calls in a row"
                self._reason = f"{self.what} failed {calls} (last: {quoted})"
            self._cut.update(self._streak)
            return True

    def was_cut(self, variant_id: int) -> bool:
        """Whether this variant's job was cut by the open breaker (and forget it).

        Args:
            variant_id: The variant.
        """
        with self._lock:
            if variant_id in self._cut:
                self._cut.discard(variant_id)
                return True
            return False

    def reset(self) -> None:
        """Close the breaker and forget every count and cut job (e.g. before a resume)."""
        with self._lock:
            self._failures = 0
            self._streak.clear()
            self._cut.clear()
            self._reason = None
