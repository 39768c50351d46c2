"""What a resumed replay answers from: scoped calls stay (served per job), unscoped calls the
replaying run already consumed are not served again."""

from __future__ import annotations

from hyperagents.llm import LLMCall
from hyperagents.runs._llm import _still_to_serve


def call(key: str, *, scope: str = "", cached: bool = False, reply: str = "a") -> LLMCall:
    return LLMCall(
        key=key,
        provider="p",
        model="m",
        messages=({"role": "user", "content": key},),
        params={},
        reply=reply,
        scope=scope,
        cached=cached,
    )


def test_consumed_unscoped_calls_go_in_order_and_scoped_ones_stay() -> None:
    recorded = [
        call("a", reply="first"),
        call("a", reply="second"),
        call("b", cached=True),
        call("c", scope="g1/improve"),
    ]
    earlier = [call("a"), call("b", cached=True), call("c", scope="g1/improve"), call("z")]
    left = _still_to_serve(list(recorded), earlier)
    assert left == [recorded[1], recorded[2], recorded[3]]


def test_a_fresh_replay_serves_the_whole_record() -> None:
    recorded = [call("a"), call("b", scope="s")]
    assert _still_to_serve(list(recorded), []) == recorded
