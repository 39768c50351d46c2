"""``bench_weights.py --direct``: its rounds with a tiny model, end to end in seconds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


def test_the_direct_rounds_train_answer_keep_and_report(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch (the 'weights' extra) is not installed")
    import bench_weights

    out = tmp_path / "figures.json"
    options = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "batch_size": 8}
    try:
        code = bench_weights.main(
            [
                "--direct",
                "--length",
                "2",
                "--n-train",
                "40",
                "--n-examples",
                "30",
                "--rounds",
                "1",
                "--probe",
                "5",
                "--scratch-steps",
                "3",
                "--round-steps",
                "2",
                "--target",
                "1.01",
                "--options",
                json.dumps(options),
                "--out",
                str(out),
            ]
        )
    finally:
        for name in ("arith_model", "trainer"):
            sys.modules.pop(name, None)
        sys.path[:] = [p for p in sys.path if "bench-weights-" not in p]
    assert code == 0
    figures = json.loads(out.read_text())
    first, second = figures["rounds"]
    assert first["kept"] == 0 and first["examples"] == 30 and first["max_trained"] == 2
    assert second["examples"] == 30 + second["kept"]
    assert set(first["accuracy"]) == {"2", "3", "4"}
    assert first["train"]["steps"] == 3 and second["train"]["steps"] == 2
    assert 0.0 <= figures["test"] <= 1.0
