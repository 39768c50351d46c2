"""The service commands: ``serve`` (a run's champion answering requests over HTTP) and
``feedback`` (a label or a score attached to a served request)."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.markup import escape

from hyperagents._untrusted import printable
from hyperagents.cli._shared import (
    HostOpt,
    StorageOpt,
    console,
    err_console,
    errors,
    existing_storage,
    whoami,
)

__all__ = ["feedback", "serve"]


def serve(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="The run whose champion serves.")],
    storage: StorageOpt = None,
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8100,
    token: Annotated[
        str | None,
        typer.Option(
            help="Required by every request when given (default: $HYPERAGENTS_SERVICE_TOKEN).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=256, help="Requests answered at once (warm sandboxes).")
    ] = 2,
    name: Annotated[
        str | None,
        typer.Option(help="The service's name (default: the run's); serving again resumes it."),
    ] = None,
    llm: Annotated[
        str | None,
        typer.Option(
            help="The model agents may call (default: the run's own, if it has one).",
            show_default=False,
        ),
    ] = None,
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Give agents no model, even if the run has one.")
    ] = False,
) -> None:
    """Answer task requests over HTTP with a run's champion, in warm sandboxes; every
    request, answer, latency and cost is recorded in the storage."""
    from hyperagents.service import (
        RUN_MODEL,
        SERVICE_TOKEN_ENV_VAR,
        check_service_binding,
        service_for_run,
    )
    from hyperagents.service import serve as serve_http

    with errors():
        if llm is not None and no_llm:
            raise typer.BadParameter("give --llm or --no-llm, not both")
        model = None if no_llm else (llm or RUN_MODEL)
        secret = token or os.environ.get(SERVICE_TOKEN_ENV_VAR) or None
        check_service_binding(host, secret)
        store = existing_storage(storage)
        try:
            service = service_for_run(store, run_name, name=name)
            shown = f"[{host}]" if ":" in host else host
            err_console.print(
                f"service {escape(printable(service.name))} (variant {service.champion_id}) at "
                f"[bold]http://{shown}:{port}/api/service/answer[/] with {workers} workers",
                highlight=False,
            )
            if secret is not None:
                err_console.print("every request needs the header: Authorization: Bearer …")
            serve_http(
                store,
                service.id,
                host=host,
                port=port,
                token=secret,
                workers=workers,
                model=model,
            )
        finally:
            store.close()


def feedback(
    request_id: Annotated[
        int, typer.Argument(metavar="REQUEST_ID", min=1, help="The served request's id.")
    ],
    label: Annotated[
        str | None,
        typer.Option(help="The right answer: JSON, else the text.", show_default=False),
    ] = None,
    score: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="How good the answer was, in [0, 1].", show_default=False
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Who gives it (default: your user name).", show_default=False)
    ] = None,
    storage: StorageOpt = None,
) -> None:
    """Attach a label and/or a score to a request a service answered."""
    from hyperagents.service import attach_feedback, parse_label

    with errors():
        if label is None and score is None:
            raise typer.BadParameter("give --label, --score, or both")
        store = existing_storage(storage)
        try:
            record = attach_feedback(
                store,
                request_id,
                label=None if label is None else parse_label(label),
                score=score,
                by=by or f"the command line ({whoami()})",
            )
        finally:
            store.close()
        shown = json.dumps(record.label)[:200] if record.label is not None else "-"
        console.print(
            f"request {record.id}: label {escape(printable(shown))}, score "
            f"{'-' if record.feedback is None else record.feedback}",
            highlight=False,
        )
