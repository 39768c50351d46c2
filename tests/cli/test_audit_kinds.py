"""Event kinds of ``audit -k``: listed in ``--help``, checked (a wrong kind is an error, not an
empty log), named consistently, and old names still found and shown as the new ones."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperagents.cli import _app
from hyperagents.runs import (
    EVENT_KINDS,
    KIND_ALIASES,
    Run,
    RunConfig,
    ban,
    canonical_kind,
    pin,
    stored_kinds,
)
from hyperagents.storages import RDBStorage, VariantState

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> tuple[RDBStorage, str]:
    """A run driven 8 generations with manual approval, then pinned and banned by a person,
    plus three events written under the old names."""
    url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'runs.db'}"
    storage = RDBStorage(url)
    config = RunConfig.parse({}, sandbox="process", subset_size=10, approval="manual")
    run = Run.create(task=TOY, name="a", storage=storage, config=config, generations=8)
    run.optimize()
    complete = [v for v in run.variants() if v.state is VariantState.COMPLETE]
    pin(storage, complete[0], who="tester")
    child = next(v for v in run.variants() if v.parent_id is not None)
    ban(storage, child, who="tester")
    for old in KIND_ALIASES:
        storage.add_event(run.id, old, f"written as {old}", data={"by": "an old engine"})
    return storage, url


def audit(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app.app, ["audit", "a", "--storage", url, *args])
    return result.exit_code, result.output


def test_help_lists_the_kinds() -> None:
    result = CliRunner().invoke(_app.app, ["audit", "--help"], env={"COLUMNS": "400"})
    shown = " ".join(result.output.replace("│", " ").split())
    for kind in ("run.completed", "variant.pinned", "variant.banned", "variant.pending"):
        assert kind in shown
    assert "run.complete (now run.completed)" in shown


def test_an_unknown_kind_is_an_error_listing_the_valid_ones(driven: tuple[RDBStorage, str]) -> None:
    code, out = audit(driven[1], "-k", "variant.bogus")
    assert code == 1
    assert "unknown event kind 'variant.bogus'; valid kinds: run.created," in out
    assert "variant.banned" in out


def test_every_kind_a_run_records_is_known(driven: tuple[RDBStorage, str]) -> None:
    storage, _ = driven
    run = storage.get_run_by_name("a")
    recorded = {canonical_kind(e.kind) for e in storage.list_events(run.id)}
    assert recorded <= set(EVENT_KINDS), recorded - set(EVENT_KINDS)
    assert {"run.completed", "variant.pending", "variant.pinned", "variant.banned"} <= recorded


@pytest.mark.parametrize(("new", "old"), [(new, old) for old, new in KIND_ALIASES.items()])
def test_old_and_new_names_find_the_same_events(
    driven: tuple[RDBStorage, str], new: str, old: str
) -> None:
    _, url = driven
    found = {}
    for name in (new, old):
        code, out = audit(url, "-k", name, "-f", "json")
        assert code == 0, out
        found[name] = json.loads(out)["entries"]
    assert found[new] == found[old]
    messages = {e["why"] for e in found[new]}
    assert f"written as {old}" in messages and len(messages) >= 2  # old and new events
    assert {e["kind"] for e in found[new]} == {new}  # shown under the new name


def test_stored_kinds_expands_to_the_old_names() -> None:
    assert stored_kinds(["run.completed"]) == ["run.complete", "run.completed"]
    assert stored_kinds(["run.pinned"]) == ["run.pinned", "variant.pinned"]
    assert stored_kinds(["variant.pending"]) == ["variant.pending"]


def test_table_written_to_a_file_is_csv(driven: tuple[RDBStorage, str], tmp_path: Path) -> None:
    out = tmp_path / "log.csv"
    code, said = audit(driven[1], "-k", "variant.pending", "-o", str(out))
    assert code == 0, said
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows and {row["kind"] for row in rows} == {"variant.pending"}
    assert {row["by"] for row in rows} == {"approval policy"}
