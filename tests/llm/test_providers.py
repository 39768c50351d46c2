"""Scripted provider, price table and record helpers."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from hyperagents.exceptions import (
    LLMBudgetExceeded,
    LLMConfigError,
    LLMError,
    LLMResponseError,
    LLMTransientError,
)
from hyperagents.llm import (
    DEFAULT_PRICES,
    LLMCall,
    LLMProvider,
    LLMScriptExhausted,
    ModelPrice,
    ScriptedProvider,
    load_prices,
    read_calls,
    redact_secrets,
    request_key,
)

Q = [{"role": "user", "content": "question"}]


def test_scripted_replies_in_order_with_simulated_failures() -> None:
    provider = ScriptedProvider(
        [
            "first",
            {"content": "", "error": "transient"},
            {"error": "rate_limit", "retry_after": 1.5},
            {"error": "malformed"},
            {"error": "error", "message": "denied"},
            {"content": "last", "prompt_tokens": 3, "completion_tokens": 4},
        ]
    )
    assert isinstance(provider, LLMProvider)
    first = provider.complete(Q)
    assert (first.text, first.model, first.prompt_tokens, first.completion_tokens) == (
        "first",
        "scripted",
        2,  # ceil(len("question") / 4)
        2,
    )
    with pytest.raises(LLMTransientError):
        provider.complete(Q)
    with pytest.raises(LLMTransientError) as info:
        provider.complete(Q)
    assert (info.value.status_code, info.value.retry_after) == (429, 1.5)
    with pytest.raises(LLMResponseError):
        provider.complete(Q)
    with pytest.raises(LLMError, match="denied"):
        provider.complete(Q)
    last = provider.complete(Q)
    assert (last.prompt_tokens, last.completion_tokens) == (3, 4)
    with pytest.raises(LLMScriptExhausted, match="scripted replies ran out: all 6 were used"):
        provider.complete(Q)
    assert provider.calls == 6
    assert provider.requests[0] == Q


def test_scripted_cycle() -> None:
    provider = ScriptedProvider(["a", "b"], cycle=True)
    assert [provider.complete(Q).text for _ in range(5)] == ["a", "b", "a", "b", "a"]


def test_scripted_from_files(tmp_path: Path) -> None:
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(["x", {"content": "y"}]))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"replies": [{"error": "server"}, "z"]}))
    text = tmp_path / "replies.md"
    text.write_text("\nline one\n  indented\n---\n\nsecond\n---\n")

    assert [ScriptedProvider.from_file(listing).complete(Q).text for _ in range(1)] == ["x"]
    provider = ScriptedProvider.from_file(wrapped, model="m")
    with pytest.raises(LLMTransientError) as info:
        provider.complete(Q)
    assert info.value.status_code == 500
    assert provider.complete(Q).model == "m"
    provider = ScriptedProvider.from_file(text)
    assert provider.complete(Q).text == "line one\n  indented"
    assert provider.complete(Q).text == "second"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[]", "holds no reply"),
        ("{not json", "not valid JSON"),
        ('{"other": 1}', "must hold a list"),
        ('[{"error": "explode"}]', "unknown error kind"),
        ('[{"content": 3}]', "must be a string"),
        ('[{"content": "x", "colour": "red"}]', "unknown fields"),
        ("[{}]", "neither content nor an error"),
    ],
)
def test_scripted_file_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "script.json"
    path.write_text(content)
    with pytest.raises(LLMConfigError, match=match):
        ScriptedProvider.from_file(path)


def test_bad_messages_are_rejected() -> None:
    provider = ScriptedProvider(["x"])
    with pytest.raises(LLMError, match="empty"):
        provider.complete([])
    with pytest.raises(LLMError, match="'content'"):
        provider.complete([{"role": "user"}])
    assert provider.calls == 0


def test_prices_defaults_overrides_and_files(tmp_path: Path) -> None:
    table = load_prices()
    assert table.lookup("gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]
    assert table.lookup("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert table.lookup("claude-3-5-haiku-20241022") == DEFAULT_PRICES["claude-3-5-haiku"]
    assert table.lookup("openai/gpt-4.1-mini") == DEFAULT_PRICES["gpt-4.1-mini"]
    assert table.lookup("gpt-4o-mini-tts") is None  # no loose prefix matching
    assert table.cost("llama3", 1000, 1000) == (0.0, False)
    cost, known = table.cost("gpt-4.1-mini", 1_000_000, 500_000)
    assert known and cost == pytest.approx(0.40 + 0.80)

    custom = load_prices({"llama3": (1.0, 2.0), "gpt-4o": ModelPrice(0, 0)})
    assert custom.cost("llama3", 2_000_000, 1_000_000) == pytest.approx((4.0, True))
    assert custom.cost("gpt-4o", 10, 10) == (0.0, True)
    assert custom.lookup("gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]

    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"mine": [0.5, 1.5], "other": {"input": 1, "output": 2}}))
    from_file = load_prices(path)
    assert from_file.lookup("mine") == ModelPrice(0.5, 1.5)
    assert from_file.lookup("other") == ModelPrice(1, 2)

    for bad, match in (({"m": (-1, 0)}, ">= 0"), ({"m": "cheap"}, r"\[input, output\]")):
        with pytest.raises(LLMConfigError, match=match):
            load_prices(bad)  # type: ignore[arg-type]
    with pytest.raises(LLMConfigError, match="cannot read"):
        load_prices(tmp_path / "missing.json")


def test_request_key_is_canonical_and_sensitive() -> None:
    a = request_key("p", "m", [{"role": "user", "content": "x"}], temperature=0.0)
    b = request_key("p", "m", [{"content": "x", "role": "user"}], temperature=0.0)
    assert a == b and len(a) == 64
    assert a != request_key("p", "m", [{"role": "user", "content": "x"}], temperature=0.5)
    assert a != request_key("p", "m2", [{"role": "user", "content": "x"}], temperature=0.0)
    assert a != request_key("p", "m", [{"role": "user", "content": "x"}], seed=0)


def test_redaction() -> None:
    text = (
        "Incorrect API key provided: sk-proj-abcDEF123456789. "
        "Authorization: Bearer abcdefghijklmnop; api_key=topsecretvalue; mine: s3cr3t-value"
    )
    clean = redact_secrets(text, ["s3cr3t-value"])
    for secret in ("abcDEF123456789", "abcdefghijklmnop", "topsecretvalue", "s3cr3t-value"):
        assert secret not in clean
    assert "Incorrect API key provided" in clean


def test_call_records_round_trip_through_json(tmp_path: Path) -> None:
    call = LLMCall(
        key="k" * 64,
        provider="scripted",
        model="m",
        messages=({"role": "user", "content": "q"},),
        params={"temperature": 0.2, "max_tokens": None, "seed": 3},
        reply="a",
        prompt_tokens=1,
        completion_tokens=2,
        cost=0.5,
        cost_known=True,
        latency=0.1,
        attempt=2,
        purpose="propose",
        variant_id=7,
    )
    data = json.loads(json.dumps(call.to_dict()))
    assert LLMCall.from_dict(data) == call
    path = tmp_path / "calls.jsonl"
    path.write_text(json.dumps(data) + "\n\n" + json.dumps(data) + "\n")
    assert read_calls(path) == [call, call]
    path.write_text(json.dumps(data) + "\n{broken\n")
    with pytest.raises(LLMError, match=r"calls.jsonl:2"):
        read_calls(path)
    with pytest.raises(LLMError, match="lacks the field 'key'"):
        LLMCall.from_dict({k: v for k, v in data.items() if k != "key"})


def test_llm_errors_survive_pickling() -> None:
    budget = pickle.loads(pickle.dumps(LLMBudgetExceeded("b", budget="tokens", limit=1, spent=2)))
    assert (str(budget), budget.budget, budget.limit, budget.spent) == ("b", "tokens", 1, 2)
    transient = pickle.loads(pickle.dumps(LLMTransientError("t", status_code=429, retry_after=3)))
    assert (transient.status_code, transient.retry_after) == (429, 3)


def test_public_names_exist_and_errors_derive_from_the_root() -> None:
    import hyperagents.llm as llm
    from hyperagents.exceptions import HyperagentsError

    assert len(llm.__all__) == len(set(llm.__all__))
    for name in llm.__all__:
        assert hasattr(llm, name), name
    for name in ("LLMError", "LLMTransientError", "LLMBudgetExceeded", "LLMConfigError"):
        assert issubclass(getattr(llm, name), HyperagentsError)
