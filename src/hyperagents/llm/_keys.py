"""Which servers an API key from the environment may be sent to.

A run's model is a spec string stored with the run, and whoever can start a run (a dashboard
without a token is open to every local user) can name any server in it. The engine runs with the
operator's environment, so a key read from there must go only to the server it was set for:

* A provider's own key goes to its own host: ``$OPENAI_API_KEY`` to ``api.openai.com``,
  ``$ANTHROPIC_API_KEY`` to Anthropic.
* For any other base URL, the key in ``$VAR`` is sent only when the URL is listed in
  ``$VAR_URLS`` (e.g. ``HYPERAGENTS_LLM_API_KEY_URLS="https://openrouter.ai/api/v1"``; several
  separated by commas or spaces). A listed URL matches a spec URL with the same scheme, host and
  port whose path is the listed path or below it. Another server gets no key.
* A key that is set while ``$VAR_URLS`` is not is an error that says what to set: the key is
  never sent to a server nobody named for it.

A key given explicitly (``api_key=`` in Python) is the caller's choice and is always used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from hyperagents.exceptions import LLMConfigError

__all__ = ["WELL_KNOWN_URLS", "environment_key", "key_urls", "url_listed", "urls_variable"]

logger = logging.getLogger(__name__)

#: The servers a provider's own key variable belongs to, without any setting.
WELL_KNOWN_URLS: dict[str, tuple[str, ...]] = {
    "OPENAI_API_KEY": ("https://api.openai.com/v1",),
    "ANTHROPIC_API_KEY": ("https://api.anthropic.com",),
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def urls_variable(key_env: str) -> str:
    """The variable listing the base URLs the key in ``key_env`` is for (``KEY_ENV_URLS``)."""
    return f"{key_env}_URLS"


def _origin_and_path(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def key_urls(key_env: str) -> tuple[str, ...] | None:
    """The base URLs listed in ``$KEY_ENV_URLS`` (None: the variable is unset or empty).

    Raises:
        LLMConfigError: A listed URL is not an http(s) URL with a host.
    """
    variable = urls_variable(key_env)
    text = os.environ.get(variable, "")
    listed = tuple(u for u in text.replace(",", " ").split() if u)
    for url in listed:
        try:
            scheme, host, _, _ = _origin_and_path(url)
        except ValueError:
            scheme, host = "", ""
        if scheme not in _DEFAULT_PORTS or not host:
            raise LLMConfigError(f"${variable} must list http(s)://HOST[:PORT]/PATH base URLs")
    return listed or None


def url_listed(url: str, listed: Sequence[str]) -> bool:
    """Whether ``url`` is one of ``listed`` or below one: same scheme, host and port, and a
    path equal to the listed one or under it (``/v1`` covers ``/v1`` and ``/v1/x``, not
    ``/v10``)."""
    try:
        scheme, host, port, path = _origin_and_path(url)
    except ValueError:
        return False
    for allowed in listed:
        a_scheme, a_host, a_port, a_path = _origin_and_path(allowed)
        if (scheme, host, port) == (a_scheme, a_host, a_port) and (
            path == a_path or path.startswith(a_path + "/")
        ):
            return True
    return False


def environment_key(key_env: str, base_url: str | None) -> str | None:
    """The key in ``$key_env`` if it may be sent to ``base_url``, else None.

    Args:
        key_env: The variable holding the key.
        base_url: The server the key would go to; None: the provider's own host.

    Returns:
        The key, or None when it is unset or is for other servers.

    Raises:
        LLMConfigError: The key is set, ``base_url`` is not its provider's own host, and
            ``$KEY_ENV_URLS`` does not say which servers the key is for.
    """
    key = os.environ.get(key_env) or None
    if key is None or base_url is None:
        return key
    if url_listed(base_url, WELL_KNOWN_URLS.get(key_env, ())):
        return key
    listed = key_urls(key_env)
    variable = urls_variable(key_env)
    if listed is None:
        raise LLMConfigError(
            f"${key_env} is set, but ${variable} does not say which server it is for: set "
            f"{variable} to that server's base URL (e.g. https://HOST/v1); the key is sent "
            "only to the servers listed there"
        )
    if url_listed(base_url, listed):
        return key
    logger.info("$%s is not sent to this server: it is not listed in $%s", key_env, variable)
    return None
