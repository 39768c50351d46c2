"""Checking a model before a run starts: reachable, key accepted, model known.

:func:`probe_llm` builds the provider a spec names (which checks the spec, the key variables,
optional extras and files) and then asks the server one question that costs no tokens:

* OpenAI and OpenAI-compatible servers: ``GET /models``. No answer (connection refused, a host
  that does not resolve, a timeout) is an error; so is a refused key (HTTP 401). A server
  without that endpoint (404, 405, any other status, a body that is not a list) counts as
  reachable, and so does a 403: a key may be good for completions and not for the listing
  (OpenAI's restricted keys), and a run must not be refused for that. When it lists models and
  the spec's model is not among them, that is an error naming a few it lists (``NAME`` matches
  ``NAME:latest``, as Ollama reads it; ``NAME:SUFFIX`` matches ``NAME``, as OpenRouter's
  ``:nitro`` does; a listed ``prefix/*`` matches what it covers, as proxies list routes).
* Anthropic: ``GET /v1/models/MODEL`` (when the installed SDK has it), which also knows aliases.
* ``local`` and ``scripted:FILE``: building the provider is the check (the model file exists and
  llama-cpp-python imports, without loading the model; the script parses).

Keys go where they always go (see :mod:`hyperagents.llm._keys`): the probe uses the provider's
own client.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from hyperagents._untrusted import printable
from hyperagents.exceptions import LLMConfigError
from hyperagents.llm._anthropic import AnthropicProvider
from hyperagents.llm._base import LLMProvider
from hyperagents.llm._keys import urls_variable
from hyperagents.llm._openai import OpenAICompatibleProvider
from hyperagents.llm._sdk import display_url
from hyperagents.llm._spec import parse_llm_spec

__all__ = ["probe_llm", "probe_provider"]

#: How many listed models an error shows.
_SHOWN_MODELS = 8
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def probe_llm(spec: str, *, timeout: float = 10.0) -> None:
    """Check that the model a spec names can be used, without spending a token.

    Args:
        spec: The LLM spec (``openai:M``, ``http://HOST/v1#M``, ``anthropic:M``, ``local``,
            ``scripted:FILE``).
        timeout: Seconds to wait for the server.

    Raises:
        LLMConfigError: One line saying what is wrong and what to do: an invalid spec, an unset
            key variable, a missing extra or file, a server that cannot be reached, a refused
            key, or a model the server does not list.
    """
    probe_provider(parse_llm_spec(spec, timeout=timeout), timeout=timeout)


def probe_provider(provider: LLMProvider, *, timeout: float = 10.0) -> None:
    """Ask a built provider's server whether it can be used (see :func:`probe_llm`).

    Providers with no server (local, scripted, replay) pass: building them was the check.

    Args:
        provider: The provider.
        timeout: Seconds to wait for the server.

    Raises:
        LLMConfigError: The server cannot be reached, refuses the key or does not know the model.
    """
    if isinstance(provider, OpenAICompatibleProvider):
        _probe_openai(provider, timeout)
    elif isinstance(provider, AnthropicProvider):
        _probe_anthropic(provider, timeout)


def _probe_openai(provider: OpenAICompatibleProvider, timeout: float) -> None:
    import openai

    url = display_url(provider.base_url or "https://api.openai.com/v1")
    where = "OpenAI" if provider.base_url is None else "the model server"
    listing = _ask(
        openai,
        lambda: provider.client.models.list(timeout=timeout),
        where=f"{where} at {url}",
        url=url,
        timeout=timeout,
        key_problem=lambda status: _openai_key_problem(provider, where, url, status),
    )
    if listing is None:
        return
    ids = [m for m in (getattr(item, "id", None) for item in _data(listing)) if isinstance(m, str)]
    if ids and not _listed(provider.model, ids):
        how = "openai:NAME" if provider.base_url is None else "one of them after '#'"
        raise LLMConfigError(
            f"{where} at {url} does not list the model {provider.model!r}; it lists "
            f"{_some(ids)} (name {how})"
        )


def _probe_anthropic(provider: AnthropicProvider, timeout: float) -> None:
    models = getattr(provider.client, "models", None)
    retrieve = getattr(models, "retrieve", None)
    if not callable(retrieve):
        return  # an SDK without the models API: the spec and key were checked
    url = "https://api.anthropic.com"
    origin = f" in {provider.key_origin}" if provider.key_origin else ""
    missing = _ask(
        provider.sdk,
        lambda: retrieve(provider.model, timeout=timeout),
        where=f"Anthropic at {url}",
        url=url,
        timeout=timeout,
        key_problem=lambda status: f"Anthropic refused the API key{origin} (HTTP {status})",
        not_found=True,
    )
    if missing is _NOT_FOUND:
        raise LLMConfigError(
            f"Anthropic does not know the model {provider.model!r} (see "
            "https://docs.anthropic.com/en/docs/about-claude/models for the names)"
        )


_NOT_FOUND = object()


def _ask(
    sdk: Any,
    request: Callable[[], Any],
    *,
    where: str,
    url: str,
    timeout: float,
    key_problem: Callable[[int], str],
    not_found: bool = False,
) -> Any:
    """Make one request; return its result, or None where the server answered without one.

    With ``not_found``, a 404 returns the ``_NOT_FOUND`` marker instead of None.

    Raises:
        LLMConfigError: No answer, or the key was refused.
    """
    try:
        return request()
    except sdk.APITimeoutError:
        raise LLMConfigError(
            f"cannot reach {where}: no answer within {timeout:g} s (is it running and answering?)"
        ) from None
    except sdk.APIConnectionError as exc:
        raise LLMConfigError(f"cannot reach {where}: {_connection_problem(exc, url)}") from None
    except sdk.APIStatusError as exc:
        status = int(getattr(exc, "status_code", 0) or 0)
        if status == 401:
            raise LLMConfigError(key_problem(status)) from None
        return _NOT_FOUND if not_found and status == 404 else None
    except (sdk.APIError, ValueError, TypeError):
        return None  # it answered, with something else than a listing: it is there


def _connection_problem(exc: BaseException, url: str) -> str:
    """What went wrong connecting, from the exception chain, with what to check."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    innermost = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            hint = "is it running?" if _is_local(url) else "is it running, and is the port right?"
            return f"connection refused ({hint})"
        if isinstance(cause, socket.gaierror):
            host = urlsplit(url).hostname or url
            return f"the host {host!r} is not known (is the name right?)"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed: {printable(cause)[:200]}"
        if isinstance(cause, TimeoutError):
            return "the connection timed out (is it running, and is the network up?)"
        innermost = cause
        cause = cause.__cause__ or cause.__context__
    text = printable(str(innermost)).strip() or type(innermost).__name__
    return f"{text[:200]} (is it running, and is the URL right?)"


def _is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in _LOCAL_HOSTS


def _openai_key_problem(
    provider: OpenAICompatibleProvider, where: str, url: str, status: int
) -> str:
    """The message for a key the server refused (HTTP 401)."""
    env = provider.api_key_env
    listed = urls_variable(env)
    if provider.key_origin is not None:
        return f"{where} at {url} refused the API key in {provider.key_origin} (HTTP {status})"
    if os.environ.get(env):
        return (
            f"{where} at {url} asks for an API key (HTTP {status}); ${env} is sent only to the "
            f"servers listed in ${listed}: add {url} there if the key is for it"
        )
    return (
        f"{where} at {url} asks for an API key (HTTP {status}): set ${env} and list the server "
        f"in ${listed}"
    )


def _data(listing: Any) -> list[Any]:
    data = getattr(listing, "data", None)
    return list(data) if isinstance(data, Sequence) and not isinstance(data, str) else []


def _listed(model: str, ids: Sequence[str]) -> bool:
    """Whether ``model`` is listed: as it is, as ``NAME:latest`` (Ollama's reading of ``NAME``),
    without a ``:SUFFIX`` (OpenRouter's ``:nitro``, ``:floor``…), or by a listed wildcard
    (a proxy's ``openai/*``)."""
    base = model.rpartition(":")[0]
    names = {model, base} if base else {model, f"{model}:latest"}
    return any(name in ids for name in names) or any(
        "*" in pattern and fnmatch.fnmatchcase(model, pattern) for pattern in ids
    )


def _some(ids: Sequence[str]) -> str:
    """A few listed model names, shown safely."""
    names = sorted(set(ids))
    shown = ", ".join(repr(printable(name)[:80]) for name in names[:_SHOWN_MODELS])
    more = len(names) - _SHOWN_MODELS
    return f"{shown} and {more} more" if more > 0 else shown
