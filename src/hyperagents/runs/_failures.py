"""What the engine does when work on a variant raises: retry it with a fresh worker, fail the
child alone when it is its own doing, or let the error stop the run."""

from __future__ import annotations

import contextlib
import logging

from hyperagents.exceptions import HyperagentsError, SandboxError
from hyperagents.runs._context import RunContext
from hyperagents.storages import EventSpec, VariantState

__all__ = ["Failures", "candidate_fault"]

logger = logging.getLogger("hyperagents")


class Failures:
    """The engine's failure policy for one run object.

    Args:
        ctx: The run context.

    Attributes:
        tests_given_up: Champions whose test evaluation kept failing in this process (not
            handed out again).
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self.tests_given_up: set[int] = set()

    def recoverable(self, error: BaseException, variant_id: int, failures: dict[int, int]) -> bool:
        """Whether a job that raised should be retried by a fresh worker (and record it)."""
        if not isinstance(error, Exception) or (
            isinstance(error, HyperagentsError) and not isinstance(error, SandboxError)
        ):
            return False  # interrupts, task bugs, storage and configuration errors stop the run
        failures[variant_id] = failures.get(variant_id, 0) + 1
        if failures[variant_id] > self._ctx.config.max_retries:
            return False
        logger.warning("worker failed on variant %d (%s): retrying", variant_id, error)
        with contextlib.suppress(Exception):  # recording the retry is best effort
            self._ctx.event(
                "worker.failed",
                f"{type(error).__name__}: {error}"[:500],
                variant_id,
                attempt=failures[variant_id],
            )
        return True

    def fail_after_engine_error(
        self, variant_id: int, error: BaseException, was_test: bool
    ) -> None:
        """End a variant whose processing kept raising (after retries) in a final state."""
        reason = f"engine error while processing this child: {type(error).__name__}: {error}"
        reason = reason[:500]
        logger.error("variant %d: %s", variant_id, reason)
        if was_test:
            self.tests_given_up.add(variant_id)
            self._ctx.event("champion.test_failed", reason, variant_id=variant_id)
            return
        variant = self._ctx.variant(variant_id)
        if variant.state.is_terminal:
            return
        self._ctx.storage.set_variant_state(
            variant_id,
            VariantState.FAILED,
            expected=variant.state,
            reason=reason,
            release=True,
            event=EventSpec("variant.failed", reason),
        )


def candidate_fault(error: BaseException) -> bool:
    """Whether an exception the engine kept meeting while processing one child is that
    child's doing (plain Python errors on its data: recursion, values, encodings, overflow),
    rather than the run's (interrupts, storage, configuration, the task, the sandbox)."""
    return isinstance(error, Exception) and not isinstance(error, HyperagentsError)
