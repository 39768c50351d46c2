"""``hyperagents rubric draft``: a model drafts a judged task's rubrics, to a file for review.

The file (JSON: ``{"task", "model", "rubrics": {instance id: [{"fact", "weight"}]},
"failed": {instance id: why}}``) is what the task's ``rubric`` option reads once reviewed
(``--task-option rubric=FILE``). Every call is recorded to ``FILE.calls.jsonl`` (a
:class:`~hyperagents.llm.JsonlRecorder`), so a draft can be checked or replayed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from hyperagents.cli._shared import TaskOptionOpt, console, errors, task_option_values
from hyperagents.exceptions import TaskError
from hyperagents.llm import Gateway, JsonlRecorder, parse_llm_spec
from hyperagents.tasks import draft_rubrics, load_task

__all__ = ["rubric_app"]

rubric_app = typer.Typer(
    help="Rubrics of LLM-judged tasks (weighted facts a good output states).",
    no_args_is_help=True,
)

#: The environment variable naming the model when ``--llm`` is not given.
LLM_ENV = "HYPERAGENTS_LLM"


@rubric_app.command()
def draft(
    task: Annotated[str, typer.Option("--task", "-t", help="A judged task (e.g. summaries).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The JSON file to write.")],
    llm: Annotated[
        str | None,
        typer.Option(
            help=f"The model that drafts: openai:MODEL, http://HOST/v1#MODEL, scripted:FILE… "
            f"[default: ${LLM_ENV}]",
            show_default=False,
        ),
    ] = None,
    facts: Annotated[int, typer.Option(min=1, max=20, help="Facts per instance.")] = 4,
    task_options: TaskOptionOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT.")] = False,
) -> None:
    """Draft a rubric for every instance of a judged task with a model, to OUT for review."""
    with errors():
        spec = llm or os.environ.get(LLM_ENV)
        if not spec:
            raise TaskError(f"drafting a rubric needs a model: give --llm SPEC (or ${LLM_ENV})")
        if out.exists() and not force:
            raise TaskError(f"{out} exists: give --force to overwrite it")
        loaded = load_task(task, task_option_values(task_options))
        if not loaded.uses_judge:
            raise TaskError(f"task {loaded.name!r} is not judged by an LLM: it has no rubric")
        recorder = JsonlRecorder(out.with_name(out.name + ".calls.jsonl"))
        gateway = Gateway(parse_llm_spec(spec), recorder=recorder)

        def complete(prompt: str) -> str:
            messages = [{"role": "user", "content": prompt}]
            return gateway.complete(messages, purpose="rubric-draft", temperature=0.0).text

        drafted, failed = draft_rubrics(loaded, complete, n_facts=facts)
        document = {
            "task": loaded.name,
            "model": spec,
            "rubrics": drafted,
            "failed": failed,
        }
        out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    usage = gateway.usage()
    console.print(
        f"drafted {len(drafted)} rubrics to {out} ({len(failed)} failed; "
        f"{usage.calls} calls, {usage.total_tokens} tokens); review it, then run with "
        f"--task-option rubric={out}",
        highlight=False,
        soft_wrap=True,
    )
    if failed:
        raise typer.Exit(1)
