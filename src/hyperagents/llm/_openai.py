"""OpenAI's chat completions API, and any server that speaks it (vLLM, Ollama, llama.cpp…).

The provider makes one request per call and maps its failures onto the LLM error classes
(:class:`~hyperagents.exceptions.LLMTransientError`, :class:`LLMResponseError`,
:class:`LLMError`); retries and accounting belong to the gateway.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from hyperagents.exceptions import LLMConfigError, LLMError, LLMResponseError
from hyperagents.llm._base import (
    Completion,
    Message,
    estimate_prompt_tokens,
    estimate_tokens,
    normalize_messages,
)
from hyperagents.llm._keys import environment_key, urls_variable
from hyperagents.llm._sdk import display_url, malformed, map_sdk_error

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider:
    """OpenAI's chat completions API, or any server that speaks it (vLLM, Ollama, llama.cpp…).

    The client is created with ``max_retries=0``: retries belong to the gateway.

    For OpenAI itself (``base_url=None``) the API key is required and read from the
    environment variable ``api_key_env``. For another server (``base_url`` given) a key is
    optional, and one from the environment is sent only to a server it was set for: one listed
    in ``$API_KEY_ENV_URLS`` (see :mod:`hyperagents.llm._keys`); other servers get the
    placeholder ``"not-needed"``. Spec strings pass ``HYPERAGENTS_LLM_API_KEY`` there, so an
    OpenAI key never goes to another server either. The key is never shown in a repr, a log or
    an error message.

    The per-call generation limit is sent as ``max_completion_tokens`` to OpenAI (its newer
    models reject ``max_tokens``) and as ``max_tokens`` to other servers (which may not know
    the newer name).

    Args:
        model: The model name.
        base_url: The API base URL of an OpenAI-compatible server (e.g.
            ``"http://127.0.0.1:8080/v1"``); ``None`` for OpenAI.
        api_key_env: The environment variable holding the key.
        api_key: The key itself (takes precedence over the variable, and is sent to
            ``base_url`` whatever it is; prefer the variable).
        timeout: Default seconds to wait for a call.
        client: A ready ``openai.OpenAI``-like client (for tests); ``base_url``, the key and
            ``timeout`` are then not used to build one.

    Raises:
        LLMConfigError: If the model is empty, the ``openai`` package is missing, OpenAI is
            targeted and the key variable is unset, or the variable is set for a base URL
            without ``$API_KEY_ENV_URLS`` saying which servers the key is for.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        api_key: str | None = None,
        timeout: float = 60.0,
        client: Any = None,
    ) -> None:
        if not model or not model.strip():
            raise LLMConfigError("an OpenAI-compatible provider needs a model name")
        self.model = model
        self.base_url = base_url
        self.name = "openai" if base_url is None else "openai-compatible"
        self.timeout = timeout
        #: The environment variable the key is read from.
        self.api_key_env = api_key_env
        key = api_key if api_key else environment_key(api_key_env, base_url)
        #: Where the key sent to the server comes from: ``"api_key"`` (given), ``"$VAR"`` or
        #: ``None`` (no key is sent).
        self.key_origin: str | None = (
            "api_key" if api_key else f"${api_key_env}" if key is not None else None
        )
        #: Said with an authentication failure when a key from the environment was withheld.
        self._withheld = (
            f" (${api_key_env} is sent only to the servers listed in ${urls_variable(api_key_env)})"
            if key is None and os.environ.get(api_key_env)
            else ""
        )
        if key is None and base_url is None and client is None:
            raise LLMConfigError(
                f"the OpenAI API key is missing: set the environment variable {api_key_env}"
            )
        self._secrets: tuple[str, ...] = (key,) if key else ()
        self._where = f"{self.name} ({self.model})"
        if client is None:
            try:
                import openai
            except ImportError:  # pragma: no cover - openai is a core dependency
                raise LLMConfigError(
                    "the OpenAI provider needs the openai package: pip install 'openai>=1.40'"
                ) from None
            client = openai.OpenAI(
                base_url=base_url,
                api_key=key or "not-needed",
                max_retries=0,
                timeout=timeout,
            )
        self._client = client

    def __repr__(self) -> str:
        where = "" if self.base_url is None else f", base_url={display_url(self.base_url)!r}"
        return f"{type(self).__name__}(model={self.model!r}{where})"

    @property
    def client(self) -> Any:
        """The ``openai.OpenAI`` client the provider calls (e.g. for
        :func:`~hyperagents.llm.probe_llm`)."""
        return self._client

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Ask the chat completions endpoint once.

        Args:
            messages: The conversation.
            temperature: Sampling temperature, if given.
            max_tokens: Most tokens to generate, if given.
            seed: Sampling seed, if given (best effort on OpenAI's side).
            timeout: Seconds for this call; ``None`` uses the provider's default.

        Returns:
            The reply, with the usage the server reported (estimated when it reports none).

        Raises:
            LLMTransientError: On a timeout, a connection error, HTTP 408/409/429 or 5xx
                (``status_code`` and ``retry_after`` set when known).
            LLMResponseError: If the response is not valid JSON, has no choices or no text.
            LLMError: On authentication failure, a rejected request (other 4xx) or bad
                messages.
        """
        plain = normalize_messages(messages)
        effective_timeout = self.timeout if timeout is None else timeout
        kwargs = self._request(plain, temperature, max_tokens, seed)
        kwargs["timeout"] = effective_timeout
        return self._parse(self._send(kwargs, effective_timeout), plain)

    def _request(
        self,
        plain: list[dict[str, str]],
        temperature: float | None,
        max_tokens: int | None,
        seed: int | None,
    ) -> dict[str, Any]:
        """The arguments of ``chat.completions.create`` (the timeout aside)."""
        kwargs: dict[str, Any] = {"model": self.model, "messages": plain}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_completion_tokens" if self.base_url is None else "max_tokens"] = max_tokens
        if seed is not None:
            kwargs["seed"] = seed
        return kwargs

    def _send(self, kwargs: dict[str, Any], timeout: float) -> Any:
        """Make the request; an SDK failure becomes the LLM error it stands for."""
        import openai

        try:
            return self._client.chat.completions.create(**kwargs)
        except openai.OpenAIError as exc:
            mapped = map_sdk_error(
                openai, exc, where=self._where, secrets=self._secrets, timeout=timeout
            )
            if self._withheld and getattr(exc, "status_code", None) in (401, 403):
                mapped = LLMError(f"{mapped}{self._withheld}")
            raise (mapped or LLMError(f"{self._where}: {type(exc).__name__}")) from None
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise malformed(self._where, exc) from None

    def _parse(self, response: Any, messages: Sequence[Message]) -> Completion:
        """The completion a response holds (token counts estimated where it has none)."""
        choices = getattr(response, "choices", None)
        if not choices:
            raise LLMResponseError(f"{self._where}: malformed response: no choices")
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if not isinstance(text, str) or not text:
            raise LLMResponseError(f"{self._where}: empty response: the reply has no text")
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        model = getattr(response, "model", None)
        finish_reason = getattr(choice, "finish_reason", None)
        return Completion(
            text=text,
            model=model if isinstance(model, str) and model else self.model,
            prompt_tokens=(
                prompt_tokens
                if isinstance(prompt_tokens, int)
                else estimate_prompt_tokens(messages)
            ),
            completion_tokens=(
                completion_tokens if isinstance(completion_tokens, int) else estimate_tokens(text)
            ),
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        )
