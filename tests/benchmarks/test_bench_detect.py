"""``benchmarks/bench_detect.py``: the seed's keyword router as the champion loses accuracy
after the stream's change point, and the benchmark finds the change without false triggers."""

from __future__ import annotations

import pytest

from hyperagents.service import MonitorSettings, StreamSettings, TriggerPolicy, simulated_stream

from bench_detect import main, run_stream, seed_router


def accuracy(settings: StreamSettings) -> tuple[float, float]:
    router = seed_router()
    right = {False: [0, 0], True: [0, 0]}
    for request in simulated_stream(settings):
        right[request.changed][0] += router(request.inputs) == request.target
        right[request.changed][1] += 1
    return right[False][0] / right[False][1], right[True][0] / right[True][1]


@pytest.mark.parametrize("drift", ["mix", "rule", "both"])
def test_the_keyword_champion_loses_accuracy_after_the_change(drift: str) -> None:
    before, after = accuracy(StreamSettings(seed=0, length=2000, change_at=1000, drift=drift))
    assert 0.65 < before < 0.8  # the seed's documented 0.725 on val
    assert after < before - 0.1, (before, after)


def test_the_router_is_the_seed_without_a_model() -> None:
    router = seed_router()
    assert router({"message": "I forgot my password", "channel": "email"}) == "account"
    assert router({"message": "Please cancel my plan", "channel": "chat"}) == "cancellation"


def test_one_stream_is_detected_after_its_change_only() -> None:
    stream = StreamSettings(seed=1, length=1600, change_at=800)
    policy = TriggerPolicy(min_feedback=100)
    moved = run_stream(seed_router(), stream, monitor=MonitorSettings(), policy=policy)
    assert moved.triggers and 800 <= moved.triggers[0][0] < 800 + 300
    assert moved.alarm is not None and moved.alarm >= 800
    still = run_stream(seed_router(), stream.stationary(), monitor=MonitorSettings(), policy=policy)
    assert still.triggers == [] and still.alarm is None


def test_the_script_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "1", "--length", "1200", "--change-at", "600"]) == 0
    out = capsys.readouterr().out
    assert "detected: 1/1 drifting streams" in out
    assert "false-trigger rate: 0/1 stationary streams of 1200 requests" in out
