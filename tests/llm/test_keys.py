"""An API key from the environment goes only to the servers it was set for."""

from __future__ import annotations

import pytest

from hyperagents.exceptions import LLMConfigError
from hyperagents.llm import parse_llm_spec
from hyperagents.llm._keys import environment_key, url_listed
from hyperagents.llm._spec import parse_provider_spec

KEY = "HYPERAGENTS_LLM_API_KEY"
URLS = "HYPERAGENTS_LLM_API_KEY_URLS"


@pytest.mark.parametrize(
    ("url", "listed"),
    [
        ("https://openrouter.ai/api/v1", True),
        ("https://OpenRouter.ai:443/api/v1/", True),
        ("https://openrouter.ai/api/v1/chat", True),
        ("https://openrouter.ai/api/v10", False),  # a path segment, not a prefix of characters
        ("https://openrouter.ai/api", False),
        ("http://openrouter.ai/api/v1", False),  # never downgraded to plain HTTP
        ("https://openrouter.ai:8443/api/v1", False),
        ("https://openrouter.ai.attacker.example/api/v1", False),
        ("https://attacker.example/api/v1", False),
        ("http://127.0.0.1:8080/v1", True),
        ("http://localhost:8080/v1", False),  # another name is another server
    ],
)
def test_which_urls_a_listed_base_url_covers(url: str, listed: bool) -> None:
    allowed = ("https://openrouter.ai/api/v1", "http://127.0.0.1:8080/v1")
    assert url_listed(url, allowed) is listed


def test_the_key_is_given_only_for_listed_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY, "sk-secret")
    monkeypatch.setenv(URLS, "https://a.example/v1, http://127.0.0.1:8080/v1")
    assert environment_key(KEY, "https://a.example/v1") == "sk-secret"
    assert environment_key(KEY, "http://127.0.0.1:8080/v1") == "sk-secret"
    assert environment_key(KEY, "http://attacker.example/v1") is None
    monkeypatch.delenv(KEY)
    assert environment_key(KEY, "https://a.example/v1") is None


def test_a_key_without_its_servers_is_an_error_that_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY, "sk-secret-VALUE")
    monkeypatch.delenv(URLS, raising=False)
    with pytest.raises(LLMConfigError, match=URLS) as info:
        parse_llm_spec("http://attacker.example/v1#m")
    assert "sk-secret-VALUE" not in str(info.value)
    monkeypatch.setenv(URLS, "not a url")
    with pytest.raises(LLMConfigError, match="base URLs"):
        parse_llm_spec("http://attacker.example/v1#m")


def test_a_key_set_with_its_url_works_and_a_provider_keeps_its_own_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY, "sk-secret")
    monkeypatch.setenv(URLS, "https://a.example/v1")
    provider = parse_llm_spec("https://a.example/v1#m")
    assert provider._secrets == ("sk-secret",)  # type: ignore[attr-defined]
    assert parse_llm_spec("https://b.example/v1#m")._secrets == ()  # type: ignore[attr-defined]
    # OpenAI's key goes to OpenAI (its own host, or that host given as a base URL), and to
    # another base URL only when listed in OPENAI_API_KEY_URLS.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.delenv("OPENAI_API_KEY_URLS", raising=False)
    assert environment_key("OPENAI_API_KEY", None) == "sk-openai"
    assert environment_key("OPENAI_API_KEY", "https://api.openai.com/v1") == "sk-openai"
    with pytest.raises(LLMConfigError, match="OPENAI_API_KEY_URLS"):
        environment_key("OPENAI_API_KEY", "https://proxy.example/v1")


def test_which_specs_the_operator_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URLS, "https://a.example/v1")
    for spec in ("openai:gpt-4.1-mini", "anthropic:claude", "local", "https://a.example/v1#m"):
        assert parse_provider_spec(spec).operator_configured(), spec
    assert not parse_provider_spec("http://attacker.example/v1#m").operator_configured()
    monkeypatch.delenv(URLS)
    assert not parse_provider_spec("https://a.example/v1#m").operator_configured()
