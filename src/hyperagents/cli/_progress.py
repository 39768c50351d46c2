"""Progress of runs and experiments: a bar with the time remaining on a terminal; plain lines
(generation, best val, elapsed time) every few generations otherwise (a log file, CI)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["GenerationProgress", "plain_every"]

#: About how many plain lines a drive prints when the console is not a terminal.
PLAIN_LINES = 20


def plain_every(remaining: int, *, lines: int = PLAIN_LINES) -> int:
    """Generations between two plain progress lines: about ``lines`` lines for ``remaining``
    generations (every generation for short runs)."""
    return max(1, math.ceil(remaining / max(1, lines)))


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class GenerationProgress:
    """Shows generations done out of a total, and the best val so far when given.

    On a terminal, a Rich progress bar with elapsed and remaining time; elsewhere one plain line
    every :func:`plain_every` generations and at the last. Use as a context manager; call
    :meth:`advance` when a generation is done and :meth:`best` when the best val changes.

    Args:
        console: Where to print.
        name: What progresses (a run's or an experiment's name).
        total: Generations to reach.
        done: Generations already done.
        best: The best val so far (None: none yet); ``show_best=False`` hides it.
        show_best: Whether the best val is shown.
        quiet: Print nothing.
        clock: Seconds, for the elapsed time of plain lines (monotonic).
        unit: What is counted (``generation``, or ``evaluation`` for an experiment whose runs
            have an evaluation budget).
    """

    def __init__(
        self,
        console: Console,
        name: str,
        *,
        total: int,
        done: int = 0,
        best: float | None = None,
        show_best: bool = True,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "generation",
    ) -> None:
        self._unit = unit
        self._console = console
        self._name = name
        self._total = max(total, done, 1)
        self._done = done
        self._best = best
        self._show_best = show_best
        self._quiet = quiet
        self._clock = clock
        self._started = clock()
        self._every = plain_every(self._total - done)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._lock = threading.Lock()  # an experiment's runs report from their own threads

    @property
    def best_val(self) -> float | None:
        """The best val seen so far."""
        return self._best

    def __enter__(self) -> GenerationProgress:
        if not self._quiet and self._console.is_terminal:
            columns = [
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            ]
            if self._show_best:
                columns.append(TextColumn("best val {task.fields[best]}"))
            self._bar = Progress(*columns, console=self._console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(
                escape(self._name), total=self._total, completed=self._done, best=self._shown()
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _shown(self) -> str:
        return "-" if self._best is None else f"{self._best:.4f}"

    def best(self, value: float) -> None:
        """Note a val score: the best so far is shown."""
        with self._lock:
            if self._best is None or value > self._best:
                self._best = value
                if self._bar is not None and self._task is not None:
                    self._bar.update(self._task, best=self._shown())

    def advance(self, count: int = 1) -> None:
        """Note ``count`` more generations (or evaluations) done."""
        with self._lock:
            before = self._done
            self._done += count
            if self._bar is not None and self._task is not None:
                self._bar.advance(self._task, count)
            elif not self._quiet and (
                self._done // self._every > before // self._every or self._done >= self._total
            ):
                self._plain_line()

    def _plain_line(self) -> None:
        line = f"{escape(self._name)}: {self._unit} {self._done}/{self._total}"
        if self._show_best:
            line += f", best val {self._shown()}"
        line += f", elapsed {_clock(self._clock() - self._started)}"
        self._console.print(line, highlight=False, soft_wrap=True)
