"""``hyperagents play``: replay a seeded snake game of a variant in the terminal.

The variant's task agent runs in the run's sandbox on the game's settings (as in a run) and
returns its moves; the game is then replayed here by the task's trusted rules, frame by frame.
No code of the agent runs in this process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Annotated

import typer
from rich.live import Live
from rich.panel import Panel

from hyperagents.cli._shared import (
    StorageOpt,
    UnsafeSandboxOpt,
    agent_text,
    allow_unsafe_sandbox,
    console,
    errors,
    existing_storage,
)
from hyperagents.exceptions import TaskError
from hyperagents.runs import resolve_variant, try_variant
from hyperagents.tasks import Split, innermost_task, load_task, stored_task_options
from hyperagents.tasks.snake import SnakeTask, render_frame, replay_frames

__all__ = ["play"]


def play(
    variant: Annotated[
        str, typer.Argument(metavar="VARIANT", help="ID, RUN/GENERATION or RUN/champion.")
    ],
    storage: StorageOpt = None,
    game: Annotated[int, typer.Option(min=0, help="Which game of the split (from 0).")] = 0,
    split: Annotated[Split, typer.Option(help="The split the game is from.")] = Split.TEST,
    delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds between frames in a terminal.")
    ] = 0.08,
    all_frames: Annotated[
        bool,
        typer.Option(
            "--all-frames",
            help="Print every frame one after another (default outside a terminal: the first "
            "and the last).",
        ),
    ] = False,
    unsafe_process_sandbox: UnsafeSandboxOpt = False,
) -> None:
    """Replay a snake game of a variant: its moves come from its task agent in the sandbox,
    the frames from the task's own rules."""
    allow_unsafe_sandbox(unsafe_process_sandbox)
    with errors():
        store = existing_storage(storage)
        record = resolve_variant(store, variant)
        run = store.get_run(record.run_id)
        task = load_task(run.task, stored_task_options(run.config))
        snake = innermost_task(task)  # a wrapped snake (live data...) plays by snake's rules
        if not isinstance(snake, SnakeTask):
            raise TaskError(f"play replays snake games; variant {record.id}'s task is {task.name}")
        instances = task.instances(split)
        if game >= len(instances):
            raise TaskError(f"the {split.value} split has {len(instances)} games (0..)")
        instance = instances[game]
        console.print(f"variant {record.id}: {split.value} game {game} ({instance.id}); moves…")
        answer = try_variant(store, run, record, instance.inputs, slots=threading.Semaphore(1))
        if not answer["ok"]:
            console.print(agent_text(f"the agent failed: {answer['error']}"), style="bold red")
            raise typer.Exit(1)
        moves = snake.moves_of(instance, answer["output"])
        verdict = task.score(instance, answer["output"])
        title = f"snake {instance.id} (variant {record.id})"
        frames = replay_frames(snake.new_game(instance), moves, title=title)
        if all_frames or not console.is_terminal:
            _print_frames(frames, every=all_frames)
        else:
            with Live(render_frame(snake.new_game(instance)), console=console) as live:
                for frame in frames:
                    live.update(frame)
                    time.sleep(delay)
        console.print(agent_text(f"score {verdict.value:.4f}: {verdict.feedback}"))


def _print_frames(frames: Iterable[Panel], *, every: bool) -> None:
    """Print every frame, or the first and the last."""
    last: Panel | None = None
    for k, frame in enumerate(frames):
        if every or k == 0:
            console.print(frame)
        last = frame if k else None
    if not every and last is not None:
        console.print(last)
