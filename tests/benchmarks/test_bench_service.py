"""``benchmarks/bench_service.py`` runs end to end on a few requests (its figures are not
checked: speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_service.py"


@pytest.mark.slow
def test_bench_service_answers_every_request_both_ways() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--requests", "8", "--warmup", "2", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "HYPERAGENTS_STORAGE"},
    )
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.strip()}
    for mode in ("direct", "service"):
        assert rows[mode][1:3] == ["8", "0"]  # 8 requests, no error
    assert "requests recorded by the service: 10 " in done.stdout
