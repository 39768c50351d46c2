"""What the providers built on an official SDK (``openai``, ``anthropic``) share.

Both SDKs raise exceptions of the same shape; :func:`map_sdk_error` turns one into the LLM
error class the gateway acts on (retry it, or not). :func:`display_url` shows a base URL
without its credentials, and :func:`malformed` is the error for a response the SDK could not
decode.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hyperagents.exceptions import LLMError, LLMResponseError, LLMTransientError
from hyperagents.llm._base import LLMRequestRejected, redact_secrets, shorten

__all__ = ["display_url", "malformed", "map_sdk_error"]

#: HTTP statuses worth retrying (the same set the official clients retry).
_TRANSIENT_STATUSES = frozenset({408, 409, 429})
#: HTTP statuses that refuse the request itself (its size, a parameter), not the client.
_REJECTED_STATUSES = frozenset({400, 413, 422})


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


def _map_status_error(exc: Exception, message: str) -> LLMError:
    """The error for an HTTP status the server answered with (``message`` names it)."""
    status = int(getattr(exc, "status_code", 0) or 0)
    if status in _TRANSIENT_STATUSES or status >= 500:
        response = getattr(exc, "response", None)
        retry_after = _retry_after(getattr(response, "headers", None))
        return LLMTransientError(message, status_code=status, retry_after=retry_after)
    if status in _REJECTED_STATUSES:
        return LLMRequestRejected(message)
    return LLMError(message)


def map_sdk_error(
    sdk: Any, exc: Exception, *, where: str, secrets: Sequence[str], timeout: float | None
) -> LLMError | None:
    """Translate an ``openai`` or ``anthropic`` SDK exception (both share the shape).

    Args:
        sdk: The SDK module (its exception classes).
        exc: The exception the SDK raised.
        where: Names the provider and model at the start of the message.
        secrets: Literal secrets to keep out of the message.
        timeout: The call's timeout, said with a timeout error.

    Returns:
        The LLM error, or ``None`` when ``exc`` is not an exception of that SDK.
    """

    def clean(text: str) -> str:
        return shorten(redact_secrets(text, secrets))

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
        return _map_status_error(
            exc, f"{where}: HTTP {status}: {clean(str(getattr(exc, 'message', exc)))}"
        )
    if isinstance(exc, sdk.APIError):
        return LLMError(f"{where}: {type(exc).__name__}: {clean(str(exc))}")
    return None


def malformed(where: str, exc: Exception) -> LLMResponseError:
    """The error for a response the SDK could not decode (``exc`` says why).

    Args:
        where: Names the provider and model at the start of the message.
        exc: The decoding error.

    Returns:
        The error to raise.
    """
    return LLMResponseError(f"{where}: malformed response: {shorten(redact_secrets(str(exc)))}")
