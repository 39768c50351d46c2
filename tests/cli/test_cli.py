"""End-to-end tests of the ``hyperagents`` command (real subprocesses, real SQLite files)."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("HYPERAGENTS_STORAGE", None)
    if env and "HYPERAGENTS_STORAGE" in env:
        full_env["HYPERAGENTS_STORAGE"] = env["HYPERAGENTS_STORAGE"]
    proc = subprocess.run(
        [sys.executable, "-m", "hyperagents", *args],
        cwd=cwd,
        env=full_env,
        text=True,
        capture_output=True,
        timeout=600,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("cli")
    url = f"sqlite:///{work / 'runs.db'}"
    cli(
        "run",
        "--task",
        TOY,
        "--generations",
        "4",
        "--seed",
        "1",
        "--name",
        "toy1",
        "--storage",
        url,
        "--subset-size",
        "10",
        cwd=work,
    )
    return work, url


def test_run_prints_a_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    proc = cli("run", "-t", TOY, "-g", "2", "--storage", url, "-q", cwd=tmp_path)
    assert "val score" in proc.stdout and "champion" in proc.stdout
    assert "toy-hyperagent-s0" in proc.stdout


def test_default_storage_is_a_sqlite_file_in_the_working_directory(tmp_path: Path) -> None:
    cli("run", "-t", TOY, "-g", "1", "-q", cwd=tmp_path)
    assert (tmp_path / "hyperagents.db").is_file()
    proc = cli("runs", cwd=tmp_path)
    assert "toy-hyperagent-s0" in proc.stdout


def test_runs_of_file_tasks_fit_80_columns(toy_run: tuple[Path, str]) -> None:
    work, url = toy_run
    narrow = cli("runs", "--storage", url, cwd=work, env={"COLUMNS": "80"}).stdout
    lines = narrow.splitlines()
    assert all(len(line) <= 80 for line in lines), narrow
    row = next(line for line in lines if "toy1" in line)
    assert "toytask.py:ToyTask" in row and "complete" in row and "/" not in row
    wide = cli("runs", "--storage", url, cwd=work).stdout  # 200 columns: mode, seed, created
    assert "hyperagent" in wide and "created" in wide


def test_storage_from_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    cli(
        "run",
        "-t",
        TOY,
        "-g",
        "1",
        "-q",
        "--name",
        "envrun",
        cwd=tmp_path,
        env={"HYPERAGENTS_STORAGE": url},
    )
    assert (tmp_path / "env.db").is_file()
    assert "envrun" in cli("runs", cwd=tmp_path, env={"HYPERAGENTS_STORAGE": url}).stdout


def test_runs_and_status(toy_run: tuple[Path, str]) -> None:
    work, url = toy_run
    assert "toy1" in cli("runs", "--storage", url, cwd=work).stdout
    status = cli("status", "toy1", "--storage", url, cwd=work).stdout
    assert "4 of 4" in status and "val score" in status and "archive" in status
    info = json.loads(cli("status", "toy1", "--json", "--storage", url, cwd=work).stdout)
    assert info["generations"] == 4 and info["status"] == "complete"
    assert info["champion"]["scores"]["val"] >= info["seed_scores"]["val"]


def test_show_variant(toy_run: tuple[Path, str]) -> None:
    work, url = toy_run
    out = cli("show", "toy1/champion", "--storage", url, cwd=work).stdout
    assert "score val" in out and "task_agent.py" in out and "metrics val" in out
    out = cli("show", "toy1/0", "--storage", url, cwd=work).stdout
    assert "generation 0" in out
    out = cli("show", "toy1/seed", "--file", "task_agent.py", "--storage", url, cwd=work).stdout
    assert "def solve" in out


def test_diff(toy_run: tuple[Path, str]) -> None:
    work, url = toy_run
    out = cli("diff", "toy1/1", "--storage", url, cwd=work).stdout
    assert "--- a/task_agent.py" in out and "+++ b/task_agent.py" in out
    out = cli("diff", "toy1/0", "toy1/0", "--storage", url, cwd=work).stdout
    assert "identical" in out


def test_lineage(toy_run: tuple[Path, str]) -> None:
    work, url = toy_run
    out = cli("lineage", "toy1", "--all", "--storage", url, cwd=work).stdout
    assert "run toy1" in out and "gen 0" in out and "champion" in out


def test_export_csv_and_json(toy_run: tuple[Path, str], tmp_path: Path) -> None:
    work, url = toy_run
    rows = list(
        csv.DictReader(
            io.StringIO(cli("export", "toy1", "--format", "csv", "--storage", url, cwd=work).stdout)
        )
    )
    assert [int(r["generation"]) for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0]["val"] and rows[0]["state"] == "complete"
    out = tmp_path / "run.json"
    cli("export", "toy1", "--format", "json", "--out", str(out), "--storage", url, cwd=work)
    data = json.loads(out.read_text())
    assert data["run"]["name"] == "toy1" and len(data["variants"]) == 5


def test_resume_with_more_generations(toy_run: tuple[Path, str], tmp_path: Path) -> None:
    work, _ = toy_run
    copy = tmp_path / "copy.db"
    copy.write_bytes((work / "runs.db").read_bytes())
    copy_url = f"sqlite:///{copy}"
    cli("resume", "toy1", "-g", "2", "-q", "--storage", copy_url, cwd=tmp_path)
    info = json.loads(cli("status", "toy1", "--json", "--storage", copy_url, cwd=tmp_path).stdout)
    assert info["generations"] == 6 and info["target_generations"] == 6


def test_tasks_lists_builtins(tmp_path: Path) -> None:
    out = cli("tasks", cwd=tmp_path).stdout
    assert "review" in out and "packing" in out


def test_init_task_scaffold_runs_and_its_test_passes(tmp_path: Path) -> None:
    created = cli("init-task", "widgets", "--dir", str(tmp_path / "widgets"), cwd=tmp_path)
    assert (tmp_path / "widgets" / "task.py").is_file()
    # the seed folder holds the task agent; the installed meta agent is used, not a copy
    assert sorted(p.name for p in (tmp_path / "widgets" / "seed").iterdir()) == ["task_agent.py"]
    # The printed test command works on a plain install: here, pytest cannot be imported.
    (tmp_path / "no_pytest" / "pytest").mkdir(parents=True)
    (tmp_path / "no_pytest" / "pytest" / "__init__.py").write_text(
        "raise ImportError('pytest is not installed')\n"
    )
    printed = next(line for line in created.stdout.splitlines() if "test it:" in line)
    command = shlex.split(printed.split("test it:", 1)[1])
    assert command[1] == str(tmp_path / "widgets" / "test_widgets.py")
    test = subprocess.run(
        command,  # as printed: "python" when that is this interpreter, else its path
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "no_pytest")},
        timeout=300,
    )
    assert test.returncode == 0, test.stdout + test.stderr
    assert "Ran 6 tests" in test.stderr and "OK" in test.stderr
    also = subprocess.run(  # and pytest still collects them
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "widgets")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert also.returncode == 0 and "6 passed" in also.stdout, also.stdout + also.stderr
    url = f"sqlite:///{tmp_path / 'w.db'}"
    cli(
        "run",
        "-t",
        f"{tmp_path / 'widgets' / 'task.py'}:WidgetsTask",
        "-g",
        "2",
        "-q",
        "--storage",
        url,
        cwd=tmp_path,
    )
    refused = cli(
        "init-task", "widgets", "--dir", str(tmp_path / "widgets"), cwd=tmp_path, check=False
    )
    assert refused.returncode != 0 and "not empty" in refused.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "-t", "no-such-task", "-g", "1"), "unknown task 'no-such-task'"),
        (("run", "-t", "review", "--storage", "bogus://x"), "error:"),
        (("status", "no-such-run"), "no database at"),
        (("show", "no-such-run/3"), "no database at"),
        (("run", "-t", TOY, "--config", "/nonexistent.json"), "cannot read config"),
    ],
)
def test_errors_are_one_line_with_nonzero_exit(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    if "--storage" not in args:
        args = (*args, "--storage", url)
    proc = cli(*args, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_missing_runs_and_variants_in_an_existing_database(toy_run: tuple[Path, str]) -> None:
    work, url = toy_run
    for args, message in (
        (("status", "no-such-run"), "no-such-run"),
        (("show", "no-such-run/3"), "no-such-run"),
        (("show", "toy1/99"), "no generation 99"),
        (("show", "garbage"), "bad variant"),
        (("export", "toy1", "--out", "/nonexistent/dir/x.csv"), "No such file or directory"),
    ):
        proc = cli(*args, "--storage", url, cwd=work, check=False)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_read_only_commands_do_not_create_databases(tmp_path: Path) -> None:
    proc = cli("runs", "--storage", f"sqlite:///{tmp_path / 'typo.db'}", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and not (tmp_path / "typo.db").exists()


def test_llm_run_replay_and_budget_resume(tmp_path: Path) -> None:
    import json as _json

    task = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:LLMToyTask"
    script = tmp_path / "replies.json"
    script.write_text(_json.dumps({"replies": ["0.4", "0.5", "0.6", "0.63", "0.62", "0.61"]}))
    url = f"sqlite:///{tmp_path / 'llm.db'}"
    common = ("--storage", url, "-q", "-w", "1", "--subset-size", "10")
    cli(
        "run",
        "-t",
        task,
        "-g",
        "3",
        "-n",
        "orig",
        "--llm",
        f"scripted:{script}",
        *common,
        cwd=tmp_path,
    )
    cli("run", "--replay", "orig", "--storage", url, "-q", cwd=tmp_path)
    first = json.loads(cli("export", "orig", "-f", "json", "--storage", url, cwd=tmp_path).stdout)
    again = json.loads(
        cli("export", "orig-replay", "-f", "json", "--storage", url, cwd=tmp_path).stdout
    )
    strip = [(v["generation"], v["state"], v["program_id"], v["val"]) for v in first["variants"]]
    assert strip == [
        (v["generation"], v["state"], v["program_id"], v["val"]) for v in again["variants"]
    ]
    # A second replay gets its own name; -g replays only the first generations.
    cli("run", "--replay", "orig", "-g", "2", "--storage", url, "-q", cwd=tmp_path)
    partial = json.loads(
        cli("export", "orig-replay-2", "-f", "json", "--storage", url, cwd=tmp_path).stdout
    )
    assert [v["generation"] for v in partial["variants"]] == [0, 1, 2]
    assert strip[:3] == [
        (v["generation"], v["state"], v["program_id"], v["val"]) for v in partial["variants"]
    ]
    # The sandbox is not part of the record: a replay may run in another one.
    cli("run", "--replay", "orig", "--sandbox", "process", "-n", "in-process", *common[:3],
        cwd=tmp_path)  # fmt: skip
    moved = json.loads(
        cli("export", "in-process", "-f", "json", "--storage", url, cwd=tmp_path).stdout
    )
    assert strip == [
        (v["generation"], v["state"], v["program_id"], v["val"]) for v in moved["variants"]
    ]
    for bad, message in (
        (("--llm", "openai:gpt-4o"), "drop --llm"),
        (("-g", "9"), "cannot replay 9"),
        (("--seed", "4", "--task", "review"), "drop --task, --seed"),
    ):
        proc = cli("run", "--replay", "orig", *bad, "--storage", url, cwd=tmp_path, check=False)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    cli(
        "run",
        "-t",
        task,
        "-g",
        "3",
        "-n",
        "tight",
        "--llm",
        f"scripted:{script}",
        "--max-tokens",
        "20",
        *common,
        cwd=tmp_path,
    )
    info = json.loads(cli("status", "tight", "--json", "--storage", url, cwd=tmp_path).stdout)
    assert info["status"] == "stopped"
    llm = info["llm"]
    assert llm["max_tokens"] == 20 and llm["calls"] >= 1
    assert llm["prompt_tokens"] + llm["completion_tokens"] >= 20  # the budget was spent
    shown = cli("status", "tight", "--storage", url, cwd=tmp_path).stdout
    assert "LLM" in shown and "of 20" in shown
    finished = sum(
        n for state, n in info["states"].items() if state not in ("running", "evaluating")
    )
    assert finished < 4  # the seed and fewer than 3 children reached a final state
    cli("resume", "tight", "--max-tokens", "1000", "--storage", url, "-q", cwd=tmp_path)
    info = json.loads(cli("status", "tight", "--json", "--storage", url, cwd=tmp_path).stdout)
    assert info["status"] == "complete" and info["generations"] == 3
    # --no-budget lifts a budget for good.
    cli("resume", "tight", "--no-budget", "-g", "1", "--storage", url, "-q", cwd=tmp_path)
    info = json.loads(cli("status", "tight", "--json", "--storage", url, cwd=tmp_path).stdout)
    assert info["status"] == "complete" and info["generations"] == 4
    from hyperagents.storages import get_storage

    assert get_storage(url).get_run_by_name("tight").config["max_tokens"] is None
