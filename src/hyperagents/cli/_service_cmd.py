"""The service commands: ``serve`` (a run's champion answering requests over HTTP, with
``--improve`` its autopilot), ``feedback`` (a label or a score attached to a served request),
``promote`` and ``rollback`` (a person's decision on the candidate), ``autopilot`` (its
state; force or suppress an improvement) and ``wanted`` (the requests a plan asked people to
label)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

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

__all__ = ["autopilot", "feedback", "promote", "rollback", "serve", "wanted"]


_RunArg = Annotated[str, typer.Argument(metavar="RUN", help="The run whose champion serves.")]
_PortOpt = Annotated[int, typer.Option(min=1, max=65535)]
_TokenOpt = Annotated[
    str | None,
    typer.Option(
        help="Required by every request when given (default: $HYPERAGENTS_SERVICE_TOKEN).",
        show_default=False,
    ),
]
_WorkersOpt = Annotated[
    int, typer.Option(min=1, max=256, help="Requests answered at once (warm sandboxes).")
]
_NameOpt = Annotated[
    str | None,
    typer.Option(help="The service's name (default: the run's); serving again resumes it."),
]
_LLMOpt = Annotated[
    str | None,
    typer.Option(
        help="The model agents may call (default: the run's own, if it has one).",
        show_default=False,
    ),
]
_NoLLMOpt = Annotated[
    bool, typer.Option("--no-llm", help="Give agents no model, even if the run has one.")
]
_ImproveOpt = Annotated[
    bool,
    typer.Option(
        "--improve",
        help="Watch the champion's live quality and improve it in the background when it "
        "degrades (shadow, A/B, promote or roll back; see the README's autopilot).",
    ),
]
_AutopilotOpt = Annotated[
    Path | None,
    typer.Option(
        help="The autopilot's settings (a JSON or YAML file; implies --improve).",
        exists=True,
        dir_okay=False,
        show_default=False,
    ),
]
_GoalOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="The live quality to hold (default: alarm on a drop from the level learnt).",
        show_default=False,
    ),
]
_PlannerLLMOpt = Annotated[
    str | None,
    typer.Option(
        help="The planner's and teacher's model: an LLM spec, or 'run' for the run's own "
        "(implies --improve; its calls are recorded with each improvement run).",
        show_default=False,
    ),
]


def serve(
    run_name: _RunArg,
    storage: StorageOpt = None,
    host: HostOpt = "127.0.0.1",
    port: _PortOpt = 8100,
    token: _TokenOpt = None,
    workers: _WorkersOpt = 2,
    name: _NameOpt = None,
    llm: _LLMOpt = None,
    no_llm: _NoLLMOpt = False,
    improve: _ImproveOpt = False,
    autopilot: _AutopilotOpt = None,
    goal: _GoalOpt = None,
    planner_llm: _PlannerLLMOpt = None,
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
        wanted_on = improve or autopilot or planner_llm
        settings = _autopilot_settings(autopilot, goal, planner_llm) if wanted_on else None
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
                autopilot=settings,
            )
        finally:
            store.close()


def _autopilot_settings(path: Path | None, goal: float | None, planner_llm: str | None) -> Any:
    """The autopilot's settings from its file (JSON or YAML), ``--goal`` and
    ``--planner-llm``.

    Raises:
        ConfigError: The file is not a mapping, or a setting is invalid.
    """
    import yaml

    from hyperagents.exceptions import ConfigError
    from hyperagents.service import AutopilotSettings, parse_settings

    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the autopilot settings {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"the autopilot settings {path} must be a mapping")
        data = loaded
    if goal is not None:
        monitor = dict(data.get("monitor") or {})
        monitor["goal"] = {"kind": "threshold", "threshold": goal}
        data = {**data, "monitor": monitor}
    return parse_settings(AutopilotSettings, data, planner_llm=planner_llm)


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


ServiceArg = Annotated[str, typer.Argument(metavar="SERVICE", help="The service (name or id).")]
NoteOpt = Annotated[str, typer.Option(help="Why (recorded in the service's log).")]


def promote(service: ServiceArg, note: NoteOpt = "", storage: StorageOpt = None) -> None:
    """Promote the service's candidate (in shadow or A/B): it becomes the champion."""
    _decide(service, promote=True, note=note, storage=storage)


def rollback(service: ServiceArg, note: NoteOpt = "", storage: StorageOpt = None) -> None:
    """Roll the service's candidate back: the champion stays."""
    _decide(service, promote=False, note=note, storage=storage)


def _decide(ref: str, *, promote: bool, note: str, storage: str | None) -> None:
    from hyperagents.exceptions import RunStateError
    from hyperagents.service import decide_candidate, find_service

    with errors():
        store = existing_storage(storage)
        try:
            service = find_service(store, ref)
            who = f"the command line ({whoami()})"
            if not decide_candidate(store, service.id, promote=promote, who=who, note=note):
                raise RunStateError(f"service {service.name!r} has no candidate to decide on")
            after = store.get_service(service.id)
        finally:
            store.close()
        done = "promoted" if promote else "rolled back"
        console.print(
            f"service {escape(printable(after.name))}: candidate {done}; champion "
            f"variant {after.champion_id}",
            highlight=False,
        )


def autopilot(
    service: ServiceArg,
    force: Annotated[
        bool, typer.Option("--force", help="Improve at the next step, whatever the trigger says.")
    ] = False,
    suppress: Annotated[
        bool, typer.Option("--suppress", help="Start no improvement until --resume.")
    ] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Lift --force or --suppress.")] = False,
    storage: StorageOpt = None,
) -> None:
    """Show a service's autopilot (its stage, candidate, planning cost, latest decisions), or
    steer it."""
    from hyperagents.service import STATE_EVENT, find_service, planning_usage, post_override

    with errors():
        chosen = [
            name for name, on in (("force", force), ("suppress", suppress), ("none", resume)) if on
        ]
        if len(chosen) > 1:
            raise typer.BadParameter("give one of --force, --suppress, --resume")
        store = existing_storage(storage)
        try:
            record = find_service(store, service)
            if chosen:
                post_override(store, record.id, chosen[0], who=f"the command line ({whoami()})")
            states = store.list_service_events(
                record.id, kinds=[STATE_EVENT], newest_first=True, limit=1
            )
            log = [
                e
                for e in store.list_service_events(record.id, newest_first=True, limit=200)
                if e.kind.startswith("autopilot.") and e.kind != STATE_EVENT
            ][:8]
            planning = planning_usage(store, record.id)
        finally:
            store.close()
        state = dict(states[0].data or {}) if states else {}
        console.print(
            f"service {escape(printable(record.name))}: champion {record.champion_id}, "
            f"candidate {record.candidate_id or '-'} ({record.candidate_state.name.lower()}); "
            f"autopilot {state.get('stage', 'never ran')}"
            + (f"; asked to {chosen[0] if chosen[0] != 'none' else 'resume'}" if chosen else ""),
            highlight=False,
        )
        if planning["calls"]:
            orphaned = (
                f"; {planning['orphaned']} orphaned (${planning['orphaned_cost']:.4f}: their "
                f"run never started; {planning['waiting']} waiting for the run that carries "
                f"their plan, {planning['abandoned']} abandoned)"
                if planning["orphaned"]
                else ""
            )
            console.print(
                f"  planning: {planning['calls']} model calls, ${planning['cost']:.4f}{orphaned}",
                highlight=False,
            )
        for event in reversed(log):
            console.print(
                f"  {event.created_at:%Y-%m-%d %H:%M:%S}  {event.kind.removeprefix('autopilot.')}"
                f"  {escape(printable(event.message[:120]))}",
                highlight=False,
            )


def wanted(service: ServiceArg, storage: StorageOpt = None) -> None:
    """List the requests a plan asked people to label that have no label yet (give one with
    ``hyperagents feedback REQUEST_ID --label ...``: it joins the next improvement's data)."""
    from hyperagents.service import find_service, wanted_labels

    with errors():
        store = existing_storage(storage)
        try:
            record = find_service(store, service)
            found = wanted_labels(store, record.id)
            requests = {w["request_id"]: store.get_service_request(w["request_id"]) for w in found}
        finally:
            store.close()
        if not found:
            console.print(f"service {escape(printable(record.name))}: no label wanted")
            return
        for item in found:
            inputs = json.dumps(requests[item["request_id"]].inputs)[:120]
            console.print(
                f"request {item['request_id']} (asked {item['asked_at'][:19]}, run "
                f"{item['run_id']}): {escape(printable(inputs))}",
                highlight=False,
            )
