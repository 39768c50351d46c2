"""The records of an attempt: the request's, a failed attempt's and an answered one's."""

from __future__ import annotations

from hyperagents.exceptions import LLMTransientError
from hyperagents.llm import Completion, request_key
from hyperagents.llm._recorders import answered_record, failed_record, request_record

PLAIN = [{"role": "user", "content": "q"}]
PARAMS = {"temperature": 0.2, "max_tokens": 9, "seed": None}


def test_a_request_record_carries_the_request_key_and_the_callers_context() -> None:
    base = request_record(
        "p", "m", PLAIN, PARAMS, purpose="improve/x", variant_id=4, scope="g1/improve", job="j"
    )
    assert base.key == request_key("p", "m", PLAIN, temperature=0.2, max_tokens=9, seed=None)
    assert base.reply is None and base.messages == tuple(PLAIN) and base.params == PARAMS
    assert (base.purpose, base.variant_id, base.scope, base.job) == (
        "improve/x",
        4,
        "g1/improve",
        "j",
    )


def test_failed_and_answered_records_keep_the_request_and_add_the_outcome() -> None:
    base = request_record("p", "m", PLAIN, PARAMS, purpose="", variant_id=None, scope="", job="")
    failed = failed_record(
        base, LLMTransientError("HTTP 429 for sk-abcdefghijkl"), latency=0.5, attempt=2
    )
    assert (failed.error, failed.error_type) == ("HTTP 429 for sk-***", "LLMTransientError")
    assert (failed.latency, failed.attempt, failed.key, failed.ok) == (0.5, 2, base.key, False)
    assert failed_record(base, ValueError(), latency=0, attempt=1).error == "ValueError"
    hit = Completion("a", "m", 3, 4, "stop", latency=0.0, cost=0.0, cached=True)
    answered = answered_record(base, hit, cost_known=True, attempt=0)
    assert (answered.reply, answered.prompt_tokens, answered.completion_tokens) == ("a", 3, 4)
    assert answered.cached and answered.attempt == 0 and answered.ok
