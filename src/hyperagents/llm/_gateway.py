"""The LLM gateway: the one door to language models.

In front of any :class:`~hyperagents.llm.LLMProvider` the gateway adds retries with
deterministic backoff, token and dollar accounting (overall and per variant), cost and token
budgets, an optional content-addressed response cache, a record of every attempt, and replay of
a recorded run without calling any model.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from hyperagents.exceptions import (
    LLMBudgetExceeded,
    LLMConfigError,
    LLMError,
    LLMResponseError,
    LLMTransientError,
)
from hyperagents.llm._base import (
    Completion,
    LLMCall,
    LLMProvider,
    Message,
    normalize_messages,
    redact_secrets,
    request_key,
)
from hyperagents.llm._prices import PriceSource, PriceTable, load_prices
from hyperagents.llm._providers import ReplayProvider

__all__ = [
    "Gateway",
    "JsonlRecorder",
    "MemoryCache",
    "MemoryRecorder",
    "Recorder",
    "ResponseCache",
    "Usage",
]

logger = logging.getLogger("hyperagents.llm")

Recorder = Callable[[LLMCall], None]
"""Receives the record of every attempt; see :class:`JsonlRecorder`, :class:`MemoryRecorder`."""

#: The longest wait a server's retry-after can impose (unless ``max_backoff`` is longer).
MAX_RETRY_AFTER: Final = 60.0


class _Unset:
    """The type of :data:`UNSET`."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Marks an argument of :meth:`Gateway.set_budget` that was not given."""


# -- usage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Totals of LLM use, overall or for one variant.

    Attributes:
        calls: Requests answered (including cache hits).
        cached: Of those, how many the response cache answered (they cost nothing).
        errors: Attempts that failed (each retry counts).
        prompt_tokens: Input tokens paid for (cache hits excluded).
        completion_tokens: Output tokens paid for (cache hits excluded).
        cost: US dollars spent (models without a price count 0).
    """

    calls: int = 0
    cached: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            calls=self.calls + other.calls,
            cached=self.cached + other.cached,
            errors=self.errors + other.errors,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost=self.cost + other.cost,
        )

    def to_dict(self) -> dict[str, Any]:
        """The totals as a JSON-compatible ``dict``.

        Returns:
            A new ``dict``.
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Rebuild totals from :meth:`to_dict` output (missing fields count 0).

        Args:
            data: The mapping.

        Returns:
            The totals.

        Raises:
            LLMError: If a value is not a number.
        """
        try:
            return cls(
                calls=int(data.get("calls", 0)),
                cached=int(data.get("cached", 0)),
                errors=int(data.get("errors", 0)),
                prompt_tokens=int(data.get("prompt_tokens", 0)),
                completion_tokens=int(data.get("completion_tokens", 0)),
                cost=float(data.get("cost", 0.0)),
            )
        except (TypeError, ValueError) as exc:
            raise LLMError(f"invalid LLM usage totals: {exc}") from None

    @classmethod
    def from_calls(cls, calls: Sequence[LLMCall]) -> Usage:
        """Sum up call records the way the gateway counts them.

        Args:
            calls: The records.

        Returns:
            The totals.
        """
        totals = _Totals()
        for call in calls:
            totals.add(call)
        return totals.freeze()


class _Totals:
    """Mutable totals; guarded by the gateway's lock."""

    __slots__ = ("cached", "calls", "completion_tokens", "cost", "errors", "prompt_tokens")

    def __init__(self, usage: Usage | None = None) -> None:
        usage = usage or Usage()
        self.calls = usage.calls
        self.cached = usage.cached
        self.errors = usage.errors
        self.prompt_tokens = usage.prompt_tokens
        self.completion_tokens = usage.completion_tokens
        self.cost = usage.cost

    def add(self, call: LLMCall) -> None:
        if not call.ok:
            self.errors += 1
            return
        self.calls += 1
        if call.cached:
            self.cached += 1
            return
        self.prompt_tokens += call.prompt_tokens
        self.completion_tokens += call.completion_tokens
        self.cost += call.cost

    def freeze(self) -> Usage:
        return Usage(
            calls=self.calls,
            cached=self.cached,
            errors=self.errors,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=self.cost,
        )


# -- cache ---------------------------------------------------------------------------------


@runtime_checkable
class ResponseCache(Protocol):
    """A store of completions by request key (see :func:`~hyperagents.llm.request_key`).

    Implementations must be safe to call from several threads.
    """

    def get(self, key: str) -> Completion | None:
        """The completion stored under ``key``, or ``None``."""
        ...

    def put(self, key: str, completion: Completion) -> None:
        """Store a completion under ``key``."""
        ...


class MemoryCache:
    """An in-memory, thread-safe response cache, optionally bounded (least recently used out).

    Args:
        max_entries: The most completions kept; ``None`` for no bound.

    Raises:
        LLMConfigError: If ``max_entries`` is less than 1.
    """

    def __init__(self, max_entries: int | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise LLMConfigError("a response cache needs max_entries >= 1 (or None)")
        self._max = max_entries
        self._entries: collections.OrderedDict[str, Completion] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> Completion | None:
        """The completion stored under ``key``, or ``None``.

        Args:
            key: The request key.

        Returns:
            The completion or ``None``.
        """
        with self._lock:
            completion = self._entries.get(key)
            if completion is not None:
                self._entries.move_to_end(key)
            return completion

    def put(self, key: str, completion: Completion) -> None:
        """Store a completion under ``key``.

        Args:
            key: The request key.
            completion: The completion.
        """
        with self._lock:
            self._entries[key] = completion
            self._entries.move_to_end(key)
            if self._max is not None:
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)


# -- recorders -----------------------------------------------------------------------------


class MemoryRecorder:
    """Keeps call records in a list (thread-safe), e.g. for tests or to store them later.

    Attributes:
        calls: The records, in the order they were made.
    """

    def __init__(self) -> None:
        self.calls: list[LLMCall] = []
        self._lock = threading.Lock()

    def __call__(self, call: LLMCall) -> None:
        """Keep a record.

        Args:
            call: The record.
        """
        with self._lock:
            self.calls.append(call)

    def __len__(self) -> int:
        with self._lock:
            return len(self.calls)

    def __iter__(self) -> Iterator[LLMCall]:
        with self._lock:
            return iter(list(self.calls))


class JsonlRecorder:
    """Appends call records to a JSON-lines file, one line per attempt, flushed at once.

    The file is opened for each record, so a crash loses at most the record being written.
    Threads may share one recorder; give each process its own file. Read it back with
    :func:`~hyperagents.llm.read_calls` or replay it with :meth:`Gateway.for_replay`.

    Args:
        path: The file; created (with its directory) on the first record.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __call__(self, call: LLMCall) -> None:
        """Append a record.

        Args:
            call: The record.

        Raises:
            LLMError: If the file cannot be written.
        """
        line = json.dumps(call.to_dict(), ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
                    handle.flush()
            except OSError as exc:
                raise LLMError(f"cannot record an LLM call to {str(self.path)!r}: {exc}") from None


# -- the gateway ---------------------------------------------------------------------------


def _check_limit(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or value < 0):
        raise LLMConfigError(f"{name} must be >= 0 or None, not {value!r}")


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
        _check_limit("max_cost", max_cost)
        _check_limit("max_tokens", max_tokens)
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
        self._max_cost = max_cost
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._total = _Totals()
        self._variants: dict[int, _Totals] = {}
        self._warned_unpriced = False
        #: The last failure and the failed attempts since the last success (for the log).
        self._last_failure: str | None = None
        self._failed_since_success = 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.provider!r}, retries={self.retries}, "
            f"max_cost={self._max_cost!r}, max_tokens={self._max_tokens!r})"
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
        with self._lock:
            return self._max_cost

    @property
    def max_tokens(self) -> int | None:
        """The token budget (``None``: none)."""
        with self._lock:
            return self._max_tokens

    def set_budget(
        self,
        *,
        max_cost: float | _Unset | None = UNSET,
        max_tokens: int | _Unset | None = UNSET,
    ) -> None:
        """Change the budgets, e.g. raise them to resume a run that ran out.

        Args:
            max_cost: The new dollar budget, ``None`` to lift it; omitted: unchanged.
            max_tokens: The new token budget, ``None`` to lift it; omitted: unchanged.

        Raises:
            LLMConfigError: If a budget is negative.
        """
        if not isinstance(max_cost, _Unset):
            _check_limit("max_cost", max_cost)
        if not isinstance(max_tokens, _Unset):
            _check_limit("max_tokens", max_tokens)
        with self._lock:
            if not isinstance(max_cost, _Unset):
                self._max_cost = max_cost
            if not isinstance(max_tokens, _Unset):
                self._max_tokens = max_tokens

    def restore(self, usage: Usage, *, variants: Mapping[int, Usage] | None = None) -> None:
        """Replace the totals with those of an earlier session, so a resumed run keeps counting.

        Call it before the first call; what this gateway counted so far is replaced.

        Args:
            usage: The overall totals.
            variants: Totals per variant id.
        """
        with self._lock:
            self._total = _Totals(usage)
            self._variants = {vid: _Totals(u) for vid, u in (variants or {}).items()}

    def usage(self, variant_id: int | None = None) -> Usage:
        """The totals so far.

        Args:
            variant_id: A variant's id for its totals; ``None`` for the overall totals.

        Returns:
            A frozen snapshot (zeros for a variant with no calls).
        """
        with self._lock:
            if variant_id is None:
                return self._total.freeze()
            totals = self._variants.get(variant_id)
            return totals.freeze() if totals is not None else Usage()

    def usage_by_variant(self) -> dict[int, Usage]:
        """The totals of every variant that made a call.

        Returns:
            Variant id → totals.
        """
        with self._lock:
            return {vid: totals.freeze() for vid, totals in self._variants.items()}

    def _check_budget(self) -> None:
        with self._lock:
            max_cost, max_tokens = self._max_cost, self._max_tokens
            cost = self._total.cost
            tokens = self._total.prompt_tokens + self._total.completion_tokens
        if max_cost is not None and cost >= max_cost:
            raise LLMBudgetExceeded(
                f"the LLM cost budget is spent: ${cost:.4f} of ${max_cost:.4f}",
                budget="cost",
                limit=max_cost,
                spent=cost,
            )
        if max_tokens is not None and tokens >= max_tokens:
            raise LLMBudgetExceeded(
                f"the LLM token budget is spent: {tokens} of {max_tokens} tokens",
                budget="tokens",
                limit=max_tokens,
                spent=tokens,
            )

    def _account(self, call: LLMCall) -> None:
        with self._lock:
            self._total.add(call)
            if call.variant_id is not None:
                self._variants.setdefault(call.variant_id, _Totals()).add(call)

    def _emit(self, call: LLMCall) -> None:
        self._account(call)
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
        if retry_after is not None:
            return min(max(0.0, retry_after), max(self.max_backoff, MAX_RETRY_AFTER))
        base = min(self.max_backoff, self.backoff * 2.0 ** (retry - 1))
        jitter = random.Random(f"{self.seed}:{key}:{retry}").random()
        return base * (0.5 + jitter / 2)

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
        params: dict[str, Any] = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        provider_name, model = self.provider.name, self.provider.model
        key = request_key(provider_name, model, plain, **params)
        base = LLMCall(
            key=key,
            provider=provider_name,
            model=model,
            messages=tuple(plain),
            params=params,
            reply=None,
            purpose=purpose,
            variant_id=variant_id,
            scope=scope,
            job=job,
        )
        self._check_budget()

        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                completion = dataclasses.replace(hit, cached=True, cost=0.0, latency=0.0)
                self._emit(_answered(base, completion, cost_known=True, attempt=0))
                return completion

        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                self._check_budget()
            started = self._clock()
            try:
                if isinstance(self.provider, ReplayProvider):
                    result = self.provider.complete(
                        plain,
                        temperature=temperature,
                        max_tokens=max_tokens,
                        seed=seed,
                        scope=scope,
                        job=job,
                    )
                else:
                    result = self.provider.complete(
                        plain, temperature=temperature, max_tokens=max_tokens, seed=seed
                    )
                if not isinstance(result, Completion):
                    raise LLMResponseError(
                        f"provider {provider_name!r} returned a {type(result).__name__}, "
                        "not a Completion"
                    )
            except Exception as exc:
                latency = self._clock() - started
                self._emit(
                    dataclasses.replace(
                        base,
                        reply=None,
                        error=redact_secrets(str(exc)) or type(exc).__name__,
                        error_type=type(exc).__name__,
                        latency=latency,
                        attempt=attempt,
                        created_at=datetime.now(UTC),
                    )
                )
                failure, repeated = self._note_failure(exc)
                retryable = isinstance(exc, LLMTransientError | LLMResponseError)
                if not retryable or attempt > self.retries:
                    raise
                retry_after = exc.retry_after if isinstance(exc, LLMTransientError) else None
                delay = self.retry_delay(key, attempt, retry_after)
                logger.log(
                    logging.DEBUG if repeated else logging.WARNING,
                    "LLM call failed (attempt %d of %d, %s); retrying in %.2f s%s",
                    attempt,
                    self.retries + 1,
                    failure,
                    delay,
                    "" if repeated else " (the same failure again is logged at debug level)",
                )
                self._sleep(delay)
                continue
            self._log_recovery()
            latency = self._clock() - started
            cost, known = self._cost(result)
            completion = dataclasses.replace(result, cached=False, latency=latency, cost=cost)
            self._emit(_answered(base, completion, cost_known=known, attempt=attempt))
            if self.cache is not None:
                self.cache.put(key, completion)
            return completion

    def _note_failure(self, exc: Exception) -> tuple[str, bool]:
        """Count a failed attempt; return its description and whether it repeats the last
        failure since the last success (then it is not logged as a warning again)."""
        text = f"{type(exc).__name__}: {redact_secrets(str(exc))}"
        with self._lock:
            self._failed_since_success += 1
            repeated = text == self._last_failure
            self._last_failure = text
        return text, repeated

    def _log_recovery(self) -> None:
        """After a streak of logged failures, say once that the model answers again."""
        with self._lock:
            failed, self._failed_since_success = self._failed_since_success, 0
            self._last_failure = None
        if failed:
            logger.info("the LLM answers again after %d failed attempt(s)", failed)

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
            with self._lock:
                warn = self._max_cost is not None and not self._warned_unpriced
                self._warned_unpriced = True
            if warn:
                logger.warning(
                    "no price is known for the model %r: its calls count $0 and the cost "
                    "budget will not stop them (pass prices= to set one)",
                    self.provider.model,
                )
        return cost, known


def _answered(base: LLMCall, completion: Completion, *, cost_known: bool, attempt: int) -> LLMCall:
    """The record of an attempt that got ``completion`` (a cache hit is attempt 0)."""
    return dataclasses.replace(
        base,
        reply=completion.text,
        finish_reason=completion.finish_reason,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cost=completion.cost,
        cost_known=cost_known,
        latency=completion.latency,
        cached=completion.cached,
        attempt=attempt,
        created_at=datetime.now(UTC),
    )


def _no_sleep(seconds: float) -> None:
    """A ``sleep`` that does not wait (replay needs no backoff)."""
