"""The ``task_agent.py`` of a seed-format folder's program (see :mod:`hyperagents.tasks._folder`).

It runs in the sandbox like any task agent and only hands over the solution's files: the
benchmark itself runs in a sandbox of its own, started by the task's trusted scorer.
"""

from __future__ import annotations

__all__ = ["SHIM_SOURCE"]

SHIM_SOURCE = '''\
"""Hands the solution to the task's benchmark (hyperagents, seed-format task folder).

The solution is solution.py (and any other top-level module it imports, except the meta
agent's files and this one). The task's benchmark.py runs it, in a sandbox of its own, as
`python benchmark.py SOLUTION_PATH`, and its `metric:` line is the score. Improve solution.py.
"""

import os

_SKIP = ("task_agent.py", "select_parent.py")


def solve(inputs):
    """The solution's files, by name."""
    files = {}
    for name in sorted(os.listdir(".")):
        if name.endswith(".py") and name not in _SKIP and not name.startswith("meta_"):
            with open(name, encoding="utf-8") as handle:
                files[name] = handle.read()
    return files
'''
