"""The candidate program of ``bench_engines.py``: one tunable number ``X``.

One evaluation waits (``mode`` ``"wait"``: sleeps, as an agent waiting for a model or a tool) or
busy-loops (``"busy"``: burns CPU) for ``inputs["ms"]`` milliseconds, then returns ``X``.
"""

import time

PARAMS = {
    "X": 0.5,
}

PARAM_SPACE = {
    "X": {"type": "float", "low": -1.0, "high": 2.0},
}


def solve(inputs):
    """Wait or spin for ``inputs["ms"]`` milliseconds, then return ``X``."""
    seconds = float(inputs.get("ms", 0)) / 1000.0
    if inputs.get("mode") == "busy":
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
    elif seconds > 0:
        time.sleep(seconds)
    return PARAMS["X"]
