"""Driving a run from ``run`` and ``resume``: progress, interrupts (Ctrl-C and SIGTERM), and
what the person is told at the start and the end (warnings, what waits for approval, what to
do next)."""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import typer
from rich.markup import escape

from hyperagents._untrusted import printable
from hyperagents.cli._progress import GenerationProgress
from hyperagents.cli._shared import err_console, fmt_value, storage_hint
from hyperagents.cli._status import print_status
from hyperagents.runs import Drive, Run
from hyperagents.storages import RunStatus, VariantRecord, VariantState

__all__ = ["drive", "terminate_as_interrupt"]

#: Exit codes of a drive cut short, by signal (128 + the signal's number, as shells report).
_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
#: Waiting variants listed one by one at the end of a run (the rest: see ``audit``).
_PENDING_SHOWN = 10


@contextmanager
def terminate_as_interrupt() -> Iterator[list[int]]:
    """While in the block, SIGTERM (``kill``, ``timeout``, a service manager) interrupts the main
    thread as Ctrl-C does: the engine stops starting work, finishes what is in flight, records
    it and lets go of the run. The previous handler is restored afterwards.

    Yields:
        The signals received (SIGTERM's number once per signal), to tell them from Ctrl-C.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers belong to the main thread
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say(line: str) -> None:
    """A line for the person on stderr (Rich markup: escape what was not written here); not
    wrapped, so that a command in it can be pasted from a log."""
    err_console.print(line, highlight=False, soft_wrap=True)


def _hint(storage: str | None) -> str:
    """The ``--storage`` option to repeat in a suggested command, escaped for Rich."""
    return escape(printable(storage_hint(storage)))


def _ref(run: Run, tail: str) -> str:
    """A variant reference (``RUN/TAIL``) fit to paste into a command and to print."""
    return escape(printable(shlex.quote(f"{run.name}/{tail}")))


def _print_warnings(run: Run, shown: set[str]) -> None:
    """Print the run's warnings not printed yet (on stderr, whatever ``--quiet`` says)."""
    for message in run.warnings():
        if message not in shown:
            shown.add(message)
            _say(f"[yellow]warning:[/] {escape(printable(message))}")


def _best_val(variants: list[VariantRecord]) -> float | None:
    vals = [
        v.scores["val"] for v in variants if v.state is VariantState.COMPLETE and "val" in v.scores
    ]
    return max(vals) if vals else None


def _optimize(job: Drive, quiet: bool) -> None:
    """Run the engine with a progress display."""
    run = job.run
    variants = run.variants()
    done = sum(1 for v in variants if v.generation > 0 and v.state.is_terminal)
    progress = GenerationProgress(
        err_console,
        run.name,
        total=run.target_after(job.generations),
        done=done,
        best=_best_val(variants),
        quiet=quiet,
    )
    with progress:

        def on_variant(_: Run, variant: VariantRecord) -> None:
            if variant.state is VariantState.COMPLETE and "val" in variant.scores:
                progress.best(variant.scores["val"])
            if variant.generation > 0 and variant.state.is_terminal:
                progress.advance()

        job.optimize(callbacks=[on_variant])


def _print_pending(run: Run, storage: str | None) -> None:
    """Say which children wait for a person's decision, why, and how to decide."""
    waiting = run.variants(states=[VariantState.PENDING])
    if not waiting:
        return
    hint = _hint(storage)
    _say(
        f"{len(waiting)} variant(s) of {escape(printable(run.name))} wait for a person's decision:"
    )
    for v in waiting[:_PENDING_SHOWN]:
        _say(
            f"  {_ref(run, str(v.generation))} (variant {v.id}, val "
            f"{fmt_value(v.scores.get('val'))}): {escape(printable(v.reason or 'no reason'))}"
        )
    if len(waiting) > _PENDING_SHOWN:
        _say(
            f"  … and {len(waiting) - _PENDING_SHOWN} more: "
            f"hyperagents audit {escape(shlex.quote(run.name))} -k variant.pending{hint}"
        )
    first = _ref(run, str(waiting[0].generation))
    _say(f"decide on each (hyperagents diff {first}{hint} shows what it changed):")
    _say(f"  hyperagents approve {first}{hint} --note WHY")
    _say(f"  hyperagents reject {first}{hint} --note WHY")


def _print_next(run: Run, storage: str | None) -> None:
    """Say what to look at next."""
    hint = _hint(storage)
    _say(
        f"next: hyperagents show {_ref(run, 'champion')}{hint} (the best variant); "
        f"hyperagents dashboard{hint} (every run in the browser)"
    )


def drive(job: Drive, quiet: bool, *, storage: str | None = None) -> None:
    """Drive a run as the application service prepared it (to its target, plus the
    generations asked for), then print its status and what needs doing: a stop's reason,
    children waiting for approval, what to look at next.

    Ctrl-C or SIGTERM stop it cleanly (the work in flight is finished and recorded; twice:
    at once): the person is told how to resume, and the command exits with 130 or 143.

    Args:
        job: The run, how far and with how many workers.
        quiet: No progress display and no suggestions (warnings and decisions still show).
        storage: The ``--storage`` given, repeated in suggested commands.

    Raises:
        typer.Exit: 130 after Ctrl-C, 143 after SIGTERM.
    """
    run = job.run
    shown: set[str] = set()
    _print_warnings(run, shown)
    aborted = False
    with terminate_as_interrupt() as signals:
        try:
            _optimize(job, quiet)
        except KeyboardInterrupt:  # a second interrupt: the work in flight was abandoned
            aborted = True
    print_status(run)
    _print_warnings(run, shown)
    name = escape(printable(shlex.quote(run.name)))
    if aborted or run.last_stop_reason == "interrupted":
        cause = signal.SIGTERM if signals else signal.SIGINT
        said = "terminated (SIGTERM)" if signals else "interrupted"
        if aborted:
            said += ", the work in flight abandoned"
        _say(f"{said}: continue with hyperagents resume {name}{_hint(storage)}")
        raise typer.Exit(_EXIT_CODES[cause])
    if run.record().status is RunStatus.STOPPED and run.last_stop_reason is not None:
        _say(f"stopped: {escape(printable(run.last_stop_reason))}")
    _print_pending(run, storage)
    if not quiet:
        _print_next(run, storage)
