"""LLM providers: OpenAI and OpenAI-compatible servers, Anthropic, scripted replies, replay.

Every provider makes one request per call and maps its failures onto the LLM error classes
(:class:`~hyperagents.exceptions.LLMTransientError`, :class:`LLMResponseError`,
:class:`LLMError`); retries and accounting belong to the gateway.
"""

from __future__ import annotations

import collections
import email.utils
import json
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hyperagents.exceptions import (
    LLMBudgetExceeded,
    LLMConfigError,
    LLMError,
    LLMReplayError,
    LLMResponseError,
    LLMTransientError,
)
from hyperagents.llm._base import (
    ERROR_TYPES,
    Completion,
    LLMCall,
    LLMRequestRejected,
    LLMScriptExhausted,
    Message,
    estimate_tokens,
    normalize_messages,
    read_calls,
    redact_secrets,
    request_key,
)
from hyperagents.llm._keys import environment_key, urls_variable

__all__ = [
    "AnthropicProvider",
    "OpenAICompatibleProvider",
    "ReplayProvider",
    "ScriptedProvider",
]

#: HTTP statuses worth retrying (the same set the official clients retry).
_TRANSIENT_STATUSES = frozenset({408, 409, 429})
#: HTTP statuses that refuse the request itself (its size, a parameter), not the client.
_REJECTED_STATUSES = frozenset({400, 413, 422})
_MAX_ERROR_TEXT = 500


def display_url(url: str) -> str:
    """A URL without user name and password, fit for logs and reprs.

    Args:
        url: The URL.

    Returns:
        The URL with any ``user:password@`` removed.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _retry_after(headers: Any) -> float | None:
    """Seconds a response's ``retry-after-ms`` / ``retry-after`` header asks to wait."""
    if headers is None:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        value = headers.get("retry-after")
    except (TypeError, ValueError, AttributeError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


def _map_sdk_error(
    sdk: Any, exc: Exception, *, where: str, secrets: Sequence[str], timeout: float | None
) -> LLMError | None:
    """Translate an ``openai`` or ``anthropic`` SDK exception (both share the shape).

    Returns ``None`` when ``exc`` is not an exception of that SDK.
    """

    def clean(text: str) -> str:
        return _short(redact_secrets(text, secrets))

    if isinstance(exc, sdk.APIResponseValidationError):
        return LLMResponseError(f"{where}: malformed response: {clean(str(exc))}")
    if isinstance(exc, sdk.APITimeoutError):
        after = f" after {timeout:g} s" if timeout is not None else ""
        return LLMTransientError(f"{where}: request timed out{after}")
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        return LLMTransientError(f"{where}: connection error{clean(detail)}")
    if isinstance(exc, sdk.APIStatusError):
        status = int(getattr(exc, "status_code", 0) or 0)
        message = f"{where}: HTTP {status}: {clean(str(getattr(exc, 'message', exc)))}"
        if status in _TRANSIENT_STATUSES or status >= 500:
            response = getattr(exc, "response", None)
            retry_after = _retry_after(getattr(response, "headers", None))
            return LLMTransientError(message, status_code=status, retry_after=retry_after)
        if status in _REJECTED_STATUSES:
            return LLMRequestRejected(message)
        return LLMError(message)
    if isinstance(exc, sdk.APIError):
        return LLMError(f"{where}: {type(exc).__name__}: {clean(str(exc))}")
    return None


def _prompt_tokens_estimate(messages: Sequence[Message]) -> int:
    return estimate_tokens("".join(message["content"] for message in messages))


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
        import openai

        plain = normalize_messages(messages)
        kwargs: dict[str, Any] = {"model": self.model, "messages": plain}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_completion_tokens" if self.base_url is None else "max_tokens"] = max_tokens
        if seed is not None:
            kwargs["seed"] = seed
        effective_timeout = self.timeout if timeout is None else timeout
        kwargs["timeout"] = effective_timeout
        try:
            response = self._client.chat.completions.create(**kwargs)
        except openai.OpenAIError as exc:
            mapped = _map_sdk_error(
                openai, exc, where=self._where, secrets=self._secrets, timeout=effective_timeout
            )
            if self._withheld and getattr(exc, "status_code", None) in (401, 403):
                mapped = LLMError(f"{mapped}{self._withheld}")
            raise (mapped or LLMError(f"{self._where}: {type(exc).__name__}")) from None
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise LLMResponseError(
                f"{self._where}: malformed response: {_short(redact_secrets(str(exc)))}"
            ) from None
        return self._parse(response, plain)

    def _parse(self, response: Any, messages: Sequence[Message]) -> Completion:
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
                else _prompt_tokens_estimate(messages)
            ),
            completion_tokens=(
                completion_tokens if isinstance(completion_tokens, int) else estimate_tokens(text)
            ),
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        )


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
        effective_timeout = self.timeout if timeout is None else timeout
        kwargs["timeout"] = effective_timeout
        try:
            response = self._client.messages.create(**kwargs)
        except self._sdk.AnthropicError as exc:
            mapped = _map_sdk_error(
                self._sdk, exc, where=self._where, secrets=self._secrets, timeout=effective_timeout
            )
            raise (mapped or LLMError(f"{self._where}: {type(exc).__name__}")) from None
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise LLMResponseError(
                f"{self._where}: malformed response: {_short(redact_secrets(str(exc)))}"
            ) from None
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
                prompt_tokens if isinstance(prompt_tokens, int) else _prompt_tokens_estimate(plain)
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


#: Scripted failure kinds → (error class, message, HTTP status).
_SCRIPTED_ERRORS: Mapping[str, tuple[type[LLMError], str, int | None]] = {
    "transient": (LLMTransientError, "scripted transient error", None),
    "timeout": (LLMTransientError, "scripted timeout", None),
    "rate_limit": (LLMTransientError, "scripted HTTP 429: rate limited", 429),
    "server": (LLMTransientError, "scripted HTTP 500: server error", 500),
    "malformed": (LLMResponseError, "scripted malformed response", None),
    "error": (LLMError, "scripted error", None),
}


def _scripted_entry(index: int, reply: object) -> dict[str, Any]:
    """Check one scripted reply and return it as a dict with a ``content``."""
    if isinstance(reply, str):
        return {"content": reply}
    if not isinstance(reply, Mapping):
        raise LLMConfigError(f"scripted reply {index} must be a string or an object")
    entry = dict(reply)
    unknown = set(entry) - {
        "content",
        "error",
        "message",
        "retry_after",
        "prompt_tokens",
        "completion_tokens",
        "finish_reason",
    }
    if unknown:
        raise LLMConfigError(f"scripted reply {index} has unknown fields: {sorted(unknown)}")
    error = entry.get("error")
    if error is not None and error not in _SCRIPTED_ERRORS:
        raise LLMConfigError(
            f"scripted reply {index}: unknown error kind {error!r}; "
            f"expected one of {sorted(_SCRIPTED_ERRORS)}"
        )
    content = entry.setdefault("content", "")
    if not isinstance(content, str):
        raise LLMConfigError(f"scripted reply {index}: 'content' must be a string")
    if error is None and not content:
        raise LLMConfigError(f"scripted reply {index} has neither content nor an error")
    for name in ("prompt_tokens", "completion_tokens"):
        value = entry.get(name)
        if value is not None and (not isinstance(value, int) or value < 0):
            raise LLMConfigError(f"scripted reply {index}: {name!r} must be an integer >= 0")
    return entry


class ScriptedProvider:
    """Deterministic replies from a script, for tests and offline demos.

    Each call takes the next reply. A reply is a string, or a mapping with ``content`` and
    optionally ``error`` (one of ``transient``, ``timeout``, ``rate_limit``, ``server``,
    ``malformed``, ``error``) to simulate a failure, ``message`` (the error's text),
    ``retry_after``, ``prompt_tokens``, ``completion_tokens`` and ``finish_reason``. Token
    counts default to ``ceil(characters / 4)``.

    Thread-safe: concurrent calls take distinct replies. A call beyond the end of the script
    (with ``cycle`` off) raises :class:`~hyperagents.llm.LLMScriptExhausted` and consumes no
    reply.

    Attributes:
        requests: The messages of every call, in order.
        source: The file the script was read from (``None``: given in Python).

    Args:
        replies: The script.
        model: The model name to report.
        cycle: Start over when the script is exhausted instead of raising.

    Raises:
        LLMConfigError: If the script is empty or a reply is malformed.
    """

    name = "scripted"

    def __init__(
        self,
        replies: Sequence[str | Mapping[str, Any]],
        *,
        model: str = "scripted",
        cycle: bool = False,
    ) -> None:
        if isinstance(replies, str | bytes) or not isinstance(replies, Sequence):
            raise LLMConfigError("scripted replies must be a list of strings or objects")
        if not replies:
            raise LLMConfigError("a scripted provider needs at least one reply")
        self._replies = [_scripted_entry(i, reply) for i, reply in enumerate(replies)]
        self.model = model
        self.cycle = cycle
        self.source: str | None = None
        self.requests: list[list[dict[str, str]]] = []
        self._next = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._replies)} replies, model={self.model!r})"

    def _exhausted(self) -> str:
        """What a call past the last reply says: the file, its size, how to go on."""
        count = len(self._replies)
        if self.source is None:
            return f"the scripted replies ran out: all {count} were used"
        return (
            f"the LLM script {self.source!r} ran out: all {count} of its replies were used; "
            f"add replies to it to go on (a resumed run continues with reply {count + 1})"
        )

    def skip(self, count: int) -> None:
        """Move past ``count`` replies (a resumed run continues its script where it was)."""
        with self._lock:
            self._next += max(0, int(count))

    @property
    def calls(self) -> int:
        """How many calls were made."""
        with self._lock:
            return self._next

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, model: str = "scripted", cycle: bool = False
    ) -> ScriptedProvider:
        """Load a script from a file.

        A ``.json`` file holds a list of replies or ``{"replies": [...]}``. Any other file is
        text: replies separated by lines that hold only ``---`` (blank lines around each reply
        are dropped).

        Args:
            path: The file.
            model: The model name to report.
            cycle: Start over when the script is exhausted.

        Returns:
            The provider.

        Raises:
            LLMConfigError: If the file cannot be read, is not valid JSON, or holds no reply.
        """
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise LLMConfigError(f"cannot read the LLM script {str(file)!r}: {exc}") from None
        replies: Sequence[str | Mapping[str, Any]]
        if file.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise LLMConfigError(
                    f"the LLM script {str(file)!r} is not valid JSON: {exc}"
                ) from None
            if isinstance(data, Mapping):
                data = data.get("replies")
            if not isinstance(data, list):
                raise LLMConfigError(
                    f"the LLM script {str(file)!r} must hold a list or {{'replies': [...]}}"
                )
            replies = data
        else:
            chunks: list[list[str]] = [[]]
            for line in text.splitlines():
                if line.strip() == "---":
                    chunks.append([])
                else:
                    chunks[-1].append(line)
            replies = [r for r in ("\n".join(c).strip("\n") for c in chunks) if r.strip()]
        if not replies:
            raise LLMConfigError(f"the LLM script {str(file)!r} holds no reply")
        provider = cls(replies, model=model, cycle=cycle)
        provider.source = str(file)
        return provider

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Return the next scripted reply (or raise its scripted error).

        Args:
            messages: The conversation (kept in :attr:`requests`).
            temperature: Ignored.
            max_tokens: Ignored.
            seed: Ignored.
            timeout: Ignored.

        Returns:
            The reply.

        Raises:
            LLMTransientError: For a scripted ``transient``, ``timeout``, ``rate_limit`` or
                ``server`` failure.
            LLMResponseError: For a scripted ``malformed`` reply.
            LLMScriptExhausted: When every reply was used (and ``cycle`` is off).
            LLMError: For a scripted ``error``, or bad messages.
        """
        plain = normalize_messages(messages)
        with self._lock:
            index = self._next
            if index >= len(self._replies) and not self.cycle:
                raise LLMScriptExhausted(self._exhausted())
            self._next += 1
            self.requests.append(plain)
        entry = self._replies[index % len(self._replies)]
        error = entry.get("error")
        if error is not None:
            cls, default_message, status = _SCRIPTED_ERRORS[error]
            message = str(entry.get("message") or default_message)
            if cls is LLMTransientError:
                retry_after = entry.get("retry_after")
                raise LLMTransientError(
                    message,
                    status_code=status,
                    retry_after=None if retry_after is None else float(retry_after),
                )
            raise cls(message)
        text: str = entry["content"]
        prompt_tokens = entry.get("prompt_tokens")
        completion_tokens = entry.get("completion_tokens")
        return Completion(
            text=text,
            model=self.model,
            prompt_tokens=(
                _prompt_tokens_estimate(plain) if prompt_tokens is None else prompt_tokens
            ),
            completion_tokens=(
                estimate_tokens(text) if completion_tokens is None else completion_tokens
            ),
            finish_reason=entry.get("finish_reason", "stop"),
        )


class ReplayProvider:
    """Serves a recorded run's replies again, without calling any model.

    **Scoped records** (made by a run: each names its ``scope``, e.g. ``"g12/improve"``, and
    the ``job`` attempt that made it) are served per scope: only the last job attempt of each
    scope is kept (earlier attempts were discarded by the run: a sandbox failure, a budget
    refusal, a crash), and every job that asks with that scope (see :meth:`complete`'s
    ``job``) gets its own cursor over them: the n-th request with key K in the job gets the
    n-th recorded outcome for K in the scope. So jobs running in parallel, in any order, and a
    job redone after an interrupted replay, all get exactly the replies the recorded job got.
    (The kept attempt is the last one recorded: true for the engine's own retries and redos,
    not where a caller of :meth:`~hyperagents.runs.Run.improve` keeps an earlier result, or
    where two engines raced for the same job.)

    **Unscoped records** (e.g. a bare :class:`~hyperagents.llm.Gateway` with a
    :class:`~hyperagents.llm.JsonlRecorder`) are grouped by request key (see
    :func:`~hyperagents.llm.request_key`) in recorded order and served the same way across all
    callers; only a sequential caller replays them in exactly the recorded order.

    A recorded reply is returned again (same text and token counts); a recorded error is
    raised again as the same class, so a gateway configured like the recorded one retries the
    same way and the replay takes the same path. Cache hits are recorded replies too, so a
    replay works with or without a response cache. Thread-safe.

    Args:
        calls: The records, or the path of a JSON-lines file a
            :class:`~hyperagents.llm.JsonlRecorder` wrote.
        name: The provider name to report (and to compute keys with); defaults to the first
            record's.
        model: The model name likewise.

    Raises:
        LLMError: If the record file cannot be read or is malformed.
    """

    def __init__(
        self,
        calls: Sequence[LLMCall] | str | os.PathLike[str],
        *,
        name: str | None = None,
        model: str | None = None,
    ) -> None:
        records = read_calls(calls) if isinstance(calls, str | os.PathLike) else list(calls)
        first = records[0] if records else None
        self.name = name or (first.provider if first else "replay")
        self.model = model or (first.model if first else "replay")
        self._outcomes: dict[str, collections.deque[LLMCall]] = collections.defaultdict(
            collections.deque
        )
        last_job: dict[str, str] = {}
        for record in records:
            if record.scope:
                last_job[record.scope] = record.job
        #: scope → request key → the kept attempt's outcomes, in recorded order.
        self._scoped: dict[str, dict[str, list[LLMCall]]] = {}
        for record in records:
            if record.error_type is None and record.reply is None:
                continue  # nothing to serve
            if record.scope:
                if record.job == last_job[record.scope]:
                    by_key = self._scoped.setdefault(record.scope, {})
                    by_key.setdefault(record.key, []).append(record)
            else:
                self._outcomes[record.key].append(record)
        #: (scope, job) → request key → outcomes already served to that job.
        self._cursors: dict[tuple[str, str], dict[str, int]] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, "
            f"scopes={len(self._scoped)}, unscoped_left={self.remaining()})"
        )

    def remaining(self) -> int:
        """How many unscoped recorded outcomes have not been served yet.

        Returns:
            The count (scoped outcomes are served again to every job of their scope).
        """
        with self._lock:
            return sum(len(queue) for queue in self._outcomes.values())

    def scopes(self) -> frozenset[str]:
        """The scopes the record holds outcomes for.

        Returns:
            The scope names.
        """
        return frozenset(self._scoped)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        scope: str = "",
        job: str = "",
    ) -> Completion:
        """Serve the next recorded outcome of this request.

        Args:
            messages: The conversation.
            temperature: Part of the request's key.
            max_tokens: Part of the request's key.
            seed: Part of the request's key.
            timeout: Ignored.
            scope: Where the request comes from (see :class:`~hyperagents.llm.LLMCall`); a
                scope the record holds is answered from that scope only.
            job: The asking job attempt; each gets its own cursor over its scope.

        Returns:
            The recorded reply.

        Raises:
            LLMReplayError: If the record holds no (further) outcome for this request.
            LLMError: A recorded error, raised again as its recorded class (e.g.
                :class:`LLMTransientError`).
        """
        del timeout
        plain = normalize_messages(messages)
        key = request_key(
            self.name, self.model, plain, temperature=temperature, max_tokens=max_tokens, seed=seed
        )
        record: LLMCall | None = None
        with self._lock:
            self.calls += 1
            by_key = self._scoped.get(scope) if scope else None
            if by_key is not None:
                cursor = self._cursors.setdefault((scope, job), {})
                served = cursor.get(key, 0)
                outcomes = by_key.get(key, [])
                if served < len(outcomes):
                    record = outcomes[served]
                    cursor[key] = served + 1
            else:
                queue = self._outcomes.get(key)
                record = queue.popleft() if queue else None
        if record is None:
            preview = _short(plain[-1]["content"])[:80]
            where = f" in scope {scope!r}" if scope else ""
            raise LLMReplayError(
                f"replay: no recorded reply for this request{where} (key {key[:12]}…, "
                f"last message {preview!r}); the run diverged from the record"
            )
        if record.error_type is not None:
            cls = ERROR_TYPES.get(record.error_type, LLMError)
            message = f"replayed: {record.error or record.error_type}"
            if cls is LLMTransientError:
                raise LLMTransientError(message)
            if cls is LLMBudgetExceeded:  # never recorded by the gateway; keep the family
                raise LLMError(message)
            raise cls(message)
        assert record.reply is not None
        return Completion(
            text=record.reply,
            model=record.model,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            finish_reason=record.finish_reason,
        )
