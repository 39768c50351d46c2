"""The hyperagents side of ``bench_vs_openevolve.py``: a task with one evaluation.

Its seed program is ``agent.py`` (as ``task_agent.py``) with the offline seed meta agent (the
benchmark's ``--meta`` picks the one each run starts from). The one instance is in ``val``:
``train`` and ``test`` are empty, so a child is evaluated once (the train stages have nothing to
run), as OpenEvolve evaluates each program once. Scoring is :func:`evaluator.score_of`, the
function OpenEvolve's evaluator uses.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from hyperagents.improvers import meta_agent_files
from hyperagents.program import Program
from hyperagents.tasks import Instance, Score, Split, Task

_HERE = Path(__file__).resolve().parent


def _evaluator() -> ModuleType:
    """``evaluator.py`` beside this file (a task file is imported by path, not as a package)."""
    spec = importlib.util.spec_from_file_location("_bench_oe_evaluator", _HERE / "evaluator.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TuneXTask(Task):
    """Return one number ``X``; the score is ``-abs(X - 0.7)``."""

    name = "tune_x"
    description = "Return one number X; the score is -abs(X - 0.7) (higher is better)."
    score_range = (-10.0, 0.0)  # evaluator.FLOOR to a perfect X
    instance_timeout = 60.0

    def __init__(self) -> None:
        self._evaluator = _evaluator()
        busy = {"busy_ms": float(self._evaluator.eval_ms())}
        self._val = [Instance("val-0", busy, self._evaluator.TARGET)]

    def instances(self, split: Split) -> list[Instance]:
        return list(self._val) if Split(split) is Split.VAL else []

    def score(self, instance: Instance, output: Any) -> Score:
        value, feedback = self._evaluator.score_of(output)
        return Score(value, feedback)

    def seed_program(self) -> Program:
        agent = (_HERE / "agent.py").read_text(encoding="utf-8")
        return Program({"task_agent.py": agent, **(meta_agent_files("offline") or {})})
