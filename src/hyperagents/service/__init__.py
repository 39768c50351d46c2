"""Services: a run's champion answering live requests (``hyperagents serve``).

:class:`Serving` answers requests in the run's sandbox, kept warm, and records every request,
its answer or error, latency and cost in storage; :func:`create_service_app` puts an HTTP API
in front of it (the dashboard's token and host rules); :func:`serve` runs both until
interrupted. Other components steer a service through storage: its routing
(:meth:`~hyperagents.storages.BaseStorage.set_service_routing`: a candidate in shadow, or under
A/B testing with a share of the traffic, routed by :func:`routed_to_candidate`), its log
(:meth:`~hyperagents.storages.BaseStorage.add_service_event`) and its requests with their
feedback (:meth:`~hyperagents.storages.BaseStorage.list_service_requests`);
:func:`attach_feedback` is how a label or a score is given.
"""

from __future__ import annotations

from hyperagents.service._app import PAGE_LIMIT, create_service_app
from hyperagents.service._records import (
    attach_feedback,
    find_service,
    parse_label,
    request_json,
    service_for_run,
)
from hyperagents.service._serve import SERVICE_TOKEN_ENV_VAR, check_service_binding, serve
from hyperagents.service._serving import (
    MODEL_COOLDOWN,
    RUN_MODEL,
    SHADOW_BACKLOG,
    Admitted,
    Answer,
    Serving,
    routed_to_candidate,
)

__all__ = [
    "MODEL_COOLDOWN",
    "PAGE_LIMIT",
    "RUN_MODEL",
    "SERVICE_TOKEN_ENV_VAR",
    "SHADOW_BACKLOG",
    "Admitted",
    "Answer",
    "Serving",
    "attach_feedback",
    "check_service_binding",
    "create_service_app",
    "find_service",
    "parse_label",
    "request_json",
    "routed_to_candidate",
    "serve",
    "service_for_run",
]
