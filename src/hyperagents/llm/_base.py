"""The provider protocol and the value objects of the LLM gateway.

A *provider* turns a list of chat messages into one :class:`Completion`; everything else
(retries, accounting, budgets, caching, recording, replay) belongs to the gateway in
:mod:`hyperagents.llm._gateway`, so providers stay small.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from hyperagents.exceptions import (
    LLMBudgetExceeded,
    LLMConfigError,
    LLMError,
    LLMReplayError,
    LLMRequestRejected,
    LLMResponseError,
    LLMScriptExhausted,
    LLMTransientError,
)

__all__ = [
    "Completion",
    "LLMCall",
    "LLMProvider",
    "LLMRequestRejected",
    "LLMScriptExhausted",
    "Message",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "normalize_messages",
    "read_calls",
    "redact_secrets",
    "request_key",
    "shorten",
]

Message = Mapping[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""


#: Error classes a recorded call may name; replay raises the same class again.
ERROR_TYPES: Mapping[str, type[LLMError]] = {
    cls.__name__: cls
    for cls in (
        LLMError,
        LLMTransientError,
        LLMResponseError,
        LLMBudgetExceeded,
        LLMReplayError,
        LLMConfigError,
        LLMRequestRejected,
        LLMScriptExhausted,
    )
}

#: The longest text an error message quotes (see :func:`shorten`).
_MAX_ERROR_TEXT = 500

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bsk-[A-Za-z0-9_\-*]{6,}"), "sk-***"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 ***"),
    (
        re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]{4,}"),
        r"\1***",
    ),
)


def redact_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove API keys from a text meant for a log, an exception message or a record.

    Args:
        text: The text to clean.
        secrets: Literal secrets to remove (e.g. the key a provider was given); secrets
            shorter than 4 characters are ignored.

    Returns:
        The text with each secret and anything shaped like an API key (``sk-…``,
        ``Bearer …``, ``api_key=…``) replaced by ``***``.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def shorten(text: str) -> str:
    """A text on one line and at most 500 characters, fit for an error message.

    Args:
        text: The text (runs of whitespace become one space).

    Returns:
        The text, cut with ``…`` where it was longer.
    """
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


def estimate_tokens(text: str) -> int:
    """A rough token count (``ceil(characters / 4)``) for replies that report no usage.

    Args:
        text: The text.

    Returns:
        The estimated number of tokens.
    """
    return math.ceil(len(text) / 4)


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """A rough token count of a prompt (its messages' text together) that reports no usage.

    Args:
        messages: The messages.

    Returns:
        The estimated number of tokens (see :func:`estimate_tokens`).
    """
    return estimate_tokens("".join(message["content"] for message in messages))


def normalize_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Check chat messages and return plain-dict copies of them.

    Args:
        messages: The messages; each needs string ``role`` and ``content`` values, and may carry
            further string fields (e.g. ``name``).

    Returns:
        A list of new ``dict`` objects, safe to store and to serialise as JSON.

    Raises:
        LLMError: If there are no messages or a message is not a mapping of strings with a
            ``role`` and a ``content``.
    """
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise LLMError("messages must be a sequence of {'role': ..., 'content': ...} mappings")
    if not messages:
        raise LLMError("messages must not be empty")
    result: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise LLMError(f"message {index} is a {type(message).__name__}, not a mapping")
        copy = dict(message)
        for name in ("role", "content"):
            if not isinstance(copy.get(name), str):
                raise LLMError(f"message {index} needs a string {name!r}")
        for name, value in copy.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise LLMError(f"message {index}: field {name!r} must be a string")
        result.append(copy)
    return result


def request_key(
    provider: str,
    model: str,
    messages: Sequence[Message],
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> str:
    """The content address of a request: what the response cache and replay look up.

    Args:
        provider: The provider's name.
        model: The model name.
        messages: The chat messages.
        temperature: The sampling temperature, if given.
        max_tokens: The per-call generation limit, if given.
        seed: The sampling seed, if given.

    Returns:
        The hex SHA-256 of the canonical JSON of all arguments (sorted keys, no whitespace).
    """
    payload = {
        "provider": provider,
        "model": model,
        "messages": [dict(message) for message in messages],
        "temperature": temperature,
        "max_tokens": max_tokens,
        "seed": seed,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Completion:
    """One reply of a language model.

    Attributes:
        text: The reply's text.
        model: The model that answered (as the provider reports it).
        prompt_tokens: Input tokens (reported by the provider, else estimated).
        completion_tokens: Output tokens (reported by the provider, else estimated).
        finish_reason: Why generation stopped (``"stop"``, ``"length"``…), if known.
        cached: Whether the gateway served it from its response cache (then it cost nothing).
        latency: Seconds the call took, set by the gateway.
        cost: US dollars the call cost, set by the gateway from its price table.
    """

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None
    cached: bool = False
    latency: float = 0.0
    cost: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@runtime_checkable
class LLMProvider(Protocol):
    """A language model behind one method.

    Implementations make exactly one request per call (no retries: those belong to the
    gateway) and either return a complete :class:`Completion` or raise; they never return a
    partial or empty reply.

    Attributes:
        name: A short, stable name of the provider kind (part of the cache key).
        model: The model requested.
    """

    name: str
    model: str

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Answer chat messages.

        Args:
            messages: The conversation, oldest first.
            temperature: Sampling temperature; ``None`` leaves the provider's default.
            max_tokens: Most tokens to generate; ``None`` leaves the provider's default.
            seed: Sampling seed, where the provider supports one.
            timeout: Seconds to wait for this call; ``None`` uses the provider's default.

        Returns:
            The reply.

        Raises:
            LLMTransientError: On a timeout, a connection error, HTTP 429 or 5xx.
            LLMResponseError: If the reply is malformed or empty.
            LLMError: On any other failure (authentication, a rejected request…).
        """
        ...


@dataclass(frozen=True)
class LLMCall:
    """The record of one attempt to get a completion (success, error or cache hit).

    JSON-serialisable through :meth:`to_dict` / :meth:`from_dict`; never holds an API key.

    Attributes:
        key: The request's content address (:func:`request_key`).
        provider: The provider's name.
        model: The model requested.
        messages: The chat messages sent.
        params: The sampling parameters: ``temperature``, ``max_tokens`` and ``seed``.
        reply: The reply's text, or ``None`` when the attempt failed.
        error: The error message (secrets removed), or ``None`` on success.
        error_type: The error's class name (e.g. ``"LLMTransientError"``), or ``None``.
        finish_reason: Why generation stopped, if known.
        prompt_tokens: Input tokens of the reply (0 on error).
        completion_tokens: Output tokens of the reply (0 on error).
        cost: US dollars charged for this attempt (0 for errors and cache hits).
        cost_known: Whether the model had a price (unknown models cost 0).
        latency: Seconds the attempt took.
        cached: Whether it was served from the response cache.
        attempt: 1 for the first try of a request, 2 for its first retry…; 0 for a cache hit.
        purpose: What the caller said the call was for (e.g. ``"propose"``).
        variant_id: The variant the call was made for, if any.
        scope: Where in a run the call was made, stable across replays (e.g. ``"g12/improve"``:
            the meta agent of generation 12); empty outside runs. Replay serves a scope's calls
            to the same scope, so parallel jobs get their own replies whatever their timing.
        job: Identifies the job attempt that made the call (a job retried after a sandbox
            failure, or redone after a crash, gets a new one); replay serves the last attempt
            of each scope, the one whose result the run kept.
        created_at: When the attempt finished (UTC).
    """

    key: str
    provider: str
    model: str
    messages: tuple[dict[str, str], ...]
    params: dict[str, Any]
    reply: str | None
    error: str | None = None
    error_type: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = False
    latency: float = 0.0
    cached: bool = False
    attempt: int = 1
    purpose: str = ""
    variant_id: int | None = None
    scope: str = ""
    job: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        """Whether the attempt produced a reply."""
        return self.error_type is None and self.reply is not None

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-compatible ``dict`` (``created_at`` as ISO 8601 text).

        Returns:
            A new ``dict``.
        """
        data = dataclasses.asdict(self)
        data["messages"] = [dict(message) for message in self.messages]
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLMCall:
        """Rebuild a record from :meth:`to_dict` output.

        Args:
            data: The mapping.

        Returns:
            The record.

        Raises:
            LLMError: If a required field is missing or has the wrong type.
        """
        try:
            key = _typed(data, "key", str)
            messages = tuple(normalize_messages(data["messages"]))
            params = data.get("params") or {}
            if not isinstance(params, Mapping):
                raise LLMError("'params' must be a mapping")
            created = data.get("created_at")
            created_at = (
                datetime.fromisoformat(created) if isinstance(created, str) else datetime.now(UTC)
            )
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=UTC)
            variant_id = data.get("variant_id")
            if variant_id is not None and not isinstance(variant_id, int):
                raise LLMError("'variant_id' must be an integer or null")
            return cls(
                key=key,
                provider=_typed(data, "provider", str),
                model=_typed(data, "model", str),
                messages=messages,
                params=dict(params),
                reply=_optional(data, "reply", str),
                error=_optional(data, "error", str),
                error_type=_optional(data, "error_type", str),
                finish_reason=_optional(data, "finish_reason", str),
                prompt_tokens=int(data.get("prompt_tokens", 0)),
                completion_tokens=int(data.get("completion_tokens", 0)),
                cost=float(data.get("cost", 0.0)),
                cost_known=bool(data.get("cost_known", False)),
                latency=float(data.get("latency", 0.0)),
                cached=bool(data.get("cached", False)),
                attempt=int(data.get("attempt", 1)),
                purpose=str(data.get("purpose", "")),
                variant_id=variant_id,
                scope=str(data.get("scope") or ""),
                job=str(data.get("job") or ""),
                created_at=created_at,
            )
        except KeyError as exc:
            raise LLMError(f"LLM call record lacks the field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise LLMError(f"invalid LLM call record: {exc}") from None


def _typed(data: Mapping[str, Any], name: str, kind: type[str]) -> str:
    value = data[name]
    if not isinstance(value, kind):
        raise LLMError(f"'{name}' must be a {kind.__name__}")
    return value


def _optional(data: Mapping[str, Any], name: str, kind: type[str]) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, kind):
        raise LLMError(f"'{name}' must be a {kind.__name__} or null")
    return value


def read_calls(path: str | os.PathLike[str]) -> list[LLMCall]:
    """Read the records a :class:`~hyperagents.llm.JsonlRecorder` wrote.

    Args:
        path: The JSON-lines file.

    Returns:
        The records in file order (blank lines are skipped).

    Raises:
        LLMError: If the file cannot be read or a line is not a valid record (the message
            names the line).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
    except OSError as exc:
        raise LLMError(f"cannot read LLM call records from {os.fspath(path)!r}: {exc}") from None
    calls: list[LLMCall] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LLMError(f"{os.fspath(path)}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(data, Mapping):
            raise LLMError(f"{os.fspath(path)}:{number}: not a JSON object")
        try:
            calls.append(LLMCall.from_dict(data))
        except LLMError as exc:
            raise LLMError(f"{os.fspath(path)}:{number}: {exc}") from None
    return calls
