"""What a caller over the network (the dashboard's browser or a script with its token) may
start.

The engine it starts runs with the operator's environment (API keys), network and files, so a
remote caller may name only what the operator installed or set up: a registered task (a task
given as a file path would import code from wherever the caller pointed), the ``auto`` or
``bwrap`` sandbox, and a model that is not a file on the operator's host. Without a token
(where any local user can ask) a model server only when the operator listed it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperagents.exceptions import ConfigError
from hyperagents.runs._requests import StartRequest

__all__ = ["RemoteCaller", "check_remote_start"]


@dataclass(frozen=True)
class RemoteCaller:
    """Who asks over the network.

    Attributes:
        token_protected: The service it reached requires a token, so the request carried it
            (else any local user could have sent it).
    """

    token_protected: bool = False


def check_remote_start(request: StartRequest, caller: RemoteCaller) -> None:
    """Refuse a new run that a remote caller may not start.

    Raises:
        ConfigError: An unregistered task, a sandbox other than auto or bwrap, a config table,
            task options, a constitution or a model read from the host's files, or a model
            server the operator did not set up asked for without a token.
    """
    from hyperagents.tasks import list_tasks

    known = {info.name for info in list_tasks()}
    if request.task not in known:
        raise ConfigError(
            f"unknown task {request.task!r}; choose one of: {', '.join(sorted(known))}"
        )
    if request.sandbox not in (None, "auto", "bwrap") or request.ray_address is not None:
        raise ConfigError("runs started from the dashboard use the sandbox auto or bwrap")
    if request.config or request.constitution is not None or request.task_options:
        # (a task option is an argument of trusted code: a path it reads, a size it allocates)
        raise ConfigError(
            "runs started from the dashboard take no config table, task options or constitution"
        )
    if request.llm is not None:
        _check_remote_llm(request.llm, token_protected=caller.token_protected)


def _check_remote_llm(text: str, *, token_protected: bool) -> None:
    """Models a remote caller may ask for: a hosted or HTTP server model, or the bundled local
    one; never a file (``scripted:FILE`` or ``local:FILE`` would read the host's files).
    Without a token, a server URL only when the operator listed it in
    ``$HYPERAGENTS_LLM_API_KEY_URLS``: another local user must not point the operator's engine
    (its keys, its network, the task's data in the prompts) at a server of theirs.

    Raises:
        ConfigError: A file-backed or malformed spec, or a server the operator did not set up
            asked for without a token.
    """
    from hyperagents.llm import COMPATIBLE_KEY_ENV, parse_provider_spec

    parsed = parse_provider_spec(text)
    if parsed.kind == "scripted" or (parsed.kind == "local" and parsed.model is not None):
        raise ConfigError(
            "runs started from the dashboard cannot read model or script files: use a "
            "server (openai:MODEL, http://HOST/v1#MODEL, anthropic:MODEL) or the bundled local"
        )
    if not token_protected and not parsed.operator_configured():
        raise ConfigError(
            "this dashboard has no token, so runs started here may use only a model server the "
            f"operator set up (listed in ${COMPATIBLE_KEY_ENV}_URLS, or openai:/anthropic:): "
            "start the dashboard with --token to name another server"
        )
