"""Probing a model before a run starts: a clear error at once instead of hours of failed calls."""

from __future__ import annotations

import json
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from hyperagents.exceptions import LLMConfigError
from hyperagents.llm import AnthropicProvider, OpenAICompatibleProvider, probe_llm, probe_provider
from hyperagents.testing import FakeOpenAIServer

pytestmark = pytest.mark.timeout(120)  # a hang guard, far past what a busy machine needs

KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_API_KEY_URLS",
    "HYPERAGENTS_LLM_API_KEY",
    "HYPERAGENTS_LLM_API_KEY_URLS",
    "ANTHROPIC_API_KEY",
)


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_a_closed_port_is_a_clear_error_at_once() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(LLMConfigError) as info:
        probe_llm(f"{url}#m")
    assert str(info.value) == (
        f"cannot reach the model server at {url}: connection refused (is it running?)"
    )


def test_a_server_that_never_answers_times_out(silent_server: int) -> None:
    with pytest.raises(LLMConfigError, match=r"no answer within 0\.5 s"):
        probe_llm(f"http://127.0.0.1:{silent_server}/v1#m", timeout=0.5)


def test_an_unknown_host_is_named() -> None:
    import httpx

    url = "http://no-such-host.example/v1"

    def unresolvable(**kwargs: Any) -> None:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as exc:
            raise openai.APIConnectionError(request=httpx.Request("GET", url)) from exc

    client = types.SimpleNamespace(models=types.SimpleNamespace(list=unresolvable))
    provider = OpenAICompatibleProvider("m", base_url=url, client=client)
    with pytest.raises(LLMConfigError) as info:
        probe_provider(provider)
    assert str(info.value) == (
        f"cannot reach the model server at {url}: the host 'no-such-host.example' is not known "
        "(is the name right?)"
    )


def test_a_listed_model_passes_without_spending_a_token() -> None:
    with FakeOpenAIServer(models=["qwen2.5-coder:latest", "llama3", "openai/*"]) as server:
        probe_llm(f"{server.base_url}#llama3")
        probe_llm(f"{server.base_url}#qwen2.5-coder")  # Ollama's reading of NAME:latest
        probe_llm(f"{server.base_url}#llama3:nitro")  # OpenRouter's variants of a model
        probe_llm(f"{server.base_url}#openai/gpt-4.1")  # a proxy's wildcard route
        assert server.models_requests == 4
        assert server.calls == 0  # no completion was asked for
        with pytest.raises(LLMConfigError, match=r"does not list the model 'qwen2\.5-coder:7b'"):
            probe_llm(f"{server.base_url}#qwen2.5-coder:7b")


def test_a_model_the_server_does_not_list_is_named_with_what_it_lists() -> None:
    listed = [f"model-{i}" for i in range(10)]
    with FakeOpenAIServer(models=listed) as server, pytest.raises(LLMConfigError) as info:
        probe_llm(f"{server.base_url}#qwen")
    said = str(info.value)
    assert said.startswith(f"the model server at {server.base_url} does not list the model 'qwen'")
    assert "'model-0', 'model-1'" in said and "and 2 more" in said
    assert "\n" not in said


def test_listed_names_cannot_act_on_a_terminal() -> None:
    evil = FakeOpenAIServer(models=["evil\x1b]0;pwned\x07"])
    with evil as server, pytest.raises(LLMConfigError) as info:
        probe_llm(f"{server.base_url}#m")
    assert "\x1b" not in str(info.value) and "\\x1b" in str(info.value)


@pytest.mark.parametrize("models", [None, []])
def test_a_server_without_a_models_list_counts_as_reachable(models: list[str] | None) -> None:
    with FakeOpenAIServer(models=models, list_models=models is not None) as server:
        probe_llm(f"{server.base_url}#anything")
        assert server.models_requests == 1


def test_a_server_asking_for_a_key_says_which_variables_to_set() -> None:
    with FakeOpenAIServer(api_key="its-key") as server, pytest.raises(LLMConfigError) as info:
        probe_llm(f"{server.base_url}#fake-model")
    assert str(info.value) == (
        f"the model server at {server.base_url} asks for an API key (HTTP 401): set "
        "$HYPERAGENTS_LLM_API_KEY and list the server in $HYPERAGENTS_LLM_API_KEY_URLS"
    )


def test_a_refused_key_is_said_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(api_key="its-key") as server:
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY", "sk-wrong-SECRET0123456789")
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY_URLS", server.base_url)
        with pytest.raises(LLMConfigError) as info:
            probe_llm(f"{server.base_url}#fake-model")
        assert str(info.value) == (
            f"the model server at {server.base_url} refused the API key in "
            "$HYPERAGENTS_LLM_API_KEY (HTTP 401)"
        )
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY", "its-key")
        probe_llm(f"{server.base_url}#fake-model")  # the right key passes
        assert server.calls == 0


def test_a_key_for_other_servers_is_not_sent_and_the_error_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY", "sk-operator-MUSTNOTLEAVE")
    monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY_URLS", "https://elsewhere.example/v1")
    received: list[str | None] = []
    with FakeOpenAIServer(api_key="its-own-key") as server:
        original = server._authorized

        def spy(authorization: str | None) -> bool:
            received.append(authorization)
            return original(authorization)

        monkeypatch.setattr(server, "_authorized", spy)
        with pytest.raises(LLMConfigError) as info:
            probe_llm(f"{server.base_url}#fake-model")
    assert "is sent only to the servers listed in $HYPERAGENTS_LLM_API_KEY_URLS" in str(info.value)
    assert received == ["Bearer not-needed"]


def test_missing_key_variables_are_reported() -> None:
    with pytest.raises(LLMConfigError, match="set the environment variable OPENAI_API_KEY"):
        probe_llm("openai:gpt-4.1-mini")


def test_a_scripted_model_is_probed_by_reading_its_script(tmp_path: Path) -> None:
    script = tmp_path / "replies.json"
    with pytest.raises(LLMConfigError, match="cannot read the LLM script"):
        probe_llm(f"scripted:{script}")
    script.write_text("[1, 2")
    with pytest.raises(LLMConfigError, match="not valid JSON"):
        probe_llm(f"scripted:{script}")
    script.write_text(json.dumps(["a reply"]))
    probe_llm(f"scripted:{script}")


def test_a_local_model_is_probed_without_loading_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loads: list[Any] = []
    fake = types.ModuleType("llama_cpp")
    fake.Llama = lambda *args, **kwargs: loads.append(args)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", fake)
    with pytest.raises(LLMConfigError, match="does not exist"):
        probe_llm(f"local:{tmp_path / 'missing.gguf'}")
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    probe_llm(f"local:{model}")
    assert loads == []
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # the extra is missing
    with pytest.raises(LLMConfigError, match=r"pip install 'hyperagents\[local\]'"):
        probe_llm(f"local:{model}")


class _FakeModels:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.asked: list[tuple[str, float]] = []

    def retrieve(self, model: str, *, timeout: float) -> object:
        self.asked.append((model, timeout))
        if self.error is not None:
            raise self.error
        return types.SimpleNamespace(id=model)


def _anthropic(monkeypatch: pytest.MonkeyPatch, error: Exception | None) -> AnthropicProvider:
    """An Anthropic provider over a fake SDK module (its errors shaped like openai's)."""
    sdk = types.ModuleType("anthropic")
    for name in ("APIError", "APIStatusError", "APIConnectionError", "APITimeoutError"):
        setattr(sdk, name, getattr(openai, name))
    sdk.AnthropicError = openai.OpenAIError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "anthropic", sdk)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-SECRET0123456789")
    client = types.SimpleNamespace(models=_FakeModels(error))
    return AnthropicProvider("claude-x", client=client)


def _status_error(status: int) -> openai.APIStatusError:
    import httpx

    request = httpx.Request("GET", "https://api.anthropic.com/v1/models/claude-x")
    response = httpx.Response(status, request=request)
    return openai.APIStatusError("refused", response=response, body=None)


def test_anthropic_is_asked_about_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = _anthropic(monkeypatch, None)
    probe_provider(provider, timeout=3)
    assert provider.client.models.asked == [("claude-x", 3)]
    with pytest.raises(LLMConfigError, match="Anthropic does not know the model 'claude-x'"):
        probe_provider(_anthropic(monkeypatch, _status_error(404)))
    with pytest.raises(LLMConfigError) as info:
        probe_provider(_anthropic(monkeypatch, _status_error(401)))
    assert str(info.value) == "Anthropic refused the API key in $ANTHROPIC_API_KEY (HTTP 401)"
    # A key may lack the permission to read models and still complete: that is not refused.
    probe_provider(_anthropic(monkeypatch, _status_error(403)))


def test_anthropic_without_a_key_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    _anthropic(monkeypatch, None)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(LLMConfigError, match="set the environment variable ANTHROPIC_API_KEY"):
        probe_llm("anthropic:claude-x")
