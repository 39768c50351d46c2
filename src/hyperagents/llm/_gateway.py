"""The LLM gateway: the one door to language models.

In front of any :class:`~hyperagents.llm.LLMProvider` the gateway adds retries with
deterministic backoff (:mod:`._retry`), token and dollar accounting overall and per variant
with cost and token budgets (:mod:`._usage`), an optional content-addressed response cache
(:mod:`._cache`), a record of every attempt (:mod:`._recorders`), and replay of a recorded run
without calling any model (:mod:`._replay`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hyperagents.exceptions import LLMConfigError, LLMResponseError
from hyperagents.llm._base import Completion, LLMCall, LLMProvider, Message, normalize_messages
from hyperagents.llm._cache import ResponseCache
from hyperagents.llm._prices import PriceSource, PriceTable, load_prices
from hyperagents.llm._recorders import Recorder, answered_record, failed_record, request_record
from hyperagents.llm._replay import ReplayProvider
from hyperagents.llm._retry import (
    FailureStreak,
    backoff_delay,
    log_retry,
    retryable,
    server_wait,
)
from hyperagents.llm._usage import UNSET, Ledger, Unset, Usage

__all__ = ["Gateway"]

logger = logging.getLogger("hyperagents.llm")


class Gateway:
    """The one door to a language model: retries, accounting, budgets, cache, record, replay.

    Thread-safe: several threads may call :meth:`complete` at once.

    **Retries.** :class:`~hyperagents.exceptions.LLMTransientError` (timeouts, 429, 5xx) and
    :class:`~hyperagents.exceptions.LLMResponseError` (malformed or empty replies) are retried
    up to ``retries`` times, then re-raised; other :class:`~hyperagents.exceptions.LLMError` are
    raised at once. Before retry ``n`` (1, 2…) the gateway waits
    ``min(max_backoff, backoff * 2**(n-1))`` scaled by a jitter factor in [0.5, 1]; the jitter
    comes from a ``random.Random`` seeded by ``(seed, request key, n)``, so the schedule is
    reproducible and independent of thread interleaving. A server's retry-after wins over the
    computed wait (capped at ``max(max_backoff, 60)`` seconds).

    **Accounting and budgets.** Totals (:class:`Usage`) are kept overall and per
    ``variant_id``. Before each attempt, if the dollars spent reach ``max_cost`` or the tokens
    spent reach ``max_tokens``, :class:`~hyperagents.exceptions.LLMBudgetExceeded` is raised and
    the provider is not called. A call that crosses a budget still returns its result; the next
    one is refused. :meth:`set_budget` raises (or lifts) a budget, :meth:`restore` seeds the
    totals from an earlier session so a resumed run keeps counting. Models without a known
    price cost 0, so a cost budget never stops them (a warning is logged once).

    **Cache.** With a ``cache``, a request whose key (:func:`~hyperagents.llm.request_key`) was
    answered before is served from it: ``cached=True``, cost 0, no tokens counted. Sampling at
    a temperature above 0 without varying the seed then returns the same reply every time, so
    enable a cache only where that is wanted.

    **Logging.** A retried failure is logged as a warning once per streak: the same failure
    again (same class and message) is logged at debug level until a call succeeds, which logs
    how many attempts failed meanwhile. The record (below) keeps every attempt.

    **Recording.** ``recorder`` receives an :class:`~hyperagents.llm.LLMCall` for every attempt
    (success, error, cache hit), after the totals are updated and outside the gateway's lock.
    Refusals for budget are not attempts and are not recorded. An exception raised by the
    recorder propagates to the caller (a lost record would break replay).

    **Replay.** :meth:`for_replay` builds a gateway over a
    :class:`~hyperagents.llm.ReplayProvider`; configured like the recorded gateway (retries,
    budgets, cache), it takes the same path and never calls a model.

    Args:
        provider: The model to call.
        retries: Retries after the first attempt (0 disables them).
        backoff: The wait before the first retry, in seconds (before jitter).
        max_backoff: The longest computed wait, in seconds.
        seed: Seeds the backoff jitter.
        prices: Overrides/extends the price table: ``{model: (input, output)}`` in US dollars
            per million tokens, a JSON file of that, or a :class:`PriceTable`.
        max_cost: Dollar budget; ``None`` for none.
        max_tokens: Token budget (prompt plus completion tokens); ``None`` for none. Not to be
            confused with the per-call generation limit of :meth:`complete`.
        cache: A response cache (e.g. :class:`MemoryCache`); ``None`` disables caching.
        recorder: Receives every attempt's record; ``None`` records nothing.
        sleep: Waits between retries (inject a fake in tests).
        clock: A monotonic clock, in seconds, for latencies.

    Raises:
        LLMConfigError: If a number is out of range or the price table is invalid.
    """

    def __init__(
        self,
        provider: LLMProvider,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        seed: int = 0,
        prices: PriceTable | PriceSource | None = None,
        max_cost: float | None = None,
        max_tokens: int | None = None,
        cache: ResponseCache | None = None,
        recorder: Recorder | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise LLMConfigError(f"retries must be an integer >= 0, not {retries!r}")
        if backoff < 0 or max_backoff < 0:
            raise LLMConfigError("backoff and max_backoff must be >= 0")
        self._ledger = Ledger(max_cost=max_cost, max_tokens=max_tokens)
        self.provider = provider
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.seed = seed
        self.prices = prices if isinstance(prices, PriceTable) else load_prices(prices)
        self.cache = cache
        self.recorder = recorder
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._warned_unpriced = False
        self._failures = FailureStreak()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.provider!r}, retries={self.retries}, "
            f"max_cost={self.max_cost!r}, max_tokens={self.max_tokens!r})"
        )

    @classmethod
    def for_replay(
        cls,
        record: Sequence[LLMCall] | str | os.PathLike[str],
        **options: Any,
    ) -> Gateway:
        """A gateway that answers from a recorded run and never calls a model.

        Args:
            record: The recorded calls, or the JSON-lines file a :class:`JsonlRecorder` wrote.
            **options: Further :class:`Gateway` arguments; use the recorded run's ``retries``
                and budgets so the replay takes the same path. ``sleep`` defaults to not
                waiting at all.

        Returns:
            The gateway.

        Raises:
            LLMError: If the record file cannot be read or is malformed.
            LLMConfigError: If an option is invalid.
        """
        options.setdefault("sleep", _no_sleep)
        return cls(ReplayProvider(record), **options)

    # -- budgets and totals ----------------------------------------------------------------

    @property
    def max_cost(self) -> float | None:
        """The dollar budget (``None``: none)."""
        return self._ledger.max_cost

    @property
    def max_tokens(self) -> int | None:
        """The token budget (``None``: none)."""
        return self._ledger.max_tokens

    def set_budget(
        self,
        *,
        max_cost: float | Unset | None = UNSET,
        max_tokens: int | Unset | None = UNSET,
    ) -> None:
        """Change the budgets, e.g. raise them to resume a run that ran out.

        Args:
            max_cost: The new dollar budget, ``None`` to lift it; omitted: unchanged.
            max_tokens: The new token budget, ``None`` to lift it; omitted: unchanged.

        Raises:
            LLMConfigError: If a budget is negative.
        """
        self._ledger.set_budget(max_cost=max_cost, max_tokens=max_tokens)

    def restore(self, usage: Usage, *, variants: Mapping[int, Usage] | None = None) -> None:
        """Replace the totals with those of an earlier session, so a resumed run keeps counting.

        Call it before the first call; what this gateway counted so far is replaced.

        Args:
            usage: The overall totals.
            variants: Totals per variant id.
        """
        self._ledger.restore(usage, variants or {})

    def recount(self, counted: LLMCall, instead: LLMCall) -> None:
        """Count the record ``instead`` in place of ``counted``, one this gateway counted:
        its owner stored the call otherwise (e.g. as answered from another process's
        record: cached, costing nothing), so the totals and the budget follow what is stored.

        Args:
            counted: The record as it was counted.
            instead: The record as it is stored.
        """
        self._ledger.recount(counted, instead)

    def usage(self, variant_id: int | None = None) -> Usage:
        """The totals so far.

        Args:
            variant_id: A variant's id for its totals; ``None`` for the overall totals.

        Returns:
            A frozen snapshot (zeros for a variant with no calls).
        """
        return self._ledger.usage(variant_id)

    def usage_by_variant(self) -> dict[int, Usage]:
        """The totals of every variant that made a call.

        Returns:
            Variant id → totals.
        """
        return self._ledger.usage_by_variant()

    def _emit(self, call: LLMCall) -> None:
        """Count an attempt, then hand its record to the recorder."""
        self._ledger.account(call)
        if self.recorder is not None:
            self.recorder(call)

    # -- calls -----------------------------------------------------------------------------

    def retry_delay(self, key: str, retry: int, retry_after: float | None = None) -> float:
        """The wait before a retry (deterministic for a seed, key and retry number).

        Args:
            key: The request key.
            retry: Which retry: 1 for the first.
            retry_after: The server's retry-after in seconds, if it gave one.

        Returns:
            Seconds to wait.
        """
        return backoff_delay(
            seed=self.seed,
            key=key,
            retry=retry,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            retry_after=retry_after,
        )

    def complete(
        self,
        messages: Sequence[Message],
        *,
        purpose: str = "",
        variant_id: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        scope: str = "",
        job: str = "",
    ) -> Completion:
        """Get a completion, with retries, accounting, budgets, cache and recording.

        Args:
            messages: The conversation, oldest first.
            purpose: What the call is for (kept in the record, e.g. ``"propose"``).
            variant_id: The variant the call is made for (for per-variant totals).
            temperature: Sampling temperature; ``None``: the provider's default.
            max_tokens: Most tokens to generate in this call (not the token budget).
            seed: Sampling seed, where the provider supports one.
            scope: Where in a run the call is made, stable across replays (kept in the
                record; a replay answers it from the same scope, see
                :class:`~hyperagents.llm.ReplayProvider`).
            job: The job attempt making the call (kept in the record; see ``scope``).

        Returns:
            The completion, with ``latency``, ``cost`` and ``cached`` set.

        Raises:
            LLMBudgetExceeded: If a budget is spent (the provider is not called).
            LLMTransientError: If every attempt failed transiently (the last error).
            LLMResponseError: If every attempt failed and the last reply was malformed.
            LLMReplayError: In replay, if the request was not recorded.
            LLMError: On a failure that retrying will not fix, or bad messages.
        """
        plain = normalize_messages(messages)
        params = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
        base = request_record(
            self.provider.name,
            self.provider.model,
            plain,
            params,
            purpose=purpose,
            variant_id=variant_id,
            scope=scope,
            job=job,
        )
        self._ledger.check()
        hit = self._cached(base)
        return hit if hit is not None else self._attempts(plain, base)

    def _cached(self, base: LLMCall) -> Completion | None:
        """The cache's answer to the request (recorded as attempt 0), or ``None``."""
        if self.cache is None:
            return None
        hit = self.cache.get(base.key)
        if hit is None:
            return None
        completion = dataclasses.replace(hit, cached=True, cost=0.0, latency=0.0)
        self._emit(answered_record(base, completion, cost_known=True, attempt=0))
        return completion

    def _attempts(self, plain: list[dict[str, str]], base: LLMCall) -> Completion:
        """Ask the provider until it answers or a failure is not to be retried (raised)."""
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                self._ledger.check()
            started = self._clock()
            try:
                result = self._ask(plain, base)
            except Exception as exc:
                if not self._failed(base, exc, attempt=attempt, started=started):
                    raise
                continue
            return self._answered(base, result, attempt=attempt, started=started)

    def _ask(self, plain: list[dict[str, str]], base: LLMCall) -> Completion:
        """One attempt: the provider's reply (a replay also gets the scope and job)."""
        params = base.params
        if isinstance(self.provider, ReplayProvider):
            result = self.provider.complete(
                plain,
                temperature=params["temperature"],
                max_tokens=params["max_tokens"],
                seed=params["seed"],
                scope=base.scope,
                job=base.job,
            )
        else:
            result = self.provider.complete(
                plain,
                temperature=params["temperature"],
                max_tokens=params["max_tokens"],
                seed=params["seed"],
            )
        if not isinstance(result, Completion):
            raise LLMResponseError(
                f"provider {base.provider!r} returned a {type(result).__name__}, not a Completion"
            )
        return result

    def _failed(self, base: LLMCall, exc: Exception, *, attempt: int, started: float) -> bool:
        """Record and count a failed attempt; if it is to be retried, wait for the retry.

        Returns:
            Whether to try again (otherwise the caller raises ``exc``).
        """
        latency = self._clock() - started
        self._emit(failed_record(base, exc, latency=latency, attempt=attempt))
        failure, repeated = self._failures.failed(exc)
        if not retryable(exc) or attempt > self.retries:
            return False
        delay = self.retry_delay(base.key, attempt, server_wait(exc))
        log_retry(
            attempt=attempt,
            attempts=self.retries + 1,
            failure=failure,
            delay=delay,
            repeated=repeated,
        )
        self._sleep(delay)
        return True

    def _answered(
        self, base: LLMCall, result: Completion, *, attempt: int, started: float
    ) -> Completion:
        """Price, record and cache the provider's reply."""
        self._failures.succeeded()
        latency = self._clock() - started
        cost, known = self._cost(result)
        completion = dataclasses.replace(result, cached=False, latency=latency, cost=cost)
        self._emit(answered_record(base, completion, cost_known=known, attempt=attempt))
        if self.cache is not None:
            self.cache.put(base.key, completion)
        return completion

    def _cost(self, completion: Completion) -> tuple[float, bool]:
        """Price a completion by the requested model, else by the model that answered."""
        cost, known = self.prices.cost(
            self.provider.model, completion.prompt_tokens, completion.completion_tokens
        )
        if not known and completion.model != self.provider.model:
            cost, known = self.prices.cost(
                completion.model, completion.prompt_tokens, completion.completion_tokens
            )
        if not known and self.provider.name == "local":
            return 0.0, True  # an embedded model runs on this machine: no dollars (unless priced)
        if not known and not self._warned_unpriced:
            self._warn_unpriced()
        return cost, known

    def _warn_unpriced(self) -> None:
        """Warn once that a model without a price is not stopped by the cost budget."""
        with self._lock:
            first, self._warned_unpriced = not self._warned_unpriced, True
        if first and self.max_cost is not None:
            logger.warning(
                "no price is known for the model %r: its calls count $0 and the cost "
                "budget will not stop them (pass prices= to set one)",
                self.provider.model,
            )


def _no_sleep(seconds: float) -> None:
    """A ``sleep`` that does not wait (replay needs no backoff)."""
