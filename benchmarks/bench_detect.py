"""Detection on the simulated drifting ``support`` stream: time to detect, false triggers.

For each seed, the champion (the ``support`` seed agent's keyword router, run in this process
without a model: the seed's own code read as a library, trusted here only for that reason)
answers every request of the simulated stream (:func:`hyperagents.service.simulated_stream`);
the trusted team is the feedback. Each answer goes through the service's decision logic as it
would live: :class:`~hyperagents.service.Monitor` (rolling windows, input drift on the task's
declared features, the degradation detector), then :class:`~hyperagents.service.Trigger`.

Printed per seed and summed up over seeds:

* on the drifting stream: the champion's accuracy before and after the change, the first
  degradation alarm, the first drift flag and the first trigger, in requests and seconds after
  the change point (a trigger before it is a false trigger);
* on the stationary stream of the same seed and length: triggers (all false). Before its
  change point a drifting stream is the same requests as the stationary one, so its false
  triggers (shown first) are among those.

Usage:
    python benchmarks/bench_detect.py [--seeds 5] [--length 4000] [--change-at 2000]
        [--drift both] [--method page-hinkley] [--level 25]
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hyperagents.service import (
    DetectorSettings,
    Monitor,
    MonitorSettings,
    Observation,
    StreamSettings,
    Trigger,
    TriggerPolicy,
    declared_features,
    simulated_stream,
)
from hyperagents.tasks.support import SupportTask

Router = Callable[[Mapping[str, Any]], str]
#: Requests between two looks at input drift (a look computes every feature's statistics).
DRIFT_EVERY = 50


def seed_router() -> Router:
    """The ``support`` seed agent's ``solve``, without a model (its keyword fallback).

    The seed imports the sandbox's ``llm`` bridge; here a stand-in whose every call fails, so
    that the agent falls back to its keyword rules (its documented behaviour without a model).
    """
    source = SupportTask().seed_program().text("task_agent.py")
    bridge = types.ModuleType("llm")

    class LLMError(Exception):
        """The bridge's error type."""

    def complete(*args: Any, **kwargs: Any) -> str:
        raise LLMError("no model in this benchmark")

    bridge.LLMError = LLMError  # type: ignore[attr-defined]
    bridge.complete = complete  # type: ignore[attr-defined]
    module = types.ModuleType("support_seed_agent")
    saved = sys.modules.get("llm")
    sys.modules["llm"] = bridge
    try:
        exec(compile(source, "task_agent.py", "exec"), module.__dict__)
    finally:
        if saved is None:
            del sys.modules["llm"]
        else:
            sys.modules["llm"] = saved
    module.PARAMS["use_llm"] = 0
    solve: Router = module.solve
    return solve


@dataclass
class Outcome:
    """What one stream gave."""

    accuracy_before: float
    accuracy_after: float | None
    alarm: int | None  # index of the request whose feedback raised the alarm
    drift: int | None  # index at which input drift was first flagged
    triggers: list[tuple[int, float]]  # (index, time) of each trigger


def run_stream(
    router: Router, stream: StreamSettings, *, monitor: MonitorSettings, policy: TriggerPolicy
) -> Outcome:
    """Serve ``stream`` with ``router`` through the monitor and the trigger."""
    mon = Monitor(settings=monitor, features=declared_features(SupportTask()))
    trigger = Trigger(policy=policy)
    right = {False: [0, 0], True: [0, 0]}
    alarm = drift = None
    triggers: list[tuple[int, float]] = []
    drifted = False
    for request in simulated_stream(stream):
        start = time.perf_counter()
        answer = router(request.inputs)
        latency = time.perf_counter() - start
        quality = float(answer == request.target)
        right[request.changed][0] += int(quality)
        right[request.changed][1] += 1
        obs = Observation(
            time=request.time, quality=quality, latency_s=latency, inputs=request.inputs
        )
        if mon.observe(obs) and alarm is None:
            alarm = request.index
        trigger.note_feedback()
        if request.index % DRIFT_EVERY == 0:
            drifted = mon.drifted()
            if drifted and drift is None:
                drift = request.index
        decision = trigger.decide(now=request.time, degraded=mon.degraded, drifted=drifted)
        if decision.fire:
            triggers.append((request.index, request.time))
            trigger.record_start(now=request.time)
            mon.reset()  # as after an improvement: watch the (same) champion afresh
    before = right[False][0] / max(right[False][1], 1)
    after = right[True][0] / right[True][1] if right[True][1] else None
    return Outcome(before, after, alarm, drift, triggers)


def _after(index: int | None, change_at: int) -> str:
    return "-" if index is None else f"{index - change_at:+d}"


def _first_after(triggers: list[tuple[int, float]], change_at: int) -> tuple[int, float] | None:
    return next(((i, t) for i, t in triggers if i >= change_at), None)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--length", type=int, default=4000)
    parser.add_argument("--change-at", type=int, default=2000)
    parser.add_argument("--drift", choices=("mix", "rule", "both"), default="both")
    parser.add_argument("--method", choices=("page-hinkley", "cusum"), default="page-hinkley")
    parser.add_argument("--level", type=float, default=DetectorSettings().level)
    args = parser.parse_args(argv)
    router = seed_router()
    monitor = MonitorSettings(detector=DetectorSettings(method=args.method, level=args.level))
    policy = TriggerPolicy(min_feedback=100, cooldown_s=3600.0)
    print(f"{args.seeds} seeds, {args.length} requests, change at {args.change_at} ({args.drift}),")
    print(f"detector {monitor.detector}, policy {policy}")
    header = "seed  acc before  acc after  alarm  drift  trigger (req, s)  false (drift/stat)"
    print(header)
    delays: list[tuple[int, float]] = []
    false_streams = false_triggers = 0
    for seed in range(args.seeds):
        stream = StreamSettings(
            seed=seed, length=args.length, change_at=args.change_at, drift=args.drift
        )
        moved = run_stream(router, stream, monitor=monitor, policy=policy)
        still = run_stream(router, stream.stationary(), monitor=monitor, policy=policy)
        first = _first_after(moved.triggers, args.change_at)
        change_time = next(r.time for r in simulated_stream(stream) if r.changed)
        if first is not None:
            delays.append((first[0] - args.change_at, first[1] - change_time))
        false_moved = sum(1 for i, _ in moved.triggers if i < args.change_at)
        false_still = len(still.triggers)
        false_streams += false_still > 0
        false_triggers += false_still
        shown = (
            "-"
            if first is None
            else f"{first[0] - args.change_at:+d}, {first[1] - change_time:+.0f}"
        )
        print(
            f"{seed:4d}  {moved.accuracy_before:10.3f}  {moved.accuracy_after or 0:9.3f}  "
            f"{_after(moved.alarm, args.change_at):>5}  {_after(moved.drift, args.change_at):>5}  "
            f"{shown:>16}  {false_moved}/{false_still}"
        )
    print(f"detected: {len(delays)}/{args.seeds} drifting streams")
    if delays:
        reqs = sorted(d for d, _ in delays)
        secs = sorted(s for _, s in delays)
        print(
            f"time to trigger after the change: median {reqs[len(reqs) // 2]} requests "
            f"({secs[len(secs) // 2]:.0f} s), max {reqs[-1]} requests ({secs[-1]:.0f} s)"
        )
    print(
        f"false-trigger rate: {false_streams}/{args.seeds} stationary streams of {args.length} "
        f"requests ({false_triggers} triggers; a drifting stream is the same before its change)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
