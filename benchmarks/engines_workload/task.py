"""The workload of ``bench_engines.py`` (and of the engines' process test): one evaluation of a
set length per child.

The seed program is ``agent.py`` (as ``task_agent.py``) with the offline seed meta agent. The
one instance is in ``val`` (``train`` and ``test`` are empty), so a child is evaluated once. How
long an evaluation lasts and how it spends the time are read from the environment of the
engine process, so every engine of a run shares them:

* ``HYPERAGENTS_ENGINES_WORKLOAD_MS``: milliseconds per evaluation (default 100);
* ``HYPERAGENTS_ENGINES_WORKLOAD_MODE``: ``wait`` (sleep; default) or ``busy`` (burn CPU).

The score is ``-abs(X - 0.7)`` (at least -10).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from hyperagents.improvers import meta_agent_files
from hyperagents.program import Program
from hyperagents.tasks import Instance, Score, Split, Task

_HERE = Path(__file__).resolve().parent
MS_ENV = "HYPERAGENTS_ENGINES_WORKLOAD_MS"
MODE_ENV = "HYPERAGENTS_ENGINES_WORKLOAD_MODE"
_TARGET = 0.7
_FLOOR = -10.0


class EnginesWorkload(Task):
    """Return one number ``X`` after a set wait; the score is ``-abs(X - 0.7)``."""

    name = "engines_workload"
    description = "Return one number X; the score is -abs(X - 0.7) (higher is better)."
    score_range = (_FLOOR, 0.0)
    instance_timeout = 60.0

    def __init__(self) -> None:
        mode = os.environ.get(MODE_ENV, "wait")
        if mode not in ("wait", "busy"):
            raise ValueError(f"{MODE_ENV} must be 'wait' or 'busy', not {mode!r}")
        inputs = {"ms": float(os.environ.get(MS_ENV, "100")), "mode": mode}
        self._val = [Instance("val-0", inputs, _TARGET)]

    def instances(self, split: Split) -> list[Instance]:
        return list(self._val) if Split(split) is Split.VAL else []

    def score(self, instance: Instance, output: Any) -> Score:
        if isinstance(output, bool) or not isinstance(output, int | float):
            return Score(_FLOOR, f"output {output!r} is not a number")
        if not math.isfinite(output):
            return Score(_FLOOR, f"output {output!r} is not finite")
        value = max(_FLOOR, -abs(float(output) - _TARGET))
        return Score(value, f"X = {output!r}: score {value:.6g}")

    def seed_program(self) -> Program:
        agent = (_HERE / "agent.py").read_text(encoding="utf-8")
        return Program({"task_agent.py": agent, **(meta_agent_files("offline") or {})})
