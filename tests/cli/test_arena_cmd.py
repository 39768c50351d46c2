"""``hyperagents arena``: play, resume to more rounds (by the same command, or by
``hyperagents resume``), the JSON summary, bad options."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import cli, invoke_wide

SMALL = ("--proposals", "8", "--children", "1", "--heldout", "20")


def test_an_arena_plays_resumes_to_more_rounds_and_writes_its_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    out = tmp_path / "summary.json"
    code, text = invoke_wide("arena", "--rounds", "1", *SMALL, "--storage", url, "--json", str(out))
    assert code == 0, text
    assert "round 1: suite" in text
    first = json.loads(out.read_text())
    assert first["rounds"] == 1 and first["name"] == "arena-email_validation-1x1-s0"
    assert first["heldout"]["size"] == 20
    code, text = invoke_wide("arena", "--rounds", "2", *SMALL, "--storage", url, "--json", str(out))
    assert code == 0, text
    assert "round 1: suite" not in text and "round 2: suite" in text  # resumed, not replayed
    second = json.loads(out.read_text())
    assert [s["round"] for s in second["series"]] == [1, 2]
    assert second["series"][0] == first["series"][0]
    assert second["evaluations"]["total"] > first["evaluations"]["total"]
    # The common resume continues it too: one more round, the first two kept as they were.
    code, text = invoke_wide("resume", first["name"], "-g", "1", "--storage", url)
    assert code == 0, text
    assert '"rounds": 3' in text and '"status": "complete"' in text
    assert "round 2: suite" not in text
    refused = invoke_wide("resume", first["name"], "--max-cost", "1", "--storage", url)
    assert refused[0] == 1 and "does not take --max-cost" in refused[1]


def test_bad_options_get_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    code, text = invoke_wide("arena", "--tournament", "4by4", "--storage", url)
    assert code == 1 and "tournament must look like 4x4" in text
    code, text = invoke_wide("arena", "--meta", "magic", "--storage", url)
    assert code == 1 and "meta must be 'arena', 'offline' or 'llm'" in text
    code, text = invoke_wide("arena", "--rounds", "1", *SMALL, "--seed", "3", "--storage", url)
    assert code == 0, text
    code, text = invoke_wide(
        "arena", "--rounds", "1", "--proposals", "9", "--seed", "3", "--storage", url
    )
    assert code == 1 and "exists with other settings" in text


def test_any_arena_capable_task_plays_and_others_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    out = tmp_path / "summary.json"
    code, text = invoke_wide(
        "arena", "--task", "ip_validation", "--rounds", "1", *SMALL, "--storage", url,
        "--json", str(out),
    )  # fmt: skip
    assert code == 0, text
    summary = json.loads(out.read_text())
    assert summary["name"] == "arena-ip_validation-1x1-s0" and summary["heldout"]["size"] == 20
    code, text = invoke_wide("arena", "--task", "arith", "--rounds", "1", "--storage", url)
    assert code == 1 and "task 'arith' cannot play an arena" in text and "oracle()" in text
    code, text = invoke_wide("runs", "--storage", url)
    assert code == 0 and "arith" not in text  # refused before any run was made


def test_the_arena_level_runs_on_ip_validation(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    done = cli(
        "run", "--task", "ip_validation", "--level", "arena", "-g", "1", "--sandbox", "process",
        "--storage", db, "-q", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"status": "complete"' in done.stdout and '"heldout":' in done.stdout
