"""The listings: ``runs`` (every run of a storage) and ``status`` (one run as a table, also
printed at the end of ``run`` and ``resume``)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import PurePath
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hyperagents._untrusted import printable
from hyperagents.cli._shared import (
    StorageOpt,
    agent_text,
    console,
    errors,
    existing_storage,
    fmt_value,
    storage_label,
)
from hyperagents.runs import Run, engine_state, run_engines, status_label, stored_reviews
from hyperagents.storages import RunRecord, VariantRecord, VariantState
from hyperagents.tasks import file_spec, stored_task_options, task_label

__all__ = ["list_runs", "print_status", "short_task", "status"]


def _llm_row(llm: dict[str, Any]) -> str:
    source = f"replay of {llm['replay_of']}" if llm["replay_of"] else llm["model"]
    tokens = llm["prompt_tokens"] + llm["completion_tokens"]
    spent = f"{tokens} tokens"
    if llm["max_tokens"] is not None:
        spent += f" of {llm['max_tokens']}"
    spent += f", ${llm['cost']:.4f}"
    if llm["max_cost"] is not None:
        spent += f" of ${llm['max_cost']:.4f}"
    return (
        f"{escape(printable(source))}: {llm['calls']} calls ({llm['cached']} cached, "
        f"{llm['errors']} failed attempts); {spent}"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def _training_row(training: dict[str, Any]) -> Text:
    """``levers both; children by lever …; trainings …; examples by source …``."""
    return agent_text(
        f"levers {training['levers']}; children by lever: {_counts(training['chosen'])}; "
        f"trainings: {_counts(training['trainings'])}; examples by source: "
        f"{_counts(training['sources'])}"
    )


def print_status(the_run: Run) -> None:
    """Print the run's status (whether an engine drives it), budgets, scores, champion, model
    use and warnings (settings that do not do what they say)."""
    info = the_run.summary()
    table = Table(title=f"run {escape(printable(info['run']))}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    task = task_label(info["task"], info["task_options"])
    table.add_row("task / mode / seed", agent_text(f"{task} / {info['mode']} / {info['seed']}"))
    if info.get("level"):
        table.add_row("level", agent_text(str(info["level"])))
    table.add_row("status", status_label(the_run.record()))
    table.add_row("generations", f"{info['generations']} of {info['target_generations']}")
    table.add_row("archive (complete)", f"{info['archive_size']} of {info['variants']} variants")
    table.add_row("states", ", ".join(f"{k} {v}" for k, v in sorted(info["states"].items())))
    elapsed = f"{info['elapsed_seconds']:.1f} s"
    if info.get("max_seconds") is not None:
        elapsed += f" of {info['max_seconds']:g} s"
    table.add_row("elapsed", elapsed)
    evaluations = str(info.get("evaluations", 0))
    if info.get("max_evaluations") is not None:
        evaluations += f" of {info['max_evaluations']}"
    table.add_row("evaluations", evaluations)
    seed_scores, champ = info["seed_scores"], info["champion"]
    for split in ("train", "val", "test"):
        row = f"seed {fmt_value(seed_scores.get(split))}"
        if champ is not None:
            row += f"  →  champion {fmt_value(champ['scores'].get(split))}"
        table.add_row(f"{split} score", row)
    if champ is not None:
        table.add_row(
            "champion", f"variant {champ['variant_id']} (generation {champ['generation']})"
        )
    if info.get("llm") is not None:
        table.add_row("LLM", _llm_row(info["llm"]))
    if info.get("training") is not None:
        table.add_row("levers / training", _training_row(info["training"]))
    if the_run.config.review:
        table.add_row("reviews", _reviews_row(the_run))
    for message in the_run.warnings():
        table.add_row("[yellow]warning[/]", agent_text(message))
    console.print(table)
    engines = run_engines(the_run.storage, the_run.record())
    if engines:
        console.print(_engines_table(engines))


def _reviews_row(the_run: Run) -> Text:
    """How many children the reviewer reviewed (and failed to), and the latest review."""
    outcomes = stored_reviews(the_run.storage, the_run.id)
    failed = sum(1 for outcome in outcomes.values() if "error" in outcome)
    row = f"{len(outcomes) - failed} reviewed, {failed} without review"
    generation_of = {v.id: v.generation for v in the_run.variants()}
    latest = max(
        (i for i, o in outcomes.items() if "error" not in o),
        key=lambda i: generation_of.get(i, -1),
        default=None,
    )
    if latest is not None:
        review = outcomes[latest]
        row += (
            f"; latest (generation {generation_of.get(latest)}): {review.get('severity')} "
            f"{review.get('issue_type')}: {str(review.get('fix_suggestion'))[:200]}"
        )
    return agent_text(row)


def _engines_table(engines: list[dict[str, Any]]) -> Table:
    """The run's engines: who worked on it, where, with how many workers, and whether they
    still do."""
    table = Table(title="engines")
    for column in ("engine", "workers", "status", "heartbeat", "children", "joined"):
        table.add_column(column, overflow="fold")
    for e in engines:
        status = e["status"] + (" (lead)" if e["lead"] else "")
        table.add_row(
            escape(printable(e["engine"])),
            str(e["workers"]),
            status,
            f"{e['heartbeat_age']:.1f} s ago",
            str(e["variants"]),
            e["joined_at"][:19].replace("T", " "),
        )
    return table


#: The listing's columns, and those kept below :data:`WIDE` columns of terminal (a run's name
#: says its mode and seed unless it was given one; ``status`` shows everything).
RUN_COLUMNS = ("id", "name", "task", "mode", "seed", "status", "variants", "best val", "created")
NARROW_COLUMNS = ("id", "name", "task", "status", "variants", "best val")
WIDE = 110


def list_runs(storage: StorageOpt = None) -> None:
    """List all runs in the storage, one line a run at 80 columns (file tasks by file name,
    mode, seed and creation time from 110 columns on)."""
    with errors():
        store = existing_storage(storage)
        columns = RUN_COLUMNS if console.width >= WIDE else NARROW_COLUMNS
        table = Table(
            title=f"runs in {storage_label(store)}",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 1, 0, 0),
        )
        for column in columns:
            table.add_column(column, overflow="fold", no_wrap=column not in ("name", "task"))
        for record in store.list_runs():
            row = _run_row(record, store.list_variants(record.id))
            table.add_row(*(row[column] for column in columns))
        console.print(table)


def _run_row(record: RunRecord, variants: list[VariantRecord]) -> dict[str, str]:
    """One run's cells of the listing, by column."""
    vals = [
        v.scores["val"] for v in variants if v.state is VariantState.COMPLETE and "val" in v.scores
    ]
    created = record.created_at
    return {
        "id": str(record.id),
        "name": record.name,
        "task": task_label(short_task(record.task), stored_task_options(record.config)),
        "mode": record.mode,
        "seed": str(record.seed),
        "status": status_label(record),
        "variants": str(len(variants)),
        "best val": fmt_value(max(vals) if vals else None),
        "created": created.strftime(
            "%m-%d %H:%M" if created.year == datetime.now().year else "%Y-%m-%d"
        ),
    }


def short_task(spec: str) -> str:
    """A task spec as a listing shows it: ``path/to/task.py:Class`` as ``task.py:Class``
    (``status`` shows the whole spec)."""
    parts = file_spec(spec)
    return spec if parts is None else f"{PurePath(parts[0]).name}:{parts[1]}"


def status(
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Best scores per split, archive size, generations and time of a run, whether an engine
    drives it ("running (engine dead)": resume it), and its warnings."""
    with errors():
        the_run = Run.load(run_name, storage=existing_storage(storage))
        if as_json:
            record = the_run.record()
            shown = {
                **the_run.summary(),
                "engine": engine_state(record).value,
                "engines": run_engines(the_run.storage, record),
                "warnings": the_run.warnings(),
            }
            console.print_json(json.dumps(shown))
        else:
            print_status(the_run)
