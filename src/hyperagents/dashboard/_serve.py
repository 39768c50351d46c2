"""Serving the dashboard with uvicorn, after checking that the binding is safe."""

from __future__ import annotations

import logging
from pathlib import Path

from hyperagents.dashboard._security import MIN_TOKEN_LENGTH, is_loopback
from hyperagents.exceptions import ConfigError

__all__ = ["TOKEN_ENV_VAR", "check_binding", "serve"]

#: Environment variable holding the dashboard's token.
TOKEN_ENV_VAR = "HYPERAGENTS_DASHBOARD_TOKEN"


def check_binding(
    host: str, token: str | None, *, what: str = "the dashboard", env_var: str = TOKEN_ENV_VAR
) -> None:
    """Refuse an unsafe binding: a non-loopback address without a (long enough) token.

    Args:
        host: The address to bind.
        token: The token every request must carry (None: none).
        what: What is served, in the messages.
        env_var: The environment variable that may hold the token, in the messages.

    Raises:
        ConfigError: The address is reachable from other machines and no token protects it,
            or the token is too short to be safe.
    """
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{what} token must have at least {MIN_TOKEN_LENGTH} characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    if not is_loopback(host) and token is None:
        raise ConfigError(
            f"binding {what} to {host} makes it reachable from other machines: give a "
            f"token with --token or ${env_var} "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )


def serve(
    storage_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    log_dir: Path | None = None,
) -> None:
    """Serve the dashboard over ``storage_url`` until interrupted.

    Raises:
        ConfigError: An unsafe binding (see :func:`check_binding`).
    """
    import uvicorn

    from hyperagents.dashboard._app import create_app
    from hyperagents.storages import get_storage

    check_binding(host, token)
    storage = get_storage(storage_url)
    app = create_app(
        storage,
        storage_url=storage_url,
        token=token,
        loopback_only=is_loopback(host),
        log_dir=log_dir,
    )
    logging.getLogger("hyperagents.dashboard").setLevel(logging.INFO)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
    finally:
        storage.close()
