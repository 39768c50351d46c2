"""``hyperagents delete RUN``: everything of the run goes, after a confirmation; a run whose
engine is alive (running, or finishing after a stop) is refused, as the dashboard refuses it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperagents.cli import _app, _steer
from hyperagents.exceptions import RunNotFoundError, RunStateError
from hyperagents.runs import Run, RunConfig, delete_run
from hyperagents.runs._owner import new_owner_token
from hyperagents.storages import RDBStorage, RunStatus

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


@pytest.fixture
def store(tmp_path: Path) -> RDBStorage:
    """A storage with two runs, "gone" and "kept", created and never driven."""
    storage = RDBStorage(f"sqlite:///{tmp_path / 'runs.db'}")
    for name in ("gone", "kept"):
        Run.create(task=TOY, name=name, storage=storage, config=RunConfig.parse({}), generations=1)
    return storage


def delete(store: RDBStorage, *args: str, answer: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        _app.app, ["delete", *args, "--storage", str(store.url)], input=answer
    )
    return result.exit_code, result.output


def _dead_token() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}|{proc.pid}|123|dead"


def test_delete_with_yes_removes_the_run_and_all_it_recorded(store: RDBStorage) -> None:
    gone = store.get_run_by_name("gone")
    assert store.list_variants(gone.id) and store.list_events(gone.id)
    code, out = delete(store, "gone", "--yes")
    assert code == 0, out
    assert "deleted run gone (1 variants)" in out
    assert [r.name for r in store.list_runs()] == ["kept"]
    for listing in (store.list_variants, store.list_events):  # nothing of it is left
        with pytest.raises(RunNotFoundError):
            listing(gone.id)
    again = delete(store, "gone", "--yes")
    assert again[0] == 1 and "gone" in again[1]


def test_delete_asks_on_a_terminal_and_refuses_without_one(
    store: RDBStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = delete(store, "gone")  # no terminal to ask on
    assert code == 1 and "give --yes" in out
    monkeypatch.setattr(_steer, "_interactive", lambda: True)
    code, out = delete(store, "gone", answer="n\n")
    assert code == 1 and "delete run 'gone'" in out and "not deleted" in out
    assert store.get_run_by_name("gone")
    code, out = delete(store, "gone", answer="y\n")
    assert code == 0 and "deleted run gone" in out
    assert [r.name for r in store.list_runs()] == ["kept"]


def test_a_run_whose_engine_is_alive_is_not_deleted(store: RDBStorage) -> None:
    record = store.get_run_by_name("gone")
    live = new_owner_token()  # this test process: alive
    assert store.claim_run_engine(record.id, live, expected=None)
    store.set_run_status(record.id, RunStatus.RUNNING)
    code, out = delete(store, "gone", "--yes")
    assert code == 1 and "is running already" in out and "hyperagents stop gone" in out
    # Stopped, but its engine still finishes the work in flight.
    store.set_run_status(record.id, RunStatus.STOPPED)
    code, out = delete(store, "gone", "--yes")
    assert code == 1 and "is stopping" in out
    assert store.get_run(record.id).engine == live
    # Its engine has let go: the run can go.
    assert store.release_run_engine(record.id, live)
    assert delete(store, "gone", "--yes")[0] == 0


def test_a_run_whose_engine_died_is_deleted(store: RDBStorage) -> None:
    record = store.get_run_by_name("gone")
    assert store.claim_run_engine(record.id, _dead_token(), expected=None)
    store.set_run_status(record.id, RunStatus.RUNNING)
    code, out = delete(store, "gone", "--yes")
    assert code == 0, out
    assert [r.name for r in store.list_runs()] == ["kept"]


def test_an_engine_that_claims_the_run_meanwhile_wins(store: RDBStorage) -> None:
    seen = store.get_run_by_name("gone")  # read before an engine starts on it
    assert store.claim_run_engine(seen.id, new_owner_token(), expected=None)
    with pytest.raises(RunStateError, match="took run 'gone' over meanwhile"):
        delete_run(store, seen)
    assert store.get_run(seen.id).name == "gone"
