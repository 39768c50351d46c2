"""``show`` prints a variant's meta info as pretty JSON, whole or cut at a line with a notice,
never silently in the middle of a value."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hyperagents.cli import _app
from hyperagents.cli._inspect import META_INFO_LIMIT, cut
from hyperagents.program import Program
from hyperagents.storages import RDBStorage, RunSpec, VariantState

SEED = {"task_agent.py": "def solve(x):\n    return 1\n", "meta_agent.py": "# meta\n"}
NOTES = [f"note {k:03d}: tried threshold {k / 1000:.3f}" for k in range(300)]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A run whose child reported long meta info (300 notes, the last one "note 299")."""
    url = f"sqlite:///{tmp_path_factory.mktemp('show') / 's.db'}"
    store = RDBStorage(url)
    program = store.put_program(Program(SEED))
    run_id = store.create_run(
        RunSpec(
            name="s", task="review", mode="hyperagent", seed=0, config={}, seed_program_id=program
        )
    )
    store.create_variant(
        run_id=run_id, generation=0, parent_id=None, state=VariantState.COMPLETE, program_id=program
    )
    child = store.create_variant(run_id=run_id, generation=1, parent_id=1)
    store.set_variant_program(child, program, meta_info={"approach": "tune", "notes": NOTES})
    store.close()
    return url


def show(url: str, *args: str) -> str:
    result = CliRunner().invoke(_app.app, ["show", "s/1", "--storage", url, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_long_meta_info_is_cut_at_a_line_with_a_notice(url: str) -> None:
    out = show(url)
    assert '"approach": "tune"' in out  # pretty JSON, one key a line
    assert "more characters; --full shows them)" in out
    assert "note 299" not in out
    # Every note shown is whole: the cut falls between lines.
    shown = [line for line in out.splitlines() if "note " in line and "tried" in line]
    assert shown and all(line.rstrip(" │").endswith(('",', '"')) for line in shown)
    whole = json.dumps({"approach": "tune", "notes": NOTES}, indent=2, sort_keys=True)
    left_out = int(out.split("… (")[1].split(" more characters")[0])
    assert 0 < left_out < len(whole) - META_INFO_LIMIT // 2


def test_full_shows_all_of_it(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_app.console, "width", 200)
    out = show(url, "--full")
    assert "note 299" in out and "more characters" not in out


def test_cut_keeps_short_text_and_cuts_long_text_at_a_break() -> None:
    assert cut("short", 100) == "short"
    assert cut("x" * 500, None) == "x" * 500
    text = "\n".join(f"line {k}" for k in range(100))
    cut_text = cut(text, 50)
    kept, notice = cut_text.rsplit("\n", 1)
    assert text.startswith(kept + "\n") and len(kept) <= 50
    assert notice == f"… ({len(text) - len(kept)} more characters; --full shows them)"
    unbroken = "y" * 200
    assert cut(unbroken, 50).startswith("y" * 50 + "\n… (150 more")
