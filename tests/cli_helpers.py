"""Running ``hyperagents`` as a user would: a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli_env() -> dict[str, str]:
    """The test process's environment without a default storage, and a wide terminal."""
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_STORAGE"}
    env["COLUMNS"] = "200"
    return env


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hyperagents ARGS`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "hyperagents", *args],
        cwd=cwd,
        env=cli_env(),
        text=True,
        capture_output=True,
        timeout=600,
    )
