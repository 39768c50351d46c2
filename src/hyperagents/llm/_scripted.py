"""Deterministic replies from a script, for tests and offline demos.

A script is a list of replies, given in Python or read from a file; a reply may stand for a
failure (a timeout, a rate limit, a malformed reply…) to exercise the gateway's retries.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperagents.exceptions import LLMConfigError, LLMError, LLMResponseError, LLMTransientError
from hyperagents.llm._base import (
    Completion,
    LLMScriptExhausted,
    Message,
    estimate_prompt_tokens,
    estimate_tokens,
    normalize_messages,
)

__all__ = ["ScriptedProvider"]


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
        replies = (
            _json_replies(file, text) if file.suffix.lower() == ".json" else _text_replies(text)
        )
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
        entry = self._take(plain)
        if entry.get("error") is not None:
            raise _scripted_error(entry)
        text: str = entry["content"]
        prompt_tokens = entry.get("prompt_tokens")
        completion_tokens = entry.get("completion_tokens")
        return Completion(
            text=text,
            model=self.model,
            prompt_tokens=(
                estimate_prompt_tokens(plain) if prompt_tokens is None else prompt_tokens
            ),
            completion_tokens=(
                estimate_tokens(text) if completion_tokens is None else completion_tokens
            ),
            finish_reason=entry.get("finish_reason", "stop"),
        )

    def _take(self, plain: list[dict[str, str]]) -> dict[str, Any]:
        """The next reply (the request kept in :attr:`requests`).

        Raises:
            LLMScriptExhausted: When every reply was used (and ``cycle`` is off); no reply is
                consumed.
        """
        with self._lock:
            index = self._next
            if index >= len(self._replies) and not self.cycle:
                raise LLMScriptExhausted(self._exhausted())
            self._next += 1
            self.requests.append(plain)
        return self._replies[index % len(self._replies)]


def _scripted_error(entry: Mapping[str, Any]) -> LLMError:
    """The error a scripted failure stands for (its ``message``, or the kind's default)."""
    cls, default_message, status = _SCRIPTED_ERRORS[entry["error"]]
    message = str(entry.get("message") or default_message)
    if cls is LLMTransientError:
        retry_after = entry.get("retry_after")
        return LLMTransientError(
            message,
            status_code=status,
            retry_after=None if retry_after is None else float(retry_after),
        )
    return cls(message)


def _json_replies(file: Path, text: str) -> list[Any]:
    """The replies of a ``.json`` script: a list, or ``{"replies": [...]}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LLMConfigError(f"the LLM script {str(file)!r} is not valid JSON: {exc}") from None
    if isinstance(data, Mapping):
        data = data.get("replies")
    if not isinstance(data, list):
        raise LLMConfigError(
            f"the LLM script {str(file)!r} must hold a list or {{'replies': [...]}}"
        )
    return data


def _text_replies(text: str) -> list[str]:
    """The replies of a text script: separated by lines holding only ``---``, blank lines
    around each dropped, empty ones left out."""
    chunks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() == "---":
            chunks.append([])
        else:
            chunks[-1].append(line)
    return [r for r in ("\n".join(c).strip("\n") for c in chunks) if r.strip()]
