"""A toy task whose task agent misbehaves on request, for the service's tests (not a pytest
module): ``{"x": 0.9}`` is answered ("hi"/"lo" as the toy task's); ``{"do": "crash"}`` raises,
``"loop"`` never returns, ``"garbage"`` prints noise to stdout and stderr and answers,
``"huge"`` answers more than a request may hold, ``"exit"`` kills its own process."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toytask import ToyTask

HOSTILE_AGENT = """import os
import sys

PARAMS = {"t": 0.63}


def solve(inputs):
    action = inputs.get("do") if isinstance(inputs, dict) else None
    if action == "crash":
        raise RuntimeError("the champion crashed")
    if action == "loop":
        while True:
            pass
    if action == "garbage":
        sys.stdout.write("\\x00\\xff garbage {not json" * 1000)
        sys.stderr.write("noise" * 1000)
    if action == "huge":
        return "x" * (300 * 1024)
    if action == "exit":
        os._exit(3)
    return "hi" if inputs["x"] > PARAMS["t"] else "lo"
"""


class ServiceToyTask(ToyTask):
    """The toy task with a task agent that misbehaves when asked to, and a short timeout."""

    name = "service-toy"
    instance_timeout = 2.0

    def __init__(self) -> None:
        super().__init__(task_agent=HOSTILE_AGENT, sizes=(8, 6, 6))
