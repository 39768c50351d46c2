"""Adaptive time limits: a child that runs away on an instance its parent answered quickly is
stopped after ``timeout_floor`` (or ``timeout_factor`` × the parent's time), not the task's
whole ``instance_timeout``; instances the parent did not answer cleanly keep the task's limit."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from hyperagents import Run
from hyperagents.runs import RunConfig
from hyperagents.runs._context import RunContext
from hyperagents.runs._timeouts import AdaptiveTimeouts
from hyperagents.storages import InMemoryStorage
from hyperagents.tasks import Instance

from toytask import ToyTask

#: Generation 1 loops forever on numbers above 0.5 (a structural edit gone wrong).
RUNAWAY_META = """def improve(workspace, report):
    path = workspace + "/task_agent.py"
    source = open(path).read()
    open(path, "w").write(source.replace(
        "def solve(inputs):\\n",
        "def solve(inputs):\\n    while inputs['x'] > 0.5:\\n        pass\\n",
    ))
    return {"operator": "runaway"}
"""


#: A sandbox the policy never uses (it only reads stored evaluations).
NO_SANDBOX: Any = object()


class PatientToyTask(ToyTask):
    """The toy task with a long instance limit (a runaway would cost 60 s an instance)."""

    name = "toy-patient"
    instance_timeout = 60.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(sizes=(4, 3, 3), **kwargs)


def _results(run: Run, generation: int) -> list[dict[str, Any]]:
    (variant,) = [v for v in run.variants() if v.generation == generation]
    return [dict(r) for e in run.storage.list_evaluations(variant.id) for r in e.results]


def test_a_runaway_child_is_stopped_at_the_floor_not_the_tasks_limit() -> None:
    config = RunConfig.parse({}, sandbox="process", timeout_floor=1.0)
    run = Run.create(
        task=PatientToyTask(meta_agent=RUNAWAY_META),
        storage=InMemoryStorage(),
        seed=1,
        config=config,
    )
    started = time.monotonic()
    run.optimize(1)
    assert time.monotonic() - started < 40  # a 60 s limit would have cost a minute an instance
    results = _results(run, 1)
    timed_out = [r for r in results if r["error"]]
    assert timed_out and all(
        r["error"] == "timeout: instance took longer than 1 s" for r in timed_out
    )
    assert all(0.9 < r["wall"] < 10 for r in timed_out)
    answered = [r for r in results if not r["error"]]
    assert answered and all(r["output"] in ("hi", "lo") for r in answered)
    seed = _results(run, 0)
    assert seed and not any(r["error"] for r in seed)


def test_limits_follow_the_parents_clean_times_within_floor_and_ceiling() -> None:
    storage = InMemoryStorage()
    config = RunConfig.parse({}, sandbox="process", timeout_factor=10, timeout_floor=2.0)
    task = PatientToyTask()
    run = Run.create(task=task, storage=storage, seed=1, config=config)
    run.optimize(0)
    (seed,) = run.variants()
    storage.add_evaluation(
        variant_id=seed.id,
        stage="recheck",  # (its val evaluation is stored already: more times on val)
        split="val",
        score=0.5,
        n=4,
        results=[
            {"id": "a", "score": 1.0, "wall": 0.01, "error": None},  # 10 × 0.01 → the floor
            {"id": "b", "score": 1.0, "wall": 0.5, "error": None},  # 10 × 0.5 = 5 s
            {"id": "c", "score": 1.0, "wall": 30.0, "error": None},  # 300 s → the task's 60 s
            {"id": "d", "score": 0.0, "wall": 0.001, "error": "exception: ValueError: x"},
        ],
        metrics={"n": 4},
    )
    child = replace(seed, id=99, generation=1, parent_id=seed.id)
    ctx = RunContext(storage=storage, record=run.record(), task=task, sandbox=NO_SANDBOX)
    timeouts = AdaptiveTimeouts(ctx)
    instances = [Instance(k, {"x": 0.1}, "lo") for k in "abcde"]
    limits = timeouts.limits(child, "val", instances)
    assert limits == {"a": 2.0, "b": 5.0}  # c at the task's limit, d crashed, e never ran
    assert timeouts.stage_wall(instances, limits) == 2.0 + 5.0 + 3 * 60.0 + config.eval_overhead
    assert timeouts.limits(child, "test", instances) is None  # a champion's test: the task's
    assert timeouts.limits(seed, "val", instances) is None  # the seed has no parent
    storage.update_run_config(run.id, {**dict(run.record().config), "timeout_factor": None})
    off = RunContext(storage=storage, record=run.record(), task=task, sandbox=NO_SANDBOX)
    assert AdaptiveTimeouts(off).limits(child, "val", instances) is None
