"""The ledger: totals overall and per variant, and the budgets checked before each attempt."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hyperagents.exceptions import LLMBudgetExceeded, LLMConfigError
from hyperagents.llm import UNSET, LLMCall, Usage
from hyperagents.llm._usage import Ledger


def call(
    *,
    tokens: tuple[int, int] = (10, 5),
    cost: float = 0.5,
    variant: int | None = None,
    **extra: Any,
) -> LLMCall:
    return LLMCall(
        key="k",
        provider="p",
        model="m",
        messages=({"role": "user", "content": "q"},),
        params={},
        reply=extra.pop("reply", "a"),
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        cost=cost,
        variant_id=variant,
        **extra,
    )


def test_the_ledger_counts_answers_errors_and_cache_hits_overall_and_per_variant() -> None:
    ledger = Ledger(max_cost=None, max_tokens=None)
    ledger.account(call(variant=3))
    ledger.account(call(variant=3, cached=True, cost=0.0))
    ledger.account(call(reply=None, error="boom", error_type="LLMError", tokens=(0, 0), cost=0))
    assert ledger.usage() == Usage(
        calls=2, cached=1, errors=1, prompt_tokens=10, completion_tokens=5, cost=0.5
    )
    assert ledger.usage(3) == Usage(
        calls=2, cached=1, prompt_tokens=10, completion_tokens=5, cost=0.5
    )
    assert ledger.usage(4) == Usage()
    assert ledger.usage_by_variant() == {3: ledger.usage(3)}
    assert Usage.from_calls([call(variant=3), call(variant=3, cached=True)]) == ledger.usage(3)


def test_a_spent_budget_refuses_the_next_attempt_and_a_raised_one_lets_it_pass() -> None:
    ledger = Ledger(max_cost=1.0, max_tokens=None)
    ledger.check()
    ledger.account(call(cost=1.0))
    with pytest.raises(LLMBudgetExceeded, match=r"cost budget is spent: \$1\.0000 of \$1\.0000"):
        ledger.check()
    ledger.set_budget(max_cost=2.0, max_tokens=UNSET)
    ledger.check()
    ledger.set_budget(max_cost=UNSET, max_tokens=15)
    assert (ledger.max_cost, ledger.max_tokens) == (2.0, 15)
    with pytest.raises(LLMBudgetExceeded, match="token budget is spent: 15 of 15 tokens") as info:
        ledger.check()
    assert (info.value.budget, info.value.limit, info.value.spent) == ("tokens", 15, 15)


def test_restore_replaces_the_totals_and_bad_budgets_are_refused() -> None:
    ledger = Ledger(max_cost=None, max_tokens=None)
    ledger.account(call())
    ledger.restore(Usage(calls=7, cost=3.0), {2: Usage(calls=1)})
    assert ledger.usage().calls == 7 and ledger.usage(2).calls == 1
    with pytest.raises(LLMConfigError, match="max_cost must be >= 0"):
        Ledger(max_cost=-1, max_tokens=None)
    with pytest.raises(LLMConfigError, match="max_tokens must be >= 0"):
        ledger.set_budget(max_cost=UNSET, max_tokens=True)


def test_a_record_counted_is_recounted_as_stored() -> None:
    ledger = Ledger(max_cost=0.015, max_tokens=None)
    paid = call(tokens=(100, 20), cost=0.01, variant=3)
    ledger.account(paid)
    ledger.account(call(tokens=(100, 20), cost=0.01))
    with pytest.raises(LLMBudgetExceeded):
        ledger.check()
    ledger.recount(paid, dataclasses.replace(paid, cached=True, cost=0.0))
    ledger.check()  # the budget follows: room again
    total, variant = ledger.usage(), ledger.usage(3)
    assert (total.calls, total.cached, total.prompt_tokens) == (2, 1, 100)
    assert total.cost == pytest.approx(0.01)
    assert (variant.calls, variant.cached, variant.total_tokens, variant.cost) == (1, 1, 0, 0.0)
