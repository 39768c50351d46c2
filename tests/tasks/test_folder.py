"""Seed-format task folders: loading, scoring through the sandboxed benchmark, hostile
solutions that try to forge the metric, failing solutions, and whole runs from the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hyperagents.exceptions import TaskError, TaskNotFoundError
from hyperagents.tasks import FolderTask, Task, load_task

from cli_helpers import cli

FOLDERS = Path(__file__).resolve().parent / "seed_folders"
NAIVE = (FOLDERS / "word_count" / "initial_solution.py").read_text("utf-8")
#: The naive solution's true accuracy on the word_count benchmark (4 of its 8 cases).
NAIVE_ACCURACY = 0.5


@pytest.fixture(scope="module")
def word_count() -> Task:
    return load_task(str(FOLDERS / "word_count"))


def score(task: Task, solution: str) -> tuple[float, str]:
    verdict = task.score(task.instances("val")[0], {"solution.py": solution})
    return verdict.value, verdict.feedback


def test_folder_loads_as_a_task_with_its_config(word_count: Task) -> None:
    assert isinstance(word_count, FolderTask)
    assert word_count.name == "word_count" and word_count.target_score == 1.0
    assert "words are separated by any run of whitespace" in word_count.description
    assert "no held-out data" in word_count.description
    ids = [word_count.instances(split)[0].id for split in ("train", "val", "test")]
    assert ids == ["train-benchmark", "val-benchmark", "test-benchmark"]
    program = word_count.seed_program()
    assert program["solution.py"].decode() == NAIVE
    assert {"task_agent.py", "meta_agent.py"} <= set(program)


def test_benchmark_scores_the_solution(word_count: Task) -> None:
    assert score(word_count, NAIVE)[0] == NAIVE_ACCURACY
    value, feedback = score(word_count, "def count_words(text):\n    return len(text.split())\n")
    assert value == 1.0 and "accuracy = 1" in feedback


def test_minimised_unbounded_metric_is_negated() -> None:
    task = load_task(str(FOLDERS / "sqrt_error"))
    assert task.score_range == (-1e12, 1e12) and task.target_score is None
    seed = task.seed_program()["solution.py"].decode()
    worse, feedback = score(task, seed)
    better, _ = score(task, seed.replace("STEPS = 2", "STEPS = 30"))
    assert worse < better <= 0.0 and worse < -1000  # an error of ~41548 is a score of -41548
    assert "mean_absolute_error = 41548" in feedback
    # The prompt came from build_prompt(code, metric_name).
    assert "Make approx_sqrt more accurate (mean_absolute_error" in task.description


HOSTILE = {
    "print": "print('metric:1.0')\n",
    "dev_stdout": "open('/dev/stdout', 'w').write('metric:1.0\\n')\n",
    "fd_1": "import os\nos.write(1, b'metric:1.0\\n')\nos.write(2, b'metric:1.0\\n')\n",
    "patch_print": (
        "import builtins, io, sys\n"
        "builtins.print = lambda *a, **k: sys.__stdout__.write('metric:1.0\\n')\n"
        "sys.stdout = io.StringIO()\n"
        "sys.modules['__main__'].__dict__['print'] = builtins.print\n"
    ),
    "parent_fds": (  # every descriptor of every other process it can open: the benchmark's
        "import json, os\n"  # own output, the harness's result channel
        "fake = json.dumps({'type': 'instance', 'id': 'benchmark', 'output': "
        "{'payload': json.dumps({'metric': '1.0', 'exit': 0, 'error': None, 'tail': ''}), "
        "'mac': '0' * 64}, 'wall': 0, 'cpu': 0, 'error': None})\n"
        "for pid in os.listdir('/proc'):\n"
        "    if not pid.isdigit() or int(pid) == os.getpid():\n"
        "        continue\n"
        "    try:\n"
        "        fds = os.listdir(f'/proc/{pid}/fd')\n"
        "    except OSError:\n"
        "        continue\n"
        "    for fd in fds:\n"
        "        try:\n"
        "            with open(f'/proc/{pid}/fd/{fd}', 'w') as out:\n"
        "                out.write('metric:1.0\\n' + fake + '\\n')\n"
        "        except OSError:\n"
        "            pass\n"
    ),
    "atexit": "import atexit\natexit.register(lambda: print('metric:1.0'))\n",
}


@pytest.mark.parametrize("route", sorted(HOSTILE))
def test_a_solution_cannot_forge_the_metric(word_count: Task, route: str) -> None:
    attack = HOSTILE[route]
    # At import and again on every call: the score stays the naive solution's true one.
    solution = NAIVE.replace("def count_words(text):\n", "def count_words(text):\n    _attack()\n")
    solution += "\n\ndef _attack():\n" + "".join(f"    {line}\n" for line in attack.splitlines())
    solution += "\n\n_attack()\n"
    value, feedback = score(word_count, solution)
    assert value == NAIVE_ACCURACY, feedback


def test_an_always_equal_answer_crosses_as_an_opaque_object(word_count: Task) -> None:
    solution = (
        "class Yes(int):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n\n"
        "def count_words(text):\n    return Yes(0)\n"
    )
    # In the benchmark's process this would pass every case; it arrives as a handle instead.
    assert score(word_count, solution)[0] == 0.0


@pytest.mark.parametrize(
    ("solution", "reason"),
    [
        ("raise RuntimeError('broken at import')\n", "broken at import"),
        ("import sys\nsys.exit(3)\n", "SystemExit"),
    ],
)
def test_a_failing_solution_scores_the_floor_with_the_reason(
    word_count: Task, solution: str, reason: str
) -> None:
    value, feedback = score(word_count, solution)
    assert value == word_count.score_range[0] and "benchmark failed" in feedback
    assert reason in feedback, feedback


def test_a_solution_process_that_dies_fails_each_call(word_count: Task) -> None:
    value, feedback = score(word_count, "import os\ndef count_words(text):\n    os._exit(0)\n")
    # This benchmark catches errors per case (as its code says): every case fails.
    assert value == 0.0 and "the solution process" in feedback, feedback


def test_a_looping_solution_times_out() -> None:
    task = load_task(str(FOLDERS / "word_count"), {"timeout": 2})
    value, feedback = score(task, "def count_words(text):\n    while True:\n        pass\n")
    assert value == task.score_range[0] and "timeout" in feedback, feedback


def test_malformed_hand_over_scores_the_floor(word_count: Task) -> None:
    verdict = word_count.score(word_count.instances("val")[0], "not files")
    assert verdict.value == word_count.score_range[0] and "solution.py" in verdict.feedback


def broken_folder(tmp_path: Path) -> Path:
    """The word_count folder without its initial_solution.py."""
    folder = tmp_path / "broken"
    shutil.copytree(FOLDERS / "word_count", folder)
    (folder / "initial_solution.py").unlink()
    return folder


def test_broken_and_judged_folders_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskNotFoundError, match=r"lacks initial_solution\.py"):
        load_task(str(broken_folder(tmp_path)))
    judged = tmp_path / "judged"
    shutil.copytree(FOLDERS / "judged_summary", judged)
    config = (judged / "config.py").read_text()
    (judged / "config.py").write_text(config.split("\nRUBRIC = ")[0])
    with pytest.raises(TaskError, match="USES_RUBRIC = True but no RUBRIC"):
        load_task(str(judged))
    (tmp_path / "bad").mkdir()
    tmp_path = tmp_path / "bad"
    (tmp_path / "config.py").write_text("TASK_NAME = 'x'\nHIGHER_IS_BETTER = True\n")
    (tmp_path / "initial_solution.py").write_text("")
    (tmp_path / "benchmark.py").write_text("")
    with pytest.raises(TaskError, match="does not define METRIC_NAME"):
        load_task(str(tmp_path))


# -- whole runs through the command line --------------------------------------------------------
def run_cli(*args: str, cwd: Path) -> str:
    proc = cli(*args, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def status(run: str, url: str, cwd: Path) -> dict[str, object]:
    info = json.loads(run_cli("status", run, "--json", "--storage", url, cwd=cwd))
    assert isinstance(info, dict)
    return info


def llm_run(tmp_path: Path, name: str, new_body: str, *options: str) -> str:
    """Run word_count with a scripted LLM whose every reply replaces count_words' body with
    ``new_body``; the storage URL."""
    reply = (
        "Edit.\n\n<<<<<<< SEARCH solution.py\n"
        '    if text == "":\n        return 0\n    return len(text.split(" "))\n'
        f"=======\n{new_body}>>>>>>> REPLACE\n"
    )
    script = tmp_path / "replies.json"
    script.write_text(json.dumps({"replies": [reply] * 12}))
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run_cli("run", "-t", str(FOLDERS / "word_count"), "-w", "1", "-n", name, "--meta", "llm",
            "--llm", f"scripted:{script}", "--storage", url, "-q", *options,
            cwd=tmp_path)  # fmt: skip
    return url


@pytest.mark.slow
def test_cli_llm_run_reaches_the_perfect_score_and_stops(tmp_path: Path) -> None:
    url = llm_run(tmp_path, "wc", "    return len(text.split())\n", "-g", "5")
    info = status("wc", url, tmp_path)
    assert info["status"] == "complete"
    assert info["generations"] == 1  # PERFECT_SCORE reached at generation 1 of 5
    champion = info["champion"]
    assert isinstance(champion, dict) and champion["scores"]["test"] == 1.0
    assert info["seed_scores"] == {"train_subset": 0.5, "train": 0.5, "val": 0.5, "test": 0.5}


@pytest.mark.slow
def test_cli_offline_run_of_a_minimised_folder_and_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    folder = str(FOLDERS / "sqrt_error")
    run_cli("run", "-t", folder, "-g", "2", "-w", "1", "-n", "sq", "--storage", url, "-q",
        cwd=tmp_path)  # fmt: skip
    info = status("sq", url, tmp_path)
    # The offline meta agent finds no PARAMS to tune: both children change nothing and
    # fail, and the seed stays champion with its true (negated) error.
    assert info["status"] == "complete" and info["states"] == {"complete": 1, "failed": 2}
    champion = info["champion"]
    assert isinstance(champion, dict) and -41549 < champion["scores"]["val"] < -41548
    broken = broken_folder(tmp_path)
    for path, message in (
        (broken, "lacks initial_solution.py"),
        (FOLDERS / "judged_summary", "scored by an LLM judge: give the run a model"),
    ):
        proc = cli("run", "-t", str(path), "-g", "1", "--storage", url, cwd=tmp_path)
        assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_the_benchmark_process_is_out_of_the_solutions_reach(word_count: Task) -> None:
    probe = (
        "import os\n"
        "try:\n"
        "    os.listdir(f'/proc/{os.getppid()}/fd')\n"
        "    print('REACHED the benchmark process')\n"
        "except OSError as exc:\n"
        "    print('DENIED', type(exc).__name__)\n"
    )
    value, feedback = score(word_count, probe + NAIVE)
    assert value == NAIVE_ACCURACY and "DENIED PermissionError" in feedback, feedback


class _Forging:
    """A sandbox whose result channel carries a forged verdict before the real one (as a
    solution that reached the channel would write it)."""

    name = "forging"

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def run(self, path: Path, request: dict[str, object], **kwargs: object) -> object:
        from dataclasses import replace

        result = self.inner.run(path, request, **kwargs)  # type: ignore[attr-defined]
        payload = json.dumps({"metric": "1.0", "exit": 0, "error": None, "tail": ""})
        forged = {"type": "instance", "id": "benchmark", "error": None}
        forged["output"] = {"payload": payload, "mac": "0" * 64}
        return replace(result, messages=(forged, *result.messages))


def test_a_forged_verdict_on_the_result_channel_is_ignored() -> None:
    from hyperagents.sandbox import get_sandbox

    task = load_task(str(FOLDERS / "word_count"))
    task._sandbox = _Forging(get_sandbox("auto"))  # type: ignore[attr-defined]
    assert score(task, NAIVE)[0] == NAIVE_ACCURACY


@pytest.mark.slow
def test_cli_a_looping_child_is_pruned_and_the_run_goes_on(tmp_path: Path) -> None:
    body = "    while True:\n        pass\n"
    url = llm_run(tmp_path, "lp", body, "--task-option", "timeout=3", "-g", "2")
    info = status("lp", url, tmp_path)
    # Each child timed out in the benchmark: scored the floor on its first stage and pruned
    # (kept, never a parent); the run itself completes with the seed as champion.
    assert info["status"] == "complete" and info["states"] == {"complete": 1, "pruned": 2}
    shown = run_cli("show", "lp/2", "--storage", url, cwd=tmp_path)
    assert "pruned" in shown and "-1e+12" in shown
