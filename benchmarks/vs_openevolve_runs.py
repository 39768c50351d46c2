"""One run of one system for ``bench_vs_openevolve.py``: its folder, its command, its result.

Each run gets a fresh temporary folder: a copy of ``openevolve_workload/`` with its
``workload.json`` in ``workload/`` (for hyperagents the task's folder, which its sandbox sees),
and beside it the run's own files (OpenEvolve's configuration and output, hyperagents'
database, the output log). The folder is removed afterwards unless asked to keep it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hyperagents import Run
from hyperagents.testing import FakeOpenAIServer

from vs_openevolve_lib import BenchError, FakeModel, Measured, TreeMeter, run_measured

__all__ = ["MODEL", "SYSTEMS", "Outcome", "Setting", "prepare", "run_one"]

WORKLOAD = Path(__file__).resolve().parent / "openevolve_workload"
SYSTEMS = ("openevolve", "offline", "llm")
MODEL = "fake-model"


@dataclass(frozen=True)
class Setting:
    """What one benchmark invocation shares between its runs."""

    generations: int
    seed: int
    timeout: float
    sandbox: str
    keep: bool
    openevolve: Path | None
    server: FakeOpenAIServer
    meter: TreeMeter
    reaper: bool


@dataclass
class Outcome:
    """One run of one system: what it did and what it cost."""

    system: str
    eval_ms: float
    workers: int
    generations: int
    measured: Measured | None = None
    done: int = 0
    children: int = 0
    best: float | None = None
    llm_calls: int = 0
    load: tuple[float, float] = (0.0, 0.0)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# -- one run ----------------------------------------------------------------------------------


def prepare(folder: Path, eval_ms: float) -> Path:
    """Copy the workload into ``folder/workload`` and fix its evaluation time there.

    Returns:
        The workload's folder: what the hyperagents sandbox sees of the run's files (the task's
        folder), never the database beside it.
    """
    workload = folder / "workload"
    workload.mkdir()
    for name in ("agent.py", "evaluator.py", "task.py"):
        shutil.copyfile(WORKLOAD / name, workload / name)
    (workload / "workload.json").write_text(json.dumps({"eval_ms": eval_ms}), encoding="utf-8")
    return workload


def openevolve_command(folder: Path, out: Outcome, setting: Setting) -> list[str]:
    """Write OpenEvolve's configuration into ``folder``; the command that runs it."""
    assert setting.openevolve is not None
    config = {
        "max_iterations": out.generations,
        "checkpoint_interval": max(1, out.generations),
        "random_seed": setting.seed,
        "log_level": "WARNING",
        "llm": {
            "api_base": setting.server.base_url,
            "api_key": "bench",
            "models": [{"name": MODEL, "weight": 1.0}],
            "timeout": 60,
        },
        "evaluator": {
            "timeout": int(setting.timeout),
            "cascade_evaluation": False,
            "parallel_evaluations": out.workers,
        },
    }
    path = folder / "config.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    workload = folder / "workload"
    return [
        str(setting.openevolve), "-m", "openevolve.cli",
        str(workload / "agent.py"), str(workload / "evaluator.py"),
        "--config", str(path), "--output", str(folder / "output"),
    ]  # fmt: skip


def hyperagents_command(folder: Path, out: Outcome, setting: Setting) -> list[str]:
    """The ``hyperagents run`` command of ``out.system`` (``offline`` or ``llm``)."""
    cmd = [
        sys.executable, "-m", "hyperagents", "run",
        "--task", f"{folder / 'workload' / 'task.py'}:TuneXTask",
        "--meta", out.system, "-g", str(out.generations), "-w", str(out.workers),
        "-s", str(setting.seed), "--storage", f"sqlite:///{folder / 'run.db'}",
        "--name", "bench", "--sandbox", setting.sandbox, "--quiet",
    ]  # fmt: skip
    if out.system == "llm":
        cmd += ["--llm", f"{setting.server.base_url}#{MODEL}"]
    return cmd


def openevolve_result(folder: Path, out: Outcome) -> None:
    """Read OpenEvolve's iterations, the children it kept and its best score."""
    info = folder / "output" / "best" / "best_program_info.json"
    if info.is_file():
        out.best = json.loads(info.read_text())["metrics"].get("combined_score")
    checkpoints = sorted(
        (folder / "output" / "checkpoints").glob("checkpoint_*"),
        key=lambda p: int(p.name.rpartition("_")[2]),
    )
    if checkpoints:  # one, at the last iteration (checkpoint_interval = generations)
        out.done = int(checkpoints[-1].name.rpartition("_")[2])
        out.children = len(list((checkpoints[-1] / "programs").glob("*.json"))) - 1


def hyperagents_result(folder: Path, out: Outcome) -> None:
    """Read the run's generations, its complete children and best val score."""
    run = Run.load("bench", storage=f"sqlite:///{folder / 'run.db'}")
    try:
        summary = run.summary()
    finally:
        run.storage.close()
    out.done = int(summary["generations"])
    out.children = int(summary["states"].get("complete", 0)) - 1
    out.best = summary["best_scores"].get("val")


def environment(system: str, workspaces: Path) -> dict[str, str]:
    """The environment of a run: this one's, without what could steer the other system, and
    for hyperagents its sandbox workspaces in ``workspaces`` (removed with the run's folders,
    whatever state a run that was killed left them in)."""
    env = dict(os.environ)
    env.pop("HYPERAGENTS_STORAGE", None)
    if system == "openevolve":
        env.pop("PYTHONPATH", None)
    else:
        env["HYPERAGENTS_WORKSPACE_DIR"] = str(workspaces)
    return env


def _workspaces() -> Path:
    """A fresh folder for a run's sandbox workspaces: in ``/dev/shm`` where the engine would
    put them by default (RAM-backed), else in the system's temporary folder."""
    shm = Path("/dev/shm")
    ram = shm.is_dir() and os.access(shm, os.W_OK | os.X_OK)
    return Path(tempfile.mkdtemp(prefix="bench-ws-", dir=shm if ram else None))


def run_one(out: Outcome, setting: Setting) -> Outcome:
    """Run ``out.system`` once in fresh temporary folders, filling in ``out``."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{out.system}-"))
    workspaces = _workspaces()
    try:
        prepare(folder, out.eval_ms)
        if out.system == "openevolve":
            cmd = openevolve_command(folder, out, setting)
        else:
            cmd = hyperagents_command(folder, out, setting)
        setting.server.set_handler(FakeModel())  # each run starts with the same model
        calls = setting.server.calls
        load = os.getloadavg()[0]
        out.measured = run_measured(
            cmd,
            meter=setting.meter,
            cwd=folder,
            env=environment(out.system, workspaces),
            log=folder / "output.log",
            timeout=setting.timeout,
        )
        out.load = (load, os.getloadavg()[0])
        out.llm_calls = setting.server.calls - calls
        setting.server.requests.clear()  # bodies of past runs: memory only
        setting.server.request_headers.clear()
        check(folder, out)
    except Exception as exc:  # a failed run is reported; the others go on
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(workspaces, ignore_errors=True)
        if setting.keep:
            print(f"  (kept {folder})")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return out


def check(folder: Path, out: Outcome) -> None:
    """Read the run's result; :class:`BenchError` if it did not finish its generations."""
    measured = out.measured
    assert measured is not None
    log = (folder / "output.log").read_text(errors="replace").strip().splitlines()
    if measured.timed_out:
        raise BenchError(f"killed after {measured.wall:.0f} s: " + " | ".join(log[-5:]))
    if measured.returncode != 0:
        raise BenchError(f"exit {measured.returncode}: " + " | ".join(log[-5:]))
    if out.system == "openevolve":
        openevolve_result(folder, out)
    else:
        hyperagents_result(folder, out)
    if out.done != out.generations:
        raise BenchError(f"{out.done} of {out.generations} generations done")
    if out.generations and out.children < 1:
        raise BenchError("no child was kept: did the fake model's edits apply?")
