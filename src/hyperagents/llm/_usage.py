"""Accounting: the totals of LLM use (:class:`Usage`) and the ledger that keeps them, overall
and per variant, with the cost and token budgets the gateway checks before each attempt.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hyperagents.exceptions import LLMBudgetExceeded, LLMConfigError, LLMError
from hyperagents.llm._base import LLMCall

__all__ = ["UNSET", "Ledger", "Totals", "Unset", "Usage", "check_limit"]


class Unset:
    """The type of :data:`UNSET`."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()
"""Marks an argument of :meth:`Gateway.set_budget` that was not given."""


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
        totals = Totals()
        for call in calls:
            totals.add(call)
        return totals.freeze()


class Totals:
    """Mutable totals; guarded by the lock of the :class:`Ledger` that holds them."""

    __slots__ = ("cached", "calls", "completion_tokens", "cost", "errors", "prompt_tokens")

    def __init__(self, usage: Usage | None = None) -> None:
        usage = usage or Usage()
        self.calls = usage.calls
        self.cached = usage.cached
        self.errors = usage.errors
        self.prompt_tokens = usage.prompt_tokens
        self.completion_tokens = usage.completion_tokens
        self.cost = usage.cost

    def add(self, call: LLMCall, *, times: int = 1) -> None:
        """Count one attempt's record (an error, a cache hit or a paid reply); ``times`` -1
        takes a record counted before back out."""
        if not call.ok:
            self.errors += times
            return
        self.calls += times
        if call.cached:
            self.cached += times
            return
        self.prompt_tokens += times * call.prompt_tokens
        self.completion_tokens += times * call.completion_tokens
        self.cost += times * call.cost

    def freeze(self) -> Usage:
        """A frozen snapshot of the totals."""
        return Usage(
            calls=self.calls,
            cached=self.cached,
            errors=self.errors,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=self.cost,
        )


def check_limit(name: str, value: float | None) -> None:
    """Check a budget: ``None`` or a number >= 0.

    Raises:
        LLMConfigError: If it is negative or a ``bool``.
    """
    if value is not None and (isinstance(value, bool) or value < 0):
        raise LLMConfigError(f"{name} must be >= 0 or None, not {value!r}")


class Ledger:
    """The totals of a gateway, overall and per variant, and its budgets. Thread-safe.

    Args:
        max_cost: Dollar budget; ``None`` for none.
        max_tokens: Token budget (prompt plus completion tokens); ``None`` for none.

    Raises:
        LLMConfigError: If a budget is negative.
    """

    def __init__(self, *, max_cost: float | None, max_tokens: int | None) -> None:
        check_limit("max_cost", max_cost)
        check_limit("max_tokens", max_tokens)
        self._max_cost = max_cost
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._total = Totals()
        self._variants: dict[int, Totals] = {}

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

    def set_budget(self, *, max_cost: float | Unset | None, max_tokens: int | Unset | None) -> None:
        """Change the budgets; an argument left :data:`UNSET` is unchanged.

        Raises:
            LLMConfigError: If a budget is negative.
        """
        if not isinstance(max_cost, Unset):
            check_limit("max_cost", max_cost)
        if not isinstance(max_tokens, Unset):
            check_limit("max_tokens", max_tokens)
        with self._lock:
            if not isinstance(max_cost, Unset):
                self._max_cost = max_cost
            if not isinstance(max_tokens, Unset):
                self._max_tokens = max_tokens

    def restore(self, usage: Usage, variants: Mapping[int, Usage]) -> None:
        """Replace the totals with those given (overall and per variant id)."""
        with self._lock:
            self._total = Totals(usage)
            self._variants = {vid: Totals(u) for vid, u in variants.items()}

    def usage(self, variant_id: int | None = None) -> Usage:
        """The overall totals, or a variant's (zeros for a variant with no calls)."""
        with self._lock:
            if variant_id is None:
                return self._total.freeze()
            totals = self._variants.get(variant_id)
            return totals.freeze() if totals is not None else Usage()

    def usage_by_variant(self) -> dict[int, Usage]:
        """Variant id → totals, for every variant that made a call."""
        with self._lock:
            return {vid: totals.freeze() for vid, totals in self._variants.items()}

    def recount(self, counted: LLMCall, instead: LLMCall) -> None:
        """Count ``instead`` in place of ``counted``, a record counted before (e.g. a call
        its owner wrote as answered from another's record: cached, costing nothing), overall
        and for their variants, in one step."""
        with self._lock:
            for call, times in ((counted, -1), (instead, 1)):
                self._total.add(call, times=times)
                if call.variant_id is not None:
                    self._variants.setdefault(call.variant_id, Totals()).add(call, times=times)

    def check(self) -> None:
        """Refuse the next attempt if a budget is spent.

        Raises:
            LLMBudgetExceeded: If the dollars spent reach ``max_cost`` or the tokens spent
                reach ``max_tokens``.
        """
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

    def account(self, call: LLMCall) -> None:
        """Count one attempt's record, overall and for its variant."""
        with self._lock:
            self._total.add(call)
            if call.variant_id is not None:
                self._variants.setdefault(call.variant_id, Totals()).add(call)
