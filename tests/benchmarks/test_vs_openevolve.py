"""Behaviour of ``benchmarks/bench_vs_openevolve.py`` and its parts (``vs_openevolve_lib``,
``openevolve_workload/``), without OpenEvolve or a network: the fake model's edits apply in
both systems' formats, the workload scores as documented, the whole process tree is measured
and left with nothing behind, an installation that cannot work stops the script with the
reason, and the hyperagents runs go through end to end (slow)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path
from typing import Any

import pytest

from hyperagents.tasks import Split, load_task
from hyperagents.testing import FakeReply

from bench_vs_openevolve import Cell, main, per_generation, schedule
from seed_agents import load_meta_agent, write_meta_agent
from vs_openevolve_lib import BenchError, FakeModel, Measured, TreeMeter, ensure_openevolve
from vs_openevolve_runs import Outcome, prepare

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
#: OpenEvolve 0.4.0's default ``diff_pattern`` (``openevolve/config.py``).
OPENEVOLVE_DIFF = re.compile(r"<<<<<<< SEARCH\n(.*?)=======\n(.*?)>>>>>>> REPLACE", re.DOTALL)
AGENT = (BENCHMARKS / "openevolve_workload" / "agent.py").read_text(encoding="utf-8")
X = re.compile(r'"X": ([-0-9.e]+),')


def openevolve_request(code: str, history: str = "") -> dict[str, Any]:
    """A request shaped as OpenEvolve's diff prompt (``prompts/defaults/diff_user.txt``)."""
    user = (
        f"# Current Program Information\n- Fitness: -0.2\n\n# Program Evolution History\n"
        f"{history}\n\n# Current Program\n```python\n{code}\n```\n\n# Task\nSuggest improvements"
    )
    return {
        "messages": [{"role": "system", "content": "You are"}, {"role": "user", "content": user}]
    }


def x_of(code: str) -> float:
    match = X.search(code)
    assert match is not None
    return float(match.group(1))


def apply_openevolve(code: str, reply: str) -> str:
    """Apply a reply as OpenEvolve does: each SEARCH part replaced where it occurs."""
    blocks = OPENEVOLVE_DIFF.findall(reply)
    assert blocks, reply
    for search, replace in blocks:
        search, replace = search.rstrip("\n"), replace.rstrip("\n")
        assert search in code
        code = code.replace(search, replace, 1)
    return code


# -- the fake model -------------------------------------------------------------------------


def test_openevolve_edits_apply_and_move_x() -> None:
    model = FakeModel()
    reply = model(openevolve_request(AGENT))
    assert isinstance(reply, str)
    child = apply_openevolve(AGENT, reply)
    assert 0.01 <= abs(x_of(child) - 0.5) <= 0.2 + 1e-6
    compile(child, "child.py", "exec")
    # The same prompt again (the parent chosen again) gets another edit, and a fresh model
    # replays the same sequence: a run repeated gets the same replies.
    again = model(openevolve_request(AGENT))
    assert again != reply
    fresh = FakeModel()
    assert [fresh(openevolve_request(AGENT)) for _ in range(2)] == [reply, again]


def test_openevolve_edit_targets_the_current_program_not_the_history() -> None:
    other = AGENT.replace('"X": 0.5,', '"X": 1.25,')
    history = f"## Top Performing Programs\n```python\n{other}\n```"
    reply = FakeModel()(openevolve_request(AGENT, history))
    assert isinstance(reply, str)
    assert '"X": 0.5,' in reply and '"X": 1.25,' not in reply


def test_the_llm_meta_agent_applies_the_edit_and_gets_a_review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "task_agent.py").write_text(AGENT, encoding="utf-8")
    write_meta_agent(ws, "llm")
    model = FakeModel()
    purposes: list[str] = []

    def complete(messages: Any, *, purpose: str = "", **_: Any) -> str:
        purposes.append(purpose)
        reply = model({"messages": messages})
        assert isinstance(reply, str), reply
        return reply

    module = types.ModuleType("llm")
    module.complete = complete  # type: ignore[attr-defined]
    module.LLMError = RuntimeError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llm", module)
    monkeypatch.chdir(ws)
    info = load_meta_agent(ws).improve(str(ws), {"task": {"name": "tune_x"}, "generation": 1})
    assert info["applied"] == 1 and info["files"] == ["task_agent.py"], info
    assert info["review"]["issue_type"] == "none"
    assert purposes == ["meta:propose", "meta:review"]
    assert 0.01 <= abs(x_of((ws / "task_agent.py").read_text()) - 0.5) <= 0.2 + 1e-6


def test_an_unknown_request_is_an_error_not_an_edit() -> None:
    reply = FakeModel()({"messages": [{"role": "user", "content": "hello"}]})
    assert isinstance(reply, FakeReply) and reply.status == 500


# -- the workload ----------------------------------------------------------------------------


def test_the_workload_task_and_evaluator_score_alike(tmp_path: Path) -> None:
    workload = prepare(tmp_path, 20.0)
    task = load_task(f"{workload / 'task.py'}:TuneXTask")
    (val,) = task.instances(Split.VAL)
    assert task.instances(Split.TRAIN) == [] and task.instances(Split.TEST) == []
    assert val.inputs == {"busy_ms": 20.0}
    assert task.checked_score(val, 0.7).value == 0.0
    assert task.checked_score(val, 0.5).value == pytest.approx(-0.2)
    for bad in ("0.7", None, True, float("nan"), 1e300):
        assert task.checked_score(val, bad).value == -10.0
    program = task.seed_program()
    assert program["task_agent.py"].decode() == AGENT and "meta_agent.py" in program

    sys.path.insert(0, str(workload))
    try:
        evaluator = __import__("evaluator")
        start = time.perf_counter()
        metrics = evaluator.evaluate(str(workload / "agent.py"))
        spun = time.perf_counter() - start
    finally:
        sys.path.remove(str(workload))
        sys.modules.pop("evaluator", None)
    assert metrics == {"combined_score": pytest.approx(-0.2)}
    assert spun >= 0.02  # one evaluation spins at least E = 20 ms


# -- measuring and cleaning up ---------------------------------------------------------------

_MEASURE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from vs_openevolve_lib import TreeMeter, become_subreaper, run_measured

    assert become_subreaper()
    meter = TreeMeter(prefer_cgroup=sys.argv[1] == "cgroup")
    tmp = Path(sys.argv[2])
    burn = "import time\\ne = time.process_time() + 0.3\\nwhile time.process_time() < e: pass\\n"
    # The command leaves a grandchild in a session of its own that burns CPU and then sleeps:
    # an orphan once the command exits, or a process still running at the time limit.
    script = (
        f"setsid {sys.executable} -c '{burn}import time; time.sleep(600)' & "
        f"echo $! > {tmp}/pid; sleep {sys.argv[3]}"
    )
    cmd = ["/bin/sh", "-c", script]
    m = run_measured(cmd, meter=meter, cwd=tmp, env=os.environ, log=tmp / "log",
                     timeout=float(sys.argv[4]))
    pid = int((tmp / "pid").read_text())
    alive = Path(f"/proc/{pid}").exists()
    print(json.dumps({"method": meter.method, "cpu": m.cpu, "timed_out": m.timed_out,
                      "returncode": m.returncode, "alive": alive}))
    """
)


@pytest.mark.parametrize("method", ["cgroup", "rusage"])
@pytest.mark.parametrize("ending", ["exits", "times_out"])
def test_the_whole_tree_is_measured_and_nothing_is_left(
    tmp_path: Path, method: str, ending: str
) -> None:
    """The grandchild's CPU counts (it outlives the command, or runs at the time limit), and
    it is gone afterwards; the time limit kills and says so."""
    sleep, limit = ("3", "60") if ending == "exits" else ("600", "3")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCHMARKS), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, method, str(tmp_path), sleep, limit],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    if method == "cgroup" and not result["method"].startswith("cgroup"):
        pytest.skip("no writable cgroup v2 here")
    assert result["cpu"] >= 0.25, result
    assert result["alive"] is False
    assert result["timed_out"] is (ending == "times_out")
    assert (result["returncode"] == 0) is (ending == "exits")


def test_tree_meter_says_how_it_measures() -> None:
    assert TreeMeter(prefer_cgroup=False).method.startswith("RUSAGE_CHILDREN")


# -- installation ----------------------------------------------------------------------------


def test_a_complete_environment_is_reused_without_running_anything(tmp_path: Path) -> None:
    tag = f"py{sys.version_info.major}.{sys.version_info.minor}"
    venv = tmp_path / f"openevolve-0.4.0-{tag}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / ".complete").write_text("openevolve==0.4.0\n")
    assert ensure_openevolve(tmp_path, "0.4.0", python="/nonexistent") == venv / "bin" / "python"


def test_an_environment_that_cannot_be_made_says_why(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="could not start"):
        ensure_openevolve(tmp_path, "0.4.0", python=str(tmp_path / "no-python"))
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


@pytest.mark.slow
def test_without_an_index_the_script_stops_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--cache-dir", str(tmp_path), "--pip-arg=--no-index", "--generations", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot install OpenEvolve 0.4.0" in err and "openevolve==0.4.0" in err
    # No half-made environment is left to be reused.
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


# -- the schedule, the figures, a real run -----------------------------------------------------


def test_systems_alternate_and_their_order_rotates() -> None:
    args = argparse.Namespace(
        repetitions=2, eval_ms=[50.0], workers=[1], systems=["openevolve", "offline", "llm"]
    )
    order = [system for _, _, _, system in schedule(args)]
    assert order == ["openevolve", "offline", "llm", "offline", "llm", "openevolve"]


def test_the_startup_run_is_subtracted() -> None:
    def outcome(generations: int, wall: float, cpu: float) -> Outcome:
        out = Outcome("offline", 0.0, 1, generations)
        out.measured = Measured(0, wall, cpu, False)
        return out

    cell = Cell(full=[outcome(10, 6.0, 3.0)], startup=[outcome(0, 1.0, 1.0)])
    rates, cpus = per_generation(cell, 10)
    assert rates == [pytest.approx(2.0)] and cpus == [pytest.approx(0.2)]
    for whole in (per_generation(cell, 10, whole=True), per_generation(Cell(full=cell.full), 10)):
        assert whole == ([pytest.approx(10 / 6)], [pytest.approx(0.3)])
    failed = outcome(0, 1.0, 1.0)
    failed.error = "exit 1"
    assert per_generation(Cell(full=cell.full, startup=[failed]), 10) == ([], [])


@pytest.mark.slow
def test_hyperagents_runs_go_through() -> None:
    """Both hyperagents systems run their generations on the workload; the LLM meta agent's
    edits (one proposal and one review per generation) are kept. (In a process of its own:
    the script makes itself the reaper of orphaned processes.)"""
    args = ["--generations", "2", "--repetitions", "1", "--eval-ms", "0", "--workers", "1",
            "--systems", "offline", "llm", "--no-startup", "--run-timeout", "300"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_vs_openevolve.py"), *args],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    lines = {line.split()[0]: line for line in out.splitlines() if " gen  wall " in line}
    assert "kept 2 " in lines["offline"] and "llm calls 0 " in lines["offline"]
    assert "kept 2 " in lines["llm"] and "llm calls 4 " in lines["llm"]
    assert re.search(r"\| 0 ms \| 1 \| llm \| [0-9.]+ \| n/a \| [0-9]+ \| ", out), out
