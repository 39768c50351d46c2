"""OpenEvolve's evaluator for ``bench_vs_openevolve.py``, and the workload both systems share.

The benchmark copies this folder into a fresh temporary directory and writes ``workload.json``
beside it (``{"eval_ms": E}``), so a run's workload is fixed by its own files. The hyperagents
task (``task.py``) scores with the same :func:`score_of`. Standard library only: OpenEvolve runs
it in its own virtual environment.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

#: The score's floor: a non-number or a wild ``X`` scores this.
FLOOR = -10.0
TARGET = 0.7


def eval_ms() -> float:
    """Milliseconds of busy loop in one evaluation (``workload.json`` beside this file)."""
    data = json.loads(Path(__file__).with_name("workload.json").read_text(encoding="utf-8"))
    return float(data["eval_ms"])


def score_of(output: Any) -> tuple[float, str]:
    """The score of an evaluation's output, ``-abs(X - 0.7)`` (at least :data:`FLOOR`), and
    a line of feedback."""
    if isinstance(output, bool) or not isinstance(output, int | float):
        return FLOOR, f"output {output!r} is not a number"
    if not math.isfinite(output):
        return FLOOR, f"output {output!r} is not finite"
    value = max(FLOOR, -abs(float(output) - TARGET))
    return value, f"X = {output!r}: score {value:.6g}"


def evaluate(program_path: str) -> dict[str, float]:
    """OpenEvolve's entry point: import the program, run one evaluation, score it."""
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    if spec is None or spec.loader is None:
        return {"combined_score": FLOOR}
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    score, _feedback = score_of(module.solve({"busy_ms": eval_ms()}))
    return {"combined_score": score}
