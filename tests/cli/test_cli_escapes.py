"""Agent-written text reaches the terminal inert: ``show``, ``audit``, ``diff`` and ``export``
never pass on a terminal escape, a bidirectional override or Rich markup an agent wrote; and
``diff`` refuses a diff too large to print (a notice, then ``--out`` or ``--full``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperagents.cli import _app
from hyperagents.program import Program
from hyperagents.storages import RDBStorage, RunSpec, VariantState

#: What a hostile agent writes: window title, clipboard write, cursor up, right-to-left
#: override, Rich markup.
HOSTILE = ("\x1b]0;title\x07", "\x1b]52;c;aGFja2Vk\x07", "\x1b[2A", "\u202e", "[bold red]forged[/]")
TEXT = "note " + " ".join(HOSTILE) + " end"
RAW = ("\x1b", "\x07", "\u202e")
SEED = {"task_agent.py": "def solve(x):\n    return 1\n", "meta_agent.py": "# meta\n"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A run whose child carries agent text everywhere the command line shows it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('escapes') / 'h.db'}"
    store = RDBStorage(url)
    seed_id = store.put_program(Program(SEED))
    run_id = store.create_run(
        RunSpec(
            name="hostile",
            task="review",
            mode="hyperagent",
            seed=0,
            config={},
            seed_program_id=seed_id,
        )
    )
    seed = store.create_variant(
        run_id=run_id, generation=0, parent_id=None, state=VariantState.COMPLETE, program_id=seed_id
    )
    child_program = Program(
        {**SEED, "task_agent.py": f"def solve(x):\n    return 2  # {TEXT}\n", "notes.md": TEXT}
    )
    child = store.create_variant(run_id=run_id, generation=1, parent_id=seed)
    store.set_variant_program(
        child, store.put_program(child_program), meta_info={"operator": TEXT, "said": TEXT}
    )
    store.update_variant_metrics(child, {"improve": {"summary": TEXT}})
    store.add_evaluation(
        variant_id=child,
        stage="val",
        split="val",
        score=0.0,
        n=2,
        results=[{"id": "i1", "score": 0.0, "feedback": TEXT}, {"id": "i2", "score": 1.0}],
        metrics={},
    )
    store.set_variant_state(
        child, VariantState.REJECTED, expected=VariantState.RUNNING, reason=TEXT
    )
    store.add_event(run_id, "variant.rejected", TEXT, variant_id=child, data={"by": TEXT})
    store.close()
    yield url, child


def invoke(monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setattr(_app.console, "width", 1000)  # no folding: a forged line stays whole
    monkeypatch.setattr(_app.err_console, "width", 1000)
    result = CliRunner().invoke(_app.app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def assert_inert(out: str) -> None:
    for raw in RAW:
        assert raw not in out, f"{raw!r} reached the terminal"
    assert "\\x1b]0;title\\x07" in out and "\\x1b]52;c;aGFja2Vk\\x07" in out
    assert "\\x1b[2A" in out and "\\u202e" in out
    assert "[bold red]forged[/]" in out  # shown as written, not taken for markup


@pytest.mark.parametrize(
    "args",
    [
        ("show", "{child}"),
        ("show", "{child}", "--file", "task_agent.py"),
        ("show", "{child}", "--file", "notes.md"),
        ("audit", "hostile"),
        ("audit", "hostile", "--format", "csv"),
        ("diff", "{child}"),
        ("export", "hostile"),
    ],
)
def test_agent_text_is_shown_never_obeyed(
    hostile: tuple[str, int], monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    url, child = hostile
    out = invoke(monkeypatch, *(a.format(child=child) for a in args), "--storage", url)
    assert_inert(out)


def test_show_prints_meta_info_reason_metrics_and_feedback(
    hostile: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, child = hostile
    out = invoke(monkeypatch, "show", str(child), "--storage", url)
    for label in ("reason", "meta info", "metrics improve", "feedback", "notes.md"):
        assert label in out
    assert out.count("[bold red]forged[/]") >= 4  # reason, meta info (twice), metrics, feedback


def test_files_written_with_out_keep_their_bytes(
    hostile: tuple[str, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, child = hostile
    invoke(monkeypatch, "diff", str(child), "--storage", url, "--out", str(tmp_path / "d.patch"))
    patch = (tmp_path / "d.patch").read_text(encoding="utf-8")
    assert TEXT in patch  # a patch file is the program's exact change
    assert Program(SEED).apply(patch)["notes.md"] == TEXT.encode()


# -- heavy diffs --------------------------------------------------------------------------------
def test_a_diff_too_large_to_print_says_so_and_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'big.db'}"
    store = RDBStorage(url)
    seed_id = store.put_program(Program(SEED))
    run_id = store.create_run(
        RunSpec(
            name="big", task="review", mode="hyperagent", seed=0, config={}, seed_program_id=seed_id
        )
    )
    seed = store.create_variant(run_id=run_id, generation=0, parent_id=None, program_id=seed_id)
    chunk = ("value = " + "1" * 91 + "\n") * 5120  # 500 KiB per file, 12 files: 6 MiB
    heavy = Program({**SEED, **{f"data/f{i:03}.py": f"# {i}\n{chunk}" for i in range(12)}})
    child = store.create_variant(
        run_id=run_id, generation=1, parent_id=seed, program_id=store.put_program(heavy)
    )
    store.close()
    runner = CliRunner()
    monkeypatch.setattr(_app.err_console, "width", 1000)
    refused = runner.invoke(_app.app, ["diff", str(child), "--storage", url])
    assert refused.exit_code == 1
    assert len(refused.output) < 10_000  # a notice, never the diff
    assert "too large to print" in refused.output and "limit 4.0 MiB" in refused.output
    assert "data/f011.py" in refused.output and "--out FILE" in refused.output
    out = tmp_path / "big.patch"
    written = runner.invoke(_app.app, ["diff", str(child), "--storage", url, "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert Program(SEED).apply(out.read_text(encoding="utf-8")) == heavy
    full = runner.invoke(_app.app, ["diff", str(child), "--storage", url, "--full"])
    assert full.exit_code == 0 and full.output.count("diff --git") == 12
