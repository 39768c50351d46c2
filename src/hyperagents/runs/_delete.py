"""Deleting a run from any process (the command line, the dashboard), and the liveness rule
both follow: a run whose engine drives it (running, or still finishing its work in flight after
a stop) is neither resumed nor deleted from elsewhere."""

from __future__ import annotations

import contextlib

from hyperagents.exceptions import RunStateError
from hyperagents.runs._owner import engine_alive, new_owner_token
from hyperagents.storages import BaseStorage, RunRecord, RunStatus

__all__ = ["check_no_engine", "delete_run"]


def check_no_engine(record: RunRecord, *, action: str) -> None:
    """Refuse ``action`` (``"resume"``, ``"delete"``) on a run an engine drives now.

    Raises:
        RunStateError: An engine drives the run: it is running, or it was stopped and its
            engine is still finishing the work in flight.
    """
    if not engine_alive(record):
        return
    if record.status is RunStatus.RUNNING:
        said = f"run {record.name!r} is running already: an engine drives it"
        if action != "resume":  # stopping it to resume it would make no sense
            said += f"; stop it before you {action} it (`hyperagents stop {record.name}`)"
        raise RunStateError(said)
    raise RunStateError(
        f"run {record.name!r} is stopping: its engine is finishing the work in flight; "
        f"{action} it once it has stopped"
    )


def delete_run(store: BaseStorage, record: RunRecord) -> None:
    """Delete a run with everything recorded about it (variants, evaluations, events, its
    training checkpoints; the programs stay, other runs may share them).

    The run's engine slot is claimed first (compare-and-set on the holder read in ``record``),
    so an engine that starts meanwhile either is refused or makes the deletion refused: a run is
    never deleted under a live engine.

    Raises:
        RunStateError: An engine drives the run (see :func:`check_no_engine`), or one took it
            over meanwhile.
        RunNotFoundError: The run no longer exists.
    """
    check_no_engine(record, action="delete")
    token = new_owner_token()
    if not store.claim_run_engine(record.id, token, expected=record.engine):
        raise RunStateError(f"an engine took run {record.name!r} over meanwhile: not deleted")
    try:
        store.delete_run(record.id)
    except BaseException:
        with contextlib.suppress(Exception):
            store.release_run_engine(record.id, token)
        raise
