"""``hyperagents serve``: a run's champion answering requests over HTTP until interrupted."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from hyperagents.dashboard import check_binding, is_loopback
from hyperagents.service._app import create_service_app
from hyperagents.service._autopilot import Autopilot
from hyperagents.service._drift import declared_features
from hyperagents.service._planning import RUN_LLM
from hyperagents.service._serving import RUN_MODEL, Serving
from hyperagents.service._steering import AutopilotSettings, plan_improver
from hyperagents.storages import BaseStorage

__all__ = ["SERVICE_TOKEN_ENV_VAR", "check_service_binding", "serve"]

#: Environment variable holding the service's token.
SERVICE_TOKEN_ENV_VAR = "HYPERAGENTS_SERVICE_TOKEN"


def check_service_binding(host: str, token: str | None) -> None:
    """Refuse an unsafe binding, by the dashboard's rules (a non-loopback address needs a
    token of at least :data:`~hyperagents.dashboard.MIN_TOKEN_LENGTH` characters).

    Raises:
        ConfigError: The binding is unsafe.
    """
    check_binding(host, token, what="the service", env_var=SERVICE_TOKEN_ENV_VAR)


def serve(
    storage: BaseStorage,
    service_id: int,
    *,
    host: str = "127.0.0.1",
    port: int = 8100,
    token: str | None = None,
    workers: int = 2,
    model: str | None = RUN_MODEL,
    autopilot: AutopilotSettings | None = None,
) -> None:
    """Serve a service until interrupted: warm its sandbox, answer over HTTP, and mark it
    stopped on the way out (requests in progress are answered first).

    Args:
        model: The language model agents may call (see :class:`Serving`).
        autopilot: Watch the champion and improve it in the background with these settings
            (see :class:`~hyperagents.service.Autopilot`; None: serve only).

    Raises:
        ConfigError: An unsafe binding, or the run's sandbox cannot work here.
        LLMConfigError: The model's spec (or the planner's) is invalid.
        ServiceNotFoundError: No such service.
    """
    import uvicorn

    check_service_binding(host, token)
    serving = Serving(storage, service_id, workers=workers, model=model)
    with _sigterm_exits():
        pilot = None
        try:
            serving.start()
            pilot = _start_autopilot(storage, serving, autopilot)
            app = create_service_app(serving, token=token, loopback_only=is_loopback(host))
            logging.getLogger("hyperagents.service").setLevel(logging.INFO)
            uvicorn.run(
                app,
                host=host,
                port=port,
                log_level="warning",
                timeout_graceful_shutdown=30,
                server_header=False,
            )
        finally:
            if pilot is not None:
                pilot.stop()
            serving.close()


class _Pilot:
    """The autopilot's thread beside the HTTP service."""

    def __init__(self, autopilot: Autopilot) -> None:
        self.autopilot = autopilot
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=autopilot.run, args=(self._stop,), name="hyperagents-autopilot", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop stepping (an improvement in progress is left: the next process records it
        as interrupted)."""
        self._stop.set()
        self._thread.join(timeout=30)


def _start_autopilot(
    storage: BaseStorage, serving: Serving, settings: AutopilotSettings | None
) -> _Pilot | None:
    if settings is None:
        return None
    from hyperagents.llm import parse_llm_spec
    from hyperagents.runs import RunService

    if settings.planner_llm not in (None, RUN_LLM):
        parse_llm_spec(settings.planner_llm)  # a bad spec stops here, not at each improvement

    improver = plan_improver(RunService(storage), settings)
    autopilot = Autopilot(
        storage,
        serving.service_id,
        task=serving.task,
        improver=improver,
        settings=settings,
        features=declared_features(serving.task),
    )
    logging.getLogger("hyperagents.service").info("autopilot on: %s", autopilot.state.stage.value)
    return _Pilot(autopilot)


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM ends the process with ``SystemExit(0)`` (uvicorn, having shut down gracefully,
    raises the signal again: the service is then closed and marked stopped, not killed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
