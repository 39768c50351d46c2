"""``hyperagents test-task``: a task's checks and its seed agent on val, without a run."""

from __future__ import annotations

import re
from pathlib import Path

from hyperagents.tasks import scaffold_task

from cli_helpers import invoke_wide, wrapped_task


def invoke(*args: str) -> tuple[int, str]:
    return invoke_wide(*args)


def test_a_scaffolded_task_passes_and_its_seed_is_scored_on_val(tmp_path: Path) -> None:
    folder = scaffold_task("disc", tmp_path / "disc")
    code, out = invoke("test-task", f"{folder / 'task.py'}:DiscTask", "--sandbox", "process")
    assert code == 0, out
    assert "splits │ ok │ train 200, val 100, test 100" in out
    assert "FAILED" not in out
    assert "seed agent on val: 0.7600 (100 instances, 0 errors, 0 timeouts" in out
    assert "val-0002: predicted outside, expected inside" in out  # a failing instance


def test_options_reach_the_task(tmp_path: Path) -> None:
    code, out = invoke("test-task", "review", "--task-option", "n_val=7", "--no-seed")
    assert code == 0, out
    assert "task review (n_val=7)" in out and "train 400, val 7, test 200" in out
    assert "seed agent" not in out  # --no-seed runs no agent code
    code, out = invoke("test-task", "review", "--task-option", "n_vall=7", "--no-seed")
    assert code == 1 and "takes no option 'n_vall' (did you mean 'n_val'?" in out


def test_a_failing_check_or_an_invalid_seed_exits_1(tmp_path: Path) -> None:
    folder = scaffold_task("disc", tmp_path / "disc")
    task_py = folder / "task.py"
    task_py.write_text(
        task_py.read_text().replace(
            "if output not in", "if output.strip() not in"
        )  # raises on None
    )
    spec = f"{task_py}:DiscTask"
    code, out = invoke("test-task", spec, "--no-seed")
    assert code == 1
    assert "score takes any output │ FAILED │ on None: task 'disc': score() raised" in out
    (folder / "seed" / "task_agent.py").write_text("def solve(inputs:\n")
    code, out = invoke("test-task", spec, "--sandbox", "process")
    assert code == 1 and "seed program: INVALID (task_agent.py" in out


def test_a_wrapped_folder_task_prints_its_metric_as_the_folder_does(tmp_path: Path) -> None:
    folder = str(Path(__file__).resolve().parents[1] / "tasks" / "seed_folders" / "word_count")
    said = []
    for spec in (folder, wrapped_task(tmp_path, folder)):
        code, out = invoke("test-task", spec, "--sandbox", "process")
        assert code == 0, out
        said.append(re.findall(r"\w+ = [\d.]+ as benchmark.py printed it \([^)]*\)", out))
    assert said[0] == said[1] == ["accuracy = 0.5 as benchmark.py printed it (higher is better)"]
