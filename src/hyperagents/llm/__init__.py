"""Language models: providers behind one protocol, and the gateway in front of them.

* :class:`LLMProvider`: the protocol (one method, ``complete``); implementations:
  :class:`OpenAICompatibleProvider` (OpenAI and any OpenAI-compatible server),
  :class:`AnthropicProvider` (optional extra), :class:`LocalProvider` (an embedded GGUF
  model, optional extra), :class:`ScriptedProvider` (deterministic, for
  tests), :class:`ReplayProvider` (a recorded run's replies) and :class:`ReplayFirstProvider`
  (recorded replies first, a live provider for the rest).
* :func:`parse_llm_spec`: one spec string (``openai:MODEL``,
  ``http://HOST:PORT/v1#MODEL``, ``anthropic:MODEL``, ``local``, ``scripted:FILE``) to a
  provider.
* :class:`Gateway`: retries with deterministic backoff, token and dollar accounting per call,
  variant and run, budgets, a content-addressed response cache, a record of every attempt
  (:class:`LLMCall`, :class:`JsonlRecorder`) and replay without calling any model.
* :func:`probe_llm`: check a spec's model before using it (reachable, key accepted, model
  listed) without spending a token; :class:`CircuitBreaker`: stop calling a model that keeps
  failing.

API keys come from the environment only and never appear in reprs, logs, error messages or
records.
"""

from __future__ import annotations

from hyperagents.exceptions import (
    LLMBudgetExceeded,
    LLMConfigError,
    LLMError,
    LLMReplayError,
    LLMResponseError,
    LLMTransientError,
)
from hyperagents.llm._anthropic import AnthropicProvider
from hyperagents.llm._base import (
    Completion,
    LLMCall,
    LLMProvider,
    LLMRequestRejected,
    LLMScriptExhausted,
    Message,
    estimate_tokens,
    read_calls,
    redact_secrets,
    request_key,
)
from hyperagents.llm._breaker import CircuitBreaker
from hyperagents.llm._cache import MemoryCache, ResponseCache
from hyperagents.llm._gateway import Gateway
from hyperagents.llm._local import LocalProvider, bundled_model_path
from hyperagents.llm._openai import OpenAICompatibleProvider
from hyperagents.llm._prices import (
    DEFAULT_PRICES,
    PRICES_AS_OF,
    ModelPrice,
    PriceTable,
    load_prices,
)
from hyperagents.llm._probe import probe_llm, probe_provider
from hyperagents.llm._recorders import JsonlRecorder, MemoryRecorder, Recorder
from hyperagents.llm._replay import ReplayFirstProvider, ReplayProvider
from hyperagents.llm._scripted import ScriptedProvider
from hyperagents.llm._spec import (
    COMPATIBLE_KEY_ENV,
    SPEC_FORMS,
    ProviderSpec,
    parse_llm_spec,
    parse_provider_spec,
    portable_llm_spec,
)
from hyperagents.llm._usage import UNSET, Usage

__all__ = [
    "COMPATIBLE_KEY_ENV",
    "DEFAULT_PRICES",
    "PRICES_AS_OF",
    "SPEC_FORMS",
    "UNSET",
    "AnthropicProvider",
    "CircuitBreaker",
    "Completion",
    "Gateway",
    "JsonlRecorder",
    "LLMBudgetExceeded",
    "LLMCall",
    "LLMConfigError",
    "LLMError",
    "LLMProvider",
    "LLMReplayError",
    "LLMRequestRejected",
    "LLMResponseError",
    "LLMScriptExhausted",
    "LLMTransientError",
    "LocalProvider",
    "MemoryCache",
    "MemoryRecorder",
    "Message",
    "ModelPrice",
    "OpenAICompatibleProvider",
    "PriceTable",
    "ProviderSpec",
    "Recorder",
    "ReplayFirstProvider",
    "ReplayProvider",
    "ResponseCache",
    "ScriptedProvider",
    "Usage",
    "bundled_model_path",
    "estimate_tokens",
    "load_prices",
    "parse_llm_spec",
    "parse_provider_spec",
    "portable_llm_spec",
    "probe_llm",
    "probe_provider",
    "read_calls",
    "redact_secrets",
    "request_key",
]
