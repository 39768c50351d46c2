"""LLM spec strings: every accepted form, and clear errors for the rest."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hyperagents.exceptions import ConfigError, LLMConfigError
from hyperagents.llm import (
    OpenAICompatibleProvider,
    ProviderSpec,
    ScriptedProvider,
    parse_llm_spec,
    parse_provider_spec,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-4.1-mini", ProviderSpec("openai", "gpt-4.1-mini")),
        (" openai:gpt-4o ", ProviderSpec("openai", "gpt-4o")),
        (
            "http://127.0.0.1:8080/v1#qwen2.5:7b",
            ProviderSpec("openai-compatible", "qwen2.5:7b", "http://127.0.0.1:8080/v1"),
        ),
        (
            "https://openrouter.ai/api/v1/#openai/gpt-4o",
            ProviderSpec("openai-compatible", "openai/gpt-4o", "https://openrouter.ai/api/v1"),
        ),
        ("anthropic:claude-3-5-haiku-latest", ProviderSpec("anthropic", "claude-3-5-haiku-latest")),
        ("local", ProviderSpec("local", None)),
        ("local:/models/tiny.gguf", ProviderSpec("local", "/models/tiny.gguf")),
        ("scripted:replies.txt", ProviderSpec("scripted", "replies.txt")),
    ],
)
def test_accepted_forms(spec: str, expected: ProviderSpec) -> None:
    assert parse_provider_spec(spec) == expected


def test_str_round_trips() -> None:
    for spec in ("openai:gpt-4o", "http://localhost:11434/v1#llama3", "local", "scripted:x.json"):
        assert str(parse_provider_spec(spec)) == spec


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "empty"),
        ("gpt-4o", "unknown provider"),
        ("mistral:large", "unknown provider"),
        ("openai:", "needs a model name"),
        ("openai", "needs a model name"),
        ("anthropic:", "needs a model name"),
        ("scripted:", "needs a file"),
        ("openai:gpt 4o", "whitespace"),
        ("http://127.0.0.1:8080/v1", "model after '#'"),
        ("http://127.0.0.1:8080/v1#", "model after '#'"),
        ("http:///v1#m", "no host"),
        ("http://host:notaport/v1#m", "bad URL"),
    ],
)
def test_invalid_specs_name_the_accepted_forms(spec: str, why: str) -> None:
    with pytest.raises(LLMConfigError) as info:
        parse_provider_spec(spec)
    message = str(info.value)
    assert why in message
    assert "openai:MODEL" in message and "scripted:FILE" in message
    assert isinstance(info.value, ConfigError)


def test_an_unknown_spec_that_looks_like_a_key_is_not_echoed() -> None:
    with pytest.raises(LLMConfigError) as info:
        parse_provider_spec("sk-proj-abcdefghijklmnop1234")
    assert "abcdefghijklmnop1234" not in str(info.value)


def test_openai_needs_the_key_variable_and_never_shows_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="OPENAI_API_KEY"):
        parse_llm_spec("openai:gpt-4o")

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-VERYSECRETVALUE123")
    provider = parse_llm_spec("openai:gpt-4o")
    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.name == "openai" and provider.model == "gpt-4o"
    assert "VERYSECRETVALUE" not in repr(provider)
    assert "VERYSECRETVALUE" not in str(vars(provider).get("base_url"))


def test_a_server_url_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = parse_llm_spec("http://127.0.0.1:9/v1#tiny")
    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.name == "openai-compatible" and provider.model == "tiny"
    # Credentials in the URL would be stored with the run: refused, without echoing them.
    for bad in ("http://user:hunter2pass@127.0.0.1:9/v1#tiny", "http://h:1/v1?key=hunter2pass#m"):
        with pytest.raises(LLMConfigError, match="HYPERAGENTS_LLM_API_KEY") as info:
            parse_llm_spec(bad)
        assert "hunter2pass" not in str(info.value)


def test_scripted_spec_loads_the_file(tmp_path: Path) -> None:
    script = tmp_path / "replies.txt"
    script.write_text("one\n---\ntwo\n")
    provider = parse_llm_spec(f"scripted:{script}")
    assert isinstance(provider, ScriptedProvider)
    assert [provider.complete([{"role": "user", "content": "q"}]).text for _ in range(2)] == [
        "one",
        "two",
    ]
    with pytest.raises(LLMConfigError, match="cannot read"):
        parse_llm_spec(f"scripted:{tmp_path / 'missing.txt'}")


@pytest.mark.skipif(
    importlib.util.find_spec("anthropic") is not None, reason="the anthropic extra is installed"
)
def test_anthropic_without_the_extra_says_how_to_install_it() -> None:
    with pytest.raises(LLMConfigError, match=r"pip install 'hyperagents\[anthropic\]'"):
        parse_llm_spec("anthropic:claude-3-5-haiku-latest")
