"""The OpenAI-compatible provider over real HTTP (the real ``openai`` client, a fake server)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hyperagents.exceptions import LLMError, LLMResponseError, LLMTransientError
from hyperagents.llm import (
    Gateway,
    JsonlRecorder,
    MemoryRecorder,
    OpenAICompatibleProvider,
    parse_llm_spec,
    read_calls,
)

fake_openai = pytest.importorskip("hyperagents.testing.fake_openai")
FakeOpenAIServer = fake_openai.FakeOpenAIServer
FakeReply = fake_openai.FakeReply

Q = [{"role": "user", "content": "What is 2 + 2?"}]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def provider_for(server: object, **kwargs: object) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider("fake-model", base_url=server.base_url, **kwargs)  # type: ignore[attr-defined,arg-type]


def test_success_with_usage_and_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    reply = FakeReply(content="4", usage={"prompt_tokens": 11, "completion_tokens": 7})
    with FakeOpenAIServer([reply, "four"]) as server:
        provider = parse_llm_spec(f"{server.base_url}#fake-model")
        completion = provider.complete(Q, temperature=0.0, max_tokens=16, seed=3)
        assert (completion.text, completion.model) == ("4", "fake-model")
        assert (completion.prompt_tokens, completion.completion_tokens) == (11, 7)
        assert completion.finish_reason == "stop"
        body = server.requests[0]
        assert body["messages"] == Q and body["model"] == "fake-model"
        assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.0, 16, 3)
        plain = provider.complete(Q)
        assert plain.text == "four"
        assert "temperature" not in server.requests[1]


def test_rate_limit_is_retried_after_the_servers_delay() -> None:
    replies = [FakeReply(status=429, headers={"retry-after": "1.5"}), FakeReply(content="ok")]
    with FakeOpenAIServer(replies) as server:
        sleeps = Sleeps()
        recorder = MemoryRecorder()
        gateway = Gateway(provider_for(server), sleep=sleeps, recorder=recorder)
        assert gateway.complete(Q).text == "ok"
        assert server.calls == 2
        assert sleeps == [1.5]
        first = recorder.calls[0]
        assert first.error_type == "LLMTransientError" and "429" in (first.error or "")


def test_server_errors_exhaust_the_retries() -> None:
    with FakeOpenAIServer() as server:
        for _ in range(3):
            server.add_fault(status=500, message="overloaded")
        server.add_reply("too late")
        recorder = MemoryRecorder()
        gateway = Gateway(provider_for(server), retries=2, sleep=Sleeps(), recorder=recorder)
        with pytest.raises(LLMTransientError) as info:
            gateway.complete(Q)
        assert info.value.status_code == 500
        assert server.calls == 3
        assert [c.attempt for c in recorder.calls] == [1, 2, 3]
        assert gateway.usage().errors == 3 and gateway.usage().calls == 0


def test_timeout_is_transient() -> None:
    with FakeOpenAIServer([FakeReply(content="slow", delay=2.0), "fast"]) as server:
        provider = provider_for(server, timeout=0.2)
        with pytest.raises(LLMTransientError, match="timed out"):
            provider.complete(Q)
        assert Gateway(provider_for(server, timeout=60), sleep=Sleeps()).complete(Q).text == "fast"


def test_malformed_and_empty_replies_are_response_errors() -> None:
    with FakeOpenAIServer() as server:
        server.add_reply(FakeReply(malformed=True))
        server.add_reply(FakeReply(content=""))
        server.add_reply("fine")
        provider = provider_for(server)
        with pytest.raises(LLMResponseError, match="malformed"):
            provider.complete(Q)
        with pytest.raises(LLMResponseError, match="empty"):
            provider.complete(Q)
        server.add_fault(status=502, malformed=True)
        server.add_reply(FakeReply(malformed=True))
        server.add_reply("recovered")
        gateway = Gateway(provider, sleep=Sleeps())
        assert gateway.complete(Q).text == "fine"
        assert gateway.complete(Q).text == "recovered"
        assert gateway.usage().errors == 2


def test_connection_refused_is_transient() -> None:
    with FakeOpenAIServer() as server:
        url = server.base_url
    provider = OpenAICompatibleProvider("m", base_url=url, timeout=2.0)
    with pytest.raises(LLMTransientError, match="connection error"):
        provider.complete(Q)


def test_auth_failure_is_permanent_and_never_leaks_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-test-TOPSECRET0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    echo = FakeReply(status=401, content=f"Incorrect API key provided: {secret}")
    echo_transient = FakeReply(status=503, content=f"upstream rejected {secret}")
    with FakeOpenAIServer([echo_transient, echo]) as server:
        monkeypatch.setenv("OPENAI_API_KEY_URLS", server.base_url)  # the key is for this server
        provider = provider_for(server)
        path = tmp_path / "calls.jsonl"
        gateway = Gateway(provider, sleep=Sleeps(), recorder=JsonlRecorder(path))
        with caplog.at_level(logging.DEBUG), pytest.raises(LLMError) as info:
            gateway.complete(Q)
        assert not isinstance(info.value, LLMTransientError)
        assert "401" in str(info.value)
        assert server.calls == 2
        for text in (str(info.value), repr(provider), repr(gateway), path.read_text(), caplog.text):
            assert "TOPSECRET" not in text
        assert [c.error_type for c in read_calls(path)] == ["LLMTransientError", "LLMError"]


def test_the_key_is_sent_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer(["ok"], api_key="local-key") as server:
        provider = OpenAICompatibleProvider("m", base_url=server.base_url, api_key="local-key")
        assert provider.complete(Q).text == "ok"
        with pytest.raises(LLMError, match="401"):
            provider_for(server).complete(Q)  # "not-needed" is not the key


def test_a_server_url_spec_never_gets_the_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from hyperagents.llm import parse_llm_spec

    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-MUSTNOTLEAVE")
    monkeypatch.delenv("HYPERAGENTS_LLM_API_KEY", raising=False)
    with FakeOpenAIServer(["ok", "ok"]) as server:
        parse_llm_spec(f"{server.base_url}#m").complete(Q)
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY", "server-key")
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY_URLS", server.base_url)
        parse_llm_spec(f"{server.base_url}#m").complete(Q)
        sent = [h.get("authorization", "") for h in server.request_headers]
    assert all("MUSTNOTLEAVE" not in value for value in sent)
    assert sent == ["Bearer not-needed", "Bearer server-key"]


def test_a_key_goes_only_to_the_server_it_is_set_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run naming another server (e.g. started by another local user from a dashboard
    # without a token) gets the operator's environment, but never the key.
    monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY", "sk-operator-MUSTNOTLEAVE")
    with FakeOpenAIServer(["ok"]) as own, FakeOpenAIServer(["ok"] * 3) as attacker:
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY_URLS", own.base_url)
        assert parse_llm_spec(f"{own.base_url}#m").complete(Q).text == "ok"
        for _ in range(3):
            assert parse_llm_spec(f"{attacker.base_url}#m").complete(Q).text == "ok"
        monkeypatch.delenv("HYPERAGENTS_LLM_API_KEY_URLS")
        with pytest.raises(LLMError, match="HYPERAGENTS_LLM_API_KEY_URLS"):
            parse_llm_spec(f"{attacker.base_url}#m")  # no server named for the key: refused
    assert [h.get("authorization") for h in own.request_headers] == [
        "Bearer sk-operator-MUSTNOTLEAVE"
    ]
    assert [h.get("authorization") for h in attacker.request_headers] == ["Bearer not-needed"] * 3


def test_a_server_refusing_a_withheld_key_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY", "sk-operator-MUSTNOTLEAVE")
    monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY_URLS", "https://elsewhere.example/v1")
    with (
        FakeOpenAIServer(["ok"], api_key="its-own-key") as server,
        pytest.raises(LLMError, match="401") as info,
    ):
        parse_llm_spec(f"{server.base_url}#m").complete(Q)
    assert "is sent only to the servers listed in $HYPERAGENTS_LLM_API_KEY_URLS" in str(info.value)
    assert "MUSTNOTLEAVE" not in str(info.value)
