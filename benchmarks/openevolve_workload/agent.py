"""The candidate program of ``bench_vs_openevolve.py``: one tunable number ``X``.

Both systems start from this file: hyperagents as the seed's ``task_agent.py`` (its offline meta
agent edits ``PARAMS`` within ``PARAM_SPACE``), OpenEvolve as the initial program (the region
between the ``EVOLVE-BLOCK`` markers is what it evolves). One evaluation spins for
``inputs["busy_ms"]`` milliseconds of wall time, then returns ``X``; the score is
``-abs(X - 0.7)``.
"""

import time

# EVOLVE-BLOCK-START
PARAMS = {
    "X": 0.5,
}
# EVOLVE-BLOCK-END

PARAM_SPACE = {
    "X": {"type": "float", "low": -1.0, "high": 2.0},
}


def solve(inputs: dict[str, float]) -> float:
    """Spin for ``inputs["busy_ms"]`` milliseconds, then return ``X``."""
    end = time.perf_counter() + float(inputs.get("busy_ms", 0)) / 1000.0
    while time.perf_counter() < end:
        pass
    return PARAMS["X"]
