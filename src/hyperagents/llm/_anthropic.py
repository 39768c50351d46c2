"""Anthropic's Messages API (optional extra: ``pip install 'hyperagents[anthropic]'``).

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
from hyperagents.llm._sdk import malformed, map_sdk_error

__all__ = ["AnthropicProvider"]


class AnthropicProvider:
    """Anthropic's Messages API (optional extra: ``pip install 'hyperagents[anthropic]'``).

    System messages are joined into Anthropic's ``system`` parameter; ``seed`` is ignored (the
    API has none); ``max_tokens`` defaults to ``default_max_tokens`` because the API requires
    it. The client is created with ``max_retries=0``.

    Args:
        model: The model name, e.g. ``"claude-3-5-haiku-latest"``.
        api_key_env: The environment variable holding the key.
        api_key: The key itself (takes precedence over the variable).
        timeout: Default seconds to wait for a call.
        default_max_tokens: The generation limit when a call gives none.
        client: A ready ``anthropic.Anthropic``-like client (for tests).

    Raises:
        LLMConfigError: If the model is empty, the ``anthropic`` package is not installed, or
            the key variable is unset.
    """

    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key_env: str = "ANTHROPIC_API_KEY",
        api_key: str | None = None,
        timeout: float = 60.0,
        default_max_tokens: int = 4096,
        client: Any = None,
    ) -> None:
        if not model or not model.strip():
            raise LLMConfigError("the Anthropic provider needs a model name")
        self.model = model
        self.timeout = timeout
        self.default_max_tokens = default_max_tokens
        self._where = f"anthropic ({model})"
        self._sdk = _import_anthropic()
        key = api_key if api_key else os.environ.get(api_key_env) or None
        if key is None and client is None:
            raise LLMConfigError(
                f"the Anthropic API key is missing: set the environment variable {api_key_env}"
            )
        self._secrets: tuple[str, ...] = (key,) if key else ()
        #: Where the key comes from: ``"api_key"`` (given), ``"$VAR"`` or ``None`` (a client
        #: was given instead).
        self.key_origin: str | None = (
            "api_key" if api_key else f"${api_key_env}" if key is not None else None
        )
        if client is None:
            client = self._sdk.Anthropic(api_key=key, max_retries=0, timeout=timeout)
        self._client = client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    @property
    def client(self) -> Any:
        """The ``anthropic.Anthropic`` client the provider calls."""
        return self._client

    @property
    def sdk(self) -> Any:
        """The ``anthropic`` module (its exception classes)."""
        return self._sdk

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Ask the Messages endpoint once.

        Args:
            messages: The conversation; ``system`` messages become the system prompt.
            temperature: Sampling temperature, if given.
            max_tokens: Most tokens to generate (``default_max_tokens`` when ``None``).
            seed: Ignored: the Messages API has no seed.
            timeout: Seconds for this call; ``None`` uses the provider's default.

        Returns:
            The reply (text blocks joined).

        Raises:
            LLMTransientError: On a timeout, a connection error, HTTP 408/409/429 or 5xx.
            LLMResponseError: If the response is malformed or holds no text.
            LLMError: On authentication failure or another rejected request.
        """
        del seed  # not supported by the API
        plain = normalize_messages(messages)
        effective_timeout = self.timeout if timeout is None else timeout
        kwargs = self._request(plain, temperature, max_tokens)
        kwargs["timeout"] = effective_timeout
        return self._parse(self._send(kwargs, effective_timeout), plain)

    def _request(
        self, plain: list[dict[str, str]], temperature: float | None, max_tokens: int | None
    ) -> dict[str, Any]:
        """The arguments of ``messages.create`` (the timeout aside): system messages joined
        into ``system``, the others as the conversation."""
        system = "\n\n".join(m["content"] for m in plain if m["role"] == "system")
        chat = [
            {"role": m["role"], "content": m["content"]} for m in plain if m["role"] != "system"
        ]
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": chat,
            "max_tokens": self.default_max_tokens if max_tokens is None else max_tokens,
        }
        if system:
            kwargs["system"] = system
        if temperature is not None:
            kwargs["temperature"] = temperature
        return kwargs

    def _send(self, kwargs: dict[str, Any], timeout: float) -> Any:
        """Make the request; an SDK failure becomes the LLM error it stands for."""
        try:
            return self._client.messages.create(**kwargs)
        except self._sdk.AnthropicError as exc:
            mapped = map_sdk_error(
                self._sdk, exc, where=self._where, secrets=self._secrets, timeout=timeout
            )
            raise (mapped or LLMError(f"{self._where}: {type(exc).__name__}")) from None
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise malformed(self._where, exc) from None

    def _parse(self, response: Any, plain: Sequence[Message]) -> Completion:
        """The completion a response holds: its text blocks joined (token counts estimated
        where it has none)."""
        blocks = getattr(response, "content", None) or []
        text = "".join(
            getattr(block, "text", "") for block in blocks if getattr(block, "type", "") == "text"
        )
        if not text:
            raise LLMResponseError(f"{self._where}: empty response: the reply has no text")
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "input_tokens", None)
        completion_tokens = getattr(usage, "output_tokens", None)
        model = getattr(response, "model", None)
        stop = getattr(response, "stop_reason", None)
        return Completion(
            text=text,
            model=model if isinstance(model, str) and model else self.model,
            prompt_tokens=(
                prompt_tokens if isinstance(prompt_tokens, int) else estimate_prompt_tokens(plain)
            ),
            completion_tokens=(
                completion_tokens if isinstance(completion_tokens, int) else estimate_tokens(text)
            ),
            finish_reason=stop if isinstance(stop, str) else None,
        )


def _import_anthropic() -> Any:
    """The ``anthropic`` module, or a clear error naming the extra to install."""
    try:
        import anthropic  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise LLMConfigError(
            "the anthropic provider needs the optional 'anthropic' package: "
            "pip install 'hyperagents[anthropic]'"
        ) from None
    return anthropic
