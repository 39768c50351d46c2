"""The trigger policy: evidence, cool-down, frequency, budget, overrides, and its state."""

from __future__ import annotations

import json

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.service import Override, Trigger, TriggerPolicy, parse_settings


def ready(policy: TriggerPolicy, feedback: int = 100) -> Trigger:
    trigger = Trigger(policy=policy)
    trigger.note_feedback(feedback)
    return trigger


def test_fires_only_on_a_signal_with_enough_evidence() -> None:
    trigger = Trigger(policy=TriggerPolicy(min_feedback=50))
    decision = trigger.decide(now=0.0, degraded=False)
    assert not decision.fire and decision.reasons[0] == "no degradation"
    trigger.note_feedback(49)
    decision = trigger.decide(now=0.0, degraded=True)
    assert not decision.fire and decision.reasons == ("evidence: 49 feedback values < 50",)
    trigger.note_feedback()
    decision = trigger.decide(now=0.0, degraded=True)
    assert decision.fire and decision.reasons == (
        "quality degradation alarm",
        "50 feedback values since the last improvement",
    )
    # drift alone fires only when the policy says so
    assert not trigger.decide(now=0.0, degraded=False, drifted=True).fire
    on_drift = ready(TriggerPolicy(min_feedback=50, on_drift=True))
    assert on_drift.decide(now=0.0, degraded=False, drifted=True).fire


def test_cool_down_and_evidence_restart_after_an_improvement() -> None:
    trigger = ready(TriggerPolicy(min_feedback=10, cooldown_s=600.0))
    trigger.record_start(now=1000.0)
    trigger.note_feedback(10)
    decision = trigger.decide(now=1599.0, degraded=True)
    assert not decision.fire and decision.reasons == ("cool-down: 1 s left of 600 s",)
    assert trigger.decide(now=1600.0, degraded=True).fire
    trigger.record_start(now=1600.0)
    decision = trigger.decide(now=5000.0, degraded=True)
    assert not decision.fire and decision.reasons == ("evidence: 0 feedback values < 10",)


def test_maximum_frequency() -> None:
    policy = TriggerPolicy(min_feedback=0, cooldown_s=0, max_per_window=2, frequency_window_s=100)
    trigger = Trigger(policy=policy)
    trigger.record_start(now=0.0)
    trigger.record_start(now=50.0)
    decision = trigger.decide(now=99.0, degraded=True)
    assert not decision.fire
    assert decision.reasons == ("frequency: 2 improvements in the last 100 s (at most 2)",)
    assert trigger.decide(now=100.0, degraded=True).fire  # the first one left the window


def test_budgets_of_improvements_and_cost() -> None:
    trigger = Trigger(policy=TriggerPolicy(min_feedback=0, cooldown_s=0, max_improvements=1))
    assert trigger.decide(now=0.0, degraded=True).fire
    trigger.record_start(now=0.0)
    decision = trigger.decide(now=1e9, degraded=True)
    assert not decision.fire and decision.reasons == ("budget: 1 improvements of 1 used",)
    paid = Trigger(policy=TriggerPolicy(min_feedback=0, cooldown_s=0, max_cost_usd=2.0))
    paid.record_cost(1.5)
    assert paid.decide(now=0.0, degraded=True).fire
    paid.record_cost(0.5)
    decision = paid.decide(now=0.0, degraded=True)
    assert not decision.fire and decision.reasons == ("budget: $2.00 spent of $2.00",)
    with pytest.raises(ConfigError):
        paid.record_cost(-1.0)


def test_every_rule_that_holds_it_back_is_named() -> None:
    policy = TriggerPolicy(min_feedback=5, cooldown_s=60, max_per_window=1, max_improvements=1)
    trigger = Trigger(policy=policy)
    trigger.record_start(now=0.0)
    reasons = trigger.decide(now=10.0, degraded=False).reasons
    assert [r.split(":")[0] for r in reasons] == [
        "no degradation",
        "evidence",
        "cool-down",
        "frequency",
        "budget",
    ]


def test_operator_overrides() -> None:
    trigger = Trigger(policy=TriggerPolicy(min_feedback=10, max_improvements=0))
    trigger.override = Override.FORCE
    decision = trigger.decide(now=0.0, degraded=False)
    assert decision.fire and decision.reasons[0] == "forced by the operator"
    assert "overruled: budget: 0 improvements of 0 used" in decision.reasons
    trigger.record_start(now=0.0)
    assert trigger.override is Override.NONE  # a force is used once
    assert not trigger.decide(now=0.0, degraded=True).fire
    ok = ready(TriggerPolicy(min_feedback=10))
    ok.override = Override.SUPPRESS
    decision = ok.decide(now=0.0, degraded=True)
    assert not decision.fire and decision.reasons == ("suppressed by the operator",)


def test_state_round_trips_through_json() -> None:
    trigger = ready(TriggerPolicy(min_feedback=3, max_cost_usd=9.0), feedback=7)
    trigger.record_start(now=12.5)
    trigger.note_feedback(4)
    trigger.record_cost(1.25)
    trigger.override = Override.SUPPRESS
    again = Trigger.from_json(json.loads(json.dumps(trigger.to_json())))
    assert again.to_json() == trigger.to_json()
    assert again.decide(now=99.0, degraded=True) == trigger.decide(now=99.0, degraded=True)
    with pytest.raises(ConfigError, match="invalid trigger state"):
        Trigger.from_json({"policy": {}, "feedback_since": 1})


def test_bad_policies_say_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match=r"TriggerPolicy: cooldown_s: .*greater than or equal"):
        parse_settings(TriggerPolicy, {"cooldown_s": -1})
    with pytest.raises(ConfigError, match="TriggerPolicy: min_evidence: Extra inputs"):
        parse_settings(TriggerPolicy, {"min_evidence": 3})
