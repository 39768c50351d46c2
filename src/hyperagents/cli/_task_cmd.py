"""``hyperagents test-task``: a task's protocol checks and its seed agent on val, without a run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hyperagents.cli._shared import (
    TaskOptionOpt,
    agent_text,
    console,
    errors,
    task_option_values,
)
from hyperagents.exceptions import TaskError
from hyperagents.llm import Gateway, parse_llm_spec
from hyperagents.runs import RunConfig, RunJudge, evaluate_seed
from hyperagents.tasks import (
    FolderTask,
    JudgedTask,
    Task,
    check_task,
    innermost_task,
    load_task,
    task_label,
)

__all__ = ["test_task"]

#: Failing val instances shown after the seed's score.
_SHOWN_FAILURES = 3


def test_task(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="TASK", help="Task name, path/file.py:Class or a seed-format task folder."
        ),
    ],
    task_options: TaskOptionOpt = None,
    meta: Annotated[
        str | None,
        typer.Option(help="Seed meta agent: task (the task's own), offline, or llm."),
    ] = None,
    sandbox: Annotated[
        str | None, typer.Option(help="Where the seed agent runs: auto, bwrap or process.")
    ] = None,
    no_seed: Annotated[
        bool, typer.Option("--no-seed", help="Only the protocol checks: run no agent code.")
    ] = False,
    llm: Annotated[
        str | None,
        typer.Option(help="The judge's model, for a task scored by an LLM judge (e.g. summaries)."),
    ] = None,
) -> None:
    """Check a task without a run: its splits, ids, targets, seed program and search space, a
    score() that takes any output, and the seed agent on val in the sandbox. Exit 1 if any
    check fails."""
    with errors():
        options = task_option_values(task_options)
        config = RunConfig.parse({}, task_options=options, meta_agent=meta, sandbox=sandbox)
        task = load_task(spec, config.task_options)
        _attach_judge(task, llm)
        checks = check_task(task)
        table = Table(title=f"task {escape(task_label(spec, config.task_options))}")
        for column in ("check", "", "detail"):
            table.add_column(column, overflow="fold")
        for check in checks:
            mark = "[green]ok[/]" if check.ok else "[bold red]FAILED[/]"
            table.add_row(check.name, mark, agent_text(check.detail))
        console.print(table)
        failed = not all(check.ok for check in checks)
        if not no_seed:
            failed = not _seed_on_val(task, config) or failed
    if failed:
        raise typer.Exit(1)


def _attach_judge(task: Task, llm: str | None) -> None:
    """Give a judged task (or the judged task a wrapper wraps) a judge bound to ``llm`` (a
    gateway of its own, not recorded).

    Raises:
        TaskError: The task is judged and no model is given.
    """
    judged = innermost_task(task)
    if not task.uses_judge or not isinstance(judged, JudgedTask):
        return
    if llm is None:
        raise TaskError(f"task {task.name!r} is scored by an LLM judge: give --llm SPEC")
    gateway = Gateway(parse_llm_spec(llm))
    judged.attach_judge(RunJudge(lambda: gateway, task_name=judged.name))


def _seed_on_val(task: Task, config: RunConfig) -> bool:
    """Run the seed agent on val and say how it did; whether it is valid and scored."""
    trial = evaluate_seed(task, config)
    if trial.result is None:
        console.print(
            agent_text(f"seed program: INVALID ({trial.validation.reason})"), style="bold red"
        )
        return False
    result, metrics = trial.result, trial.result.metrics
    per = metrics.get("wall_per_instance") or 0.0
    console.print(
        f"seed agent on val: {result.score:.4f} ({result.n} instances, "
        f"{metrics.get('errors', 0)} errors, {metrics.get('timeouts', 0)} timeouts, "
        f"{per * 1000:.1f} ms per instance, sandbox {escape(trial.sandbox)})",
        highlight=False,
    )
    folder = innermost_task(task)  # a wrapped folder task prints its metric too
    if isinstance(folder, FolderTask):
        direction = (
            "higher is better" if folder.higher_is_better else "lower is better: score -metric"
        )
        console.print(
            f"  {escape(folder.metric_name)} = {folder.metric_of(result.score):.6g} as "
            f"benchmark.py printed it ({direction})",
            highlight=False,
        )
    low = task.score_range[0]
    failures = [r for r in result.results if r.get("error") or r.get("score") == low]
    for row in failures[:_SHOWN_FAILURES]:
        why = row.get("error") or row.get("feedback") or ""
        console.print(agent_text(f"  {row.get('id')}: {why}"[:300]), highlight=False)
    return True
