"""The planner: the seed planner diagnoses where live failures concentrate; a hostile planner
yields a recorded failure and the fallback plan, never a crash; criteria are checked by
trusted code; re-planning is bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hyperagents.program import Program
from hyperagents.runs import Run, RunService
from hyperagents.sandbox import Sandbox, get_sandbox
from hyperagents.service import (
    PLANNER_FILE,
    CriteriaCheck,
    ImprovementBudget,
    LiveExample,
    LiveTask,
    PlanLimits,
    PlanRecord,
    PlanSettings,
    PlanStep,
    check_criteria,
    fallback_plan,
    improve_with_plans,
    parse_plan,
    planner_program,
    planner_request,
    replan_request,
    run_planner,
    seed_planner,
    start_improvement,
)
from hyperagents.storages import InMemoryStorage
from hyperagents.tasks import Split, load_task, stored_task_options

SIZES = {"n_train": 12, "n_val": 8, "n_test": 4}
FAST = PlanLimits(wall_time=3.0, max_bytes=8 * 1024)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = get_sandbox("process")
    yield box
    close = getattr(box, "close", None)
    if callable(close):
        close()


def chat_fails(n: int = 24) -> list[LiveExample]:
    """Live support requests where every chat request was routed wrong, the rest right; a
    few email ones have feedback only."""
    batch = []
    task = load_task("support", {"seed": 5, "n_train": n})
    for k, inst in enumerate(task.instances(Split.TRAIN)):
        wrong = "billing" if inst.target != "billing" else "refund"
        chat = inst.inputs["channel"] == "chat"
        output = wrong if chat else inst.target
        if k % 6 == 5 and not chat:
            batch.append(LiveExample(f"r{k}", inst.inputs, output, feedback=1.0))
        else:
            batch.append(LiveExample(f"r{k}", inst.inputs, output, label=inst.target))
    return batch


def request_for(batch: list[LiveExample], **extra: Any) -> dict[str, Any]:
    task = load_task("support", SIZES)
    return planner_request(
        task,
        batch,
        served={"val": 0.7, "live_train": 0.5},
        budget={"generations": 3, "max_seconds": 60.0},
        held_back=2,
        **extra,
    )


def test_the_seed_planner_finds_where_failures_concentrate(sandbox: Sandbox) -> None:
    batch = chat_fails()
    request = request_for(batch)
    assert all("failed" in e for e in request["examples"])  # judged by the trusted scorer
    program = load_task("support", SIZES).seed_program()
    record = run_planner(program, request, sandbox=sandbox)
    assert record.source == "planner" and record.error is None, record.error
    plan = record.plan
    top = plan["diagnosis"]["concentrations"][0]
    chats = [e for e in batch if e.inputs["channel"] == "chat"]
    assert top["group"] == "channel=chat" and top["failures"] == len(chats) and top["rate"] == 1.0
    kinds = [a["kind"] for a in plan["actions"]]
    assert kinds[0] == "harness_edit" and "channel=chat" in plan["actions"][0]["focus"]
    assert "weight_update" not in kinds  # support's program carries no model
    slices = {c["split_or_slice"] for c in plan["success_criteria"]}
    assert slices == {"val", "live_train", "held_back"}
    assert plan["budget"] == {"generations": 3, "max_seconds": 60.0}
    assert record.as_json()["plan"] == plan


def test_declared_features_and_a_replan_reach_the_planner(sandbox: Sandbox) -> None:
    request = request_for(chat_fails(), features=["channel"])
    program = load_task("support", SIZES).seed_program()
    first = run_planner(program, request, sandbox=sandbox)
    assert first.plan["diagnosis"]["features"] == ["channel"]
    unmet = CriteriaCheck(False, ({"criterion": {"x": 1}, "met": False, "reason": "r"},))
    again = run_planner(program, replan_request(request, first, unmet), sandbox=sandbox)
    assert again.attempt == 1 and again.plan["diagnosis"]["unmet_before"] == list(unmet.unmet)
    assert again.plan["budget"]["generations"] > first.plan["budget"]["generations"]


HOSTILE = {
    "crash": "def plan(request):\n    raise RuntimeError('boom')\n",
    "loop": "def plan(request):\n    while True:\n        pass\n",
    "huge": "def plan(request):\n    return {'diagnosis': 'x' * 50_000_000}\n",
    "prints": (
        "import sys\ndef plan(request):\n    sys.stdout.write('y' * 10_000_000)\n    return 7\n"
    ),
    "garbage": "def plan(request):\n    return {'actions': 'all', 'success_criteria': None}\n",
    "no_module": "x = 1\n",
    "syntax": "def plan(:\n",
    "exit": "import os\ndef plan(request):\n    os._exit(3)\n",
    "weights": (
        "def plan(request):\n    return {'actions': [{'kind': 'weight_update'}],\n"
        "            'success_criteria': [{'metric': 'score', 'split_or_slice': 'val',"
        " 'op': '>=', 'value': 'served'}]}\n"
    ),
    "nan": (
        "def plan(request):\n    return {'actions': [{'kind': 'harness_edit'}],\n"
        "            'success_criteria': [{'metric': 'score', 'split_or_slice': 'val',"
        " 'op': '>=', 'value': float('nan')}]}\n"
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_planner_gives_a_recorded_failure_and_the_fallback(
    sandbox: Sandbox, name: str
) -> None:
    program = Program(
        {"task_agent.py": "def solve(x):\n    return x\n", PLANNER_FILE: HOSTILE[name]}
    )
    request = request_for(chat_fails(12))
    record = run_planner(program, request, sandbox=sandbox, limits=FAST)
    assert record.source == "fallback" and record.error, record
    assert record.plan == fallback_plan(request, record.error)
    assert record.wall < 30.0
    parsed = parse_plan(record.plan, request)  # the fallback is itself a valid plan
    assert parsed["actions"] == [{"kind": "harness_edit", "focus": []}]
    assert {c["split_or_slice"] for c in parsed["success_criteria"]} == {"val", "held_back"}


def test_parse_plan_bounds_and_drops_what_is_out_of_the_format() -> None:
    request = {"budget": {"generations": 4, "max_seconds": 30.0}, "has_model": False}
    raw = {
        "diagnosis": "d" * 5000,
        "actions": [
            {"kind": "harness_edit", "focus": ["a" * 500] * 30, "extra": 1},
            {"kind": "more_data", "source": "oracle"},
            {"kind": "more_data", "source": "people", "request_ids": list(range(500))},
            {"kind": "delete_everything"},
        ],
        "success_criteria": [
            {"metric": "score", "split_or_slice": "test", "op": ">=", "value": 1},
            {"metric": "score", "split_or_slice": "val", "op": "==", "value": 1},
            {"metric": "score", "split_or_slice": "val", "op": ">", "value": True},
            {"metric": "score", "split_or_slice": "held_back", "op": ">=", "value": "served"},
        ],
        "budget": {"generations": 10_000, "max_seconds": 1e9},
    }
    plan = parse_plan(raw, request)
    assert len(plan["diagnosis"]["summary"]) == 2000
    assert [a["kind"] for a in plan["actions"]] == ["harness_edit", "more_data"]
    assert len(plan["actions"][0]["focus"]) == 10 and len(plan["actions"][0]["focus"][0]) == 200
    assert len(plan["actions"][1]["request_ids"]) == 100 and "extra" not in plan["actions"][0]
    assert plan["success_criteria"] == [raw["success_criteria"][3]]
    assert plan["budget"] == {"generations": PlanLimits().max_generations, "max_seconds": 30.0}
    assert len(plan["ignored"]) == 5
    with pytest.raises(ValueError, match="valid action"):
        parse_plan({"actions": [], "success_criteria": raw["success_criteria"]}, request)
    with pytest.raises(ValueError, match="at most"):
        parse_plan({"diagnosis": "x" * 100_000}, request)
    with pytest.raises(ValueError, match="JSON"):
        parse_plan({"x": float("inf")}, request)


def outcome(**scores: tuple[float | None, float | None]) -> dict[str, Any]:
    return {"scores": {k: {"served": s, "candidate": c} for k, (s, c) in scores.items()}}


def crit(where: str, op: str, value: Any, margin: float = 0.0) -> dict[str, Any]:
    found = {"metric": "score", "split_or_slice": where, "op": op, "value": value}
    return {**found, "margin": margin} if margin else found


def test_check_criteria_true_and_false() -> None:
    plan = {
        "success_criteria": [
            crit("val", ">=", "served"),
            crit("live_train", ">=", "served", margin=0.1),
            crit("held_back", ">", 0.5),
        ]
    }
    met = check_criteria(
        plan, outcome(val=(0.7, 0.7), live_train=(0.5, 0.65), held_back=(0.4, 0.6))
    )
    assert met.met and met.unmet == []
    unmet = check_criteria(
        plan, outcome(val=(0.7, 0.69), live_train=(0.5, 0.55), held_back=(0.4, 0.5))
    )
    assert not unmet.met and len(unmet.unmet) == 3
    assert unmet.results[1]["target"] == pytest.approx(0.6)
    missing = check_criteria(plan, outcome(val=(0.7, 0.8), live_train=(0.5, None)))
    assert not missing.met and "not measured" in missing.results[1]["reason"]
    assert "not measured" in missing.results[2]["reason"]  # no held-back slice at all
    lower = {"success_criteria": [crit("val", "<=", 0.3), crit("val", "<", "served")]}
    assert check_criteria(lower, outcome(val=(0.4, 0.3))).met
    assert not check_criteria({"success_criteria": []}, outcome(val=(0.1, 0.9))).met
    assert check_criteria(plan, outcome()).as_json()["met"] is False


def test_the_planner_program_and_seed() -> None:
    program = Program({"task_agent.py": "x = 1\n"})
    assert planner_program(program)[PLANNER_FILE] == seed_planner().encode()
    own = program.with_files({PLANNER_FILE: "def plan(r):\n    return {}\n"})
    assert planner_program(own) is own  # the program's own planner (the meta level's)
    assert load_task("support", SIZES).is_meta_file(PLANNER_FILE)


def held_back_ids(service: RunService, run_id: int) -> set[str]:
    record = service.find_run(run_id)
    task = load_task(record.task, stored_task_options(record.config))
    assert isinstance(task, LiveTask)
    return {i.id for i in task.held_back_instances()}


def served_service(seed: Program | None) -> RunService:
    """A service whose run ``served`` (support, one generation) starts from ``seed``."""
    service = RunService(InMemoryStorage())
    run = Run.create(
        task="support",
        name="served",
        storage=service.storage,
        config={"task_options": SIZES, "sandbox": "process"},
        seed_from=seed,
    )
    run.optimize(1, workers=1)
    return service


def plans_with(planner: str | None, **options: Any) -> tuple[RunService, list[PlanStep]]:
    """The steps of improving a served support run whose program has ``planner`` as its
    ``planner.py`` (None: none, so the seed planner plans) on :func:`chat_fails`."""
    seed = load_task("support", SIZES).seed_program()
    service = served_service(None if planner is None else seed.with_files({PLANNER_FILE: planner}))
    steps = improve_with_plans(service, run="served", live=chat_fails(12), **options)
    return service, steps


UNREACHABLE = (
    "def plan(request):\n"
    "    return {'diagnosis': {'attempt': request['attempt'],\n"
    "                          'unmet': len(request['failed_criteria'])},\n"
    "            'actions': [{'kind': 'harness_edit'}],\n"
    "            'success_criteria': [{'metric': 'score', 'split_or_slice': 'val',\n"
    "                                  'op': '>', 'value': 1.5}],\n"
    "            'budget': {'generations': 1}}\n"
)


def test_replanning_is_bounded_and_sees_the_unmet_criteria() -> None:
    service, steps = plans_with(
        UNREACHABLE,
        budget=ImprovementBudget(generations=2),
        holdout_fraction=0.25,
        settings=PlanSettings(max_replans=2, limits=FAST),
    )
    assert len(steps) == 3  # the first plan and two re-plans, then it stops
    held = [held_back_ids(service, step.run_id) for step in steps]
    assert held[0] and held[0] == held[1] == held[2]  # one held-back slice for every plan
    assert [service.find_run(step.run_id).seed for step in steps] == [0, 1, 2]
    for attempt, step in enumerate(steps):
        assert step.plan.source == "planner" and step.plan.attempt == attempt
        assert step.plan.plan["diagnosis"] == {"attempt": attempt, "unmet": min(attempt, 1)}
        assert not step.check.met and step.check.unmet[0]["target"] == 1.5
        record = service.find_run(step.run_id)
        assert record.target_generations == 1 and record.attrs["plan"] == step.plan.as_json()
    assert len({s.run_id for s in steps}) == 3
    assert steps[-1].as_json()["check"]["met"] is False


HOLD_VAL = (
    "def plan(request):\n"
    "    return {'diagnosis': {}, 'actions': [{'kind': 'harness_edit'}],\n"
    "            'success_criteria': [{'metric': 'score', 'split_or_slice': 'val',\n"
    "                                  'op': '>=', 'value': 'served'}]}\n"
)


def test_met_criteria_stop_at_the_first_plan() -> None:
    _, steps = plans_with(
        HOLD_VAL, budget=ImprovementBudget(generations=1), settings=PlanSettings(max_replans=3)
    )
    # The improvement run's champion is at worst the served program again: val holds.
    assert len(steps) == 1 and steps[0].check.met
    assert steps[0].outcome.scores["val"]["candidate"] >= steps[0].outcome.scores["val"]["served"]


def test_the_seed_planner_loop_stops_when_met_or_at_the_bound() -> None:
    _, steps = plans_with(
        None, budget=ImprovementBudget(generations=1), settings=PlanSettings(max_replans=1)
    )
    assert 1 <= len(steps) <= 2
    assert all(s.plan.source == "planner" for s in steps)
    # Failures are grouped by what support declares categorical (input_features()).
    assert steps[0].plan.plan["diagnosis"]["features"] == ["channel"]
    assert steps[-1].check.met or len(steps) == 2
    assert all(not s.check.met for s in steps[:-1])


def test_the_planner_reaches_a_model_through_the_sandbox_bridge(sandbox: Sandbox) -> None:
    asked: list[dict[str, Any]] = []
    reply = {
        "summary": "Chat requests are routed to the wrong team.",
        "actions": [
            {"kind": "harness_edit", "focus": ["channel=chat"]},
            {"kind": "more_data", "source": "teacher", "request_ids": ["live:r1"]},
        ],
    }

    def model(request: dict[str, Any]) -> dict[str, Any]:
        asked.append(request)
        return {"text": "```json\n" + json.dumps(reply) + "\n```"}

    request = request_for(chat_fails(), llm=True)
    program = load_task("support", SIZES).seed_program()
    record = run_planner(program, request, sandbox=sandbox, llm=model)
    assert record.source == "planner"
    diagnosis = record.plan["diagnosis"]
    assert diagnosis["summary"] == reply["summary"] and diagnosis["llm"] == {"used": True}
    assert record.plan["actions"][1] == {
        "kind": "more_data",
        "source": "teacher",
        "request_ids": ["live:r1"],
        "focus": [],
    }
    assert len(asked) == 1 and asked[0]["purpose"] == "plan"
    assert "channel=chat" in asked[0]["messages"][0]["content"]  # the diagnosis is shown
    rules = run_planner(program, request, sandbox=sandbox).plan  # no model: the rules

    bad_replies = {
        "Chat requests are routed wrong.": "not one JSON object",
        json.dumps({**reply, "extra": 1}): "exactly summary and actions",
        json.dumps({**reply, "actions": [{"kind": "rewrite"}]}): "unknown kind",
        json.dumps({**reply, "actions": [{"kind": "weight_update"}]}): "without a model",
        json.dumps(
            {**reply, "actions": [{"kind": "more_data", "source": "people", "request_ids": ["x"]}]}
        ): "request_ids",
    }
    for text, why in bad_replies.items():
        fell = run_planner(program, request, sandbox=sandbox, llm=lambda r, t=text: {"text": t})
        assert fell.source == "planner"  # the seed planner's own fallback: the rule-based plan
        assert fell.plan["actions"] == rules["actions"]
        assert fell.plan["diagnosis"]["llm"]["used"] is False
        assert why in fell.plan["diagnosis"]["llm"]["reason"], text

    def broken(request: dict[str, Any]) -> dict[str, Any]:
        return {"error": "budget spent"}

    fallback = run_planner(program, request, sandbox=sandbox, llm=broken)
    assert fallback.plan["actions"] == rules["actions"]
    assert "the model failed" in fallback.plan["diagnosis"]["llm"]["reason"]
    summary = fallback.plan["diagnosis"]["summary"]
    assert "live examples failed; failures concentrate in channel=chat" in summary


def drifted(n: int = 120, change: int = 60) -> list[LiveExample]:
    """Live support requests the champion routed right, until request ``change``: from there
    refund and shipping requests go to billing (concept drift: the same inputs, new labels),
    and the champion still answers refund and shipping."""
    batch = []
    task = load_task("support", {"seed": 3, "n_train": n})
    for k, inst in enumerate(task.instances(Split.TRAIN)):
        moved = k >= change and inst.target in ("refund", "shipping")
        label = "billing" if moved else inst.target
        batch.append(LiveExample(f"r{k}", inst.inputs, inst.target, label=label))
    return batch


def first_moved(batch: list[LiveExample], change: int = 60) -> int:
    return next(k for k, e in enumerate(batch) if k >= change and e.label != e.output)


def test_the_seed_planner_diagnoses_concept_drift_and_gates_on_fresh_data(
    sandbox: Sandbox,
) -> None:
    batch = drifted()
    request = request_for(batch, features=["channel"])
    request["served"] = {"val": 0.95, "live_train": 0.8}
    program = load_task("support", SIZES).seed_program()
    plan = run_planner(program, request, sandbox=sandbox).plan
    drift = plan["diagnosis"]["drift"]
    assert drift["kind"] == "concept"
    groups = {g["group"]: g for g in drift["flipped"]}
    assert set(groups) == {"output=refund", "output=shipping"}
    assert groups["output=refund"]["after"]["label"] == "billing"
    assert groups["output=refund"]["before"]["failure_rate"] == 0.0
    # Where the drift began: at the first moved request, or within a few after it.
    since = int(drift["since"].removeprefix("live:r"))
    assert first_moved(batch) <= since <= first_moved(batch) + 10
    assert drift["before"]["failure_rate"] < 0.05 and drift["after"]["score"] < 0.85
    assert "concept drift" in plan["diagnosis"]["summary"]
    assert plan["scope"] == {"since": drift["since"], "own_data": "stale"}
    gates = {c["split_or_slice"]: c.get("gate", True) for c in plan["success_criteria"]}
    assert gates == {"val": False, "live_train": True, "held_back": True}
    assert plan["actions"][0]["focus"][:2] == [g["group"] for g in drift["flipped"][:2]]


def test_flipped_answers_without_stale_own_data_keep_the_usual_plan(sandbox: Sandbox) -> None:
    program = load_task("support", SIZES).seed_program()
    request = request_for(drifted(), features=["channel"])
    request["served"] = {"val": 0.7, "live_train": 0.8}  # val rates it no higher: not stale
    plan = run_planner(program, request, sandbox=sandbox).plan
    assert plan["diagnosis"]["drift"]["kind"] == "flip" and "scope" not in plan
    assert all(c.get("gate", True) for c in plan["success_criteria"])
    # Stale-looking val but no held-back slice to gate on instead: val keeps gating.
    request.update(served={"val": 0.95, "live_train": 0.8}, held_back=0)
    unchecked = run_planner(program, request, sandbox=sandbox).plan
    assert unchecked["diagnosis"]["drift"]["kind"] == "flip" and "scope" not in unchecked
    assert all(c.get("gate", True) for c in unchecked["success_criteria"])
    steady = run_planner(program, request_for(chat_fails()), sandbox=sandbox).plan
    assert "drift" not in steady["diagnosis"] and "scope" not in steady


def test_parse_plan_checks_the_scope_and_needs_a_gate_on_unseen_data() -> None:
    request = {"examples": [{"id": "live:a"}, {"id": "live:b"}], "budget": {"generations": 2}}
    actions = [{"kind": "harness_edit"}]
    held = crit("held_back", ">=", "served")
    val_info = {**crit("val", ">=", "served"), "gate": False}
    stale = {"since": "live:b", "own_data": "stale"}
    plan = parse_plan(
        {"actions": actions, "success_criteria": [val_info, held], "scope": stale}, request
    )
    assert plan["scope"] == stale and plan["success_criteria"] == [val_info, held]
    for scope, why in (
        ({"since": "live:zz"}, "the id of an example shown"),
        ({"since": "live:a", "own_data": "old"}, "own_data"),
        ({"since": "live:a", "more": 1}, "an object with since"),
    ):
        kept = parse_plan({"actions": actions, "success_criteria": [held], "scope": scope}, request)
        assert "scope" not in kept and why in kept["ignored"][0]
    with pytest.raises(ValueError, match="gates on data training never saw"):
        parse_plan({"actions": actions, "success_criteria": [val_info]}, request)
    with pytest.raises(ValueError, match="gates on data training never saw"):
        parse_plan({"actions": actions, "success_criteria": [crit("live_train", ">", 0)]}, request)
    with pytest.raises(ValueError, match="gates on data training never saw"):  # stale val
        parse_plan(
            {"actions": actions, "success_criteria": [crit("val", ">=", 0)], "scope": stale},
            request,
        )
    bad_gate = {**held, "gate": "no"}
    assert (
        "gate"
        in parse_plan(
            {"actions": actions, "success_criteria": [bad_gate, val_info, held]}, request
        )["ignored"][0]
    )


def test_a_criterion_that_does_not_gate_is_reported_not_required() -> None:
    info = {**crit("val", ">=", "served"), "gate": False}
    plan = {"success_criteria": [info, crit("held_back", ">=", "served")]}
    check = check_criteria(plan, outcome(val=(0.7, 0.6), held_back=(0.4, 0.5)))
    assert check.met and not check.results[0]["met"] and check.results[1]["met"]
    assert check.unmet == [check.results[0]]  # shown to a re-plan all the same
    assert not check_criteria({"success_criteria": [info]}, outcome(val=(0.5, 0.9))).met


def test_a_stale_scope_trains_and_selects_on_fresh_live_data_only() -> None:
    service = served_service(None)
    batch = drifted()
    since = first_moved(batch)
    plan = {
        "diagnosis": {},
        "actions": [{"kind": "harness_edit", "focus": []}],
        "success_criteria": [crit("held_back", ">=", "served")],
        "scope": {"since": f"live:r{since}", "own_data": "stale"},
        "budget": {"generations": 1, "max_seconds": None},
    }
    start = dict(run="served", live=batch, holdout_fraction=0.25, seed=4, drive="none")
    plain = start_improvement(service, **start)
    scoped = start_improvement(service, **start, plan=PlanRecord(0, plan, "planner"))
    tasks = {}
    for run_id in (plain, scoped):
        record = service.find_run(run_id)
        tasks[run_id] = load_task(record.task, stored_task_options(record.config))
    wide, fresh = tasks[plain], tasks[scoped]
    assert isinstance(wide, LiveTask) and isinstance(fresh, LiveTask)
    position = {f"live:{e.request_id}": k for k, e in enumerate(batch)}
    train = {i.id for i in fresh.instances(Split.TRAIN)}
    val = {i.id for i in fresh.instances(Split.VAL)}
    assert train and val and not train & val
    assert all(position[i] >= since for i in train | val)  # the fresh data alone
    # Each example stays on its side of the one split: the held-back slice is the wider
    # run's, less what came before the drift.
    assert val == {i for i in held_back_ids(service, plain) if position[i] >= since}
    assert len(fresh.instances(Split.TEST)) == SIZES["n_test"]  # test stays the task's own
    assert len(wide.instances(Split.VAL)) > SIZES["n_val"]  # own val + held-back slice
    assert len(fresh.own_val_instances()) == SIZES["n_val"]
    assert not fresh.training_examples() and not fresh.holdout_instances(0)
    applied = service.find_run(scoped).attrs["scope"]
    assert applied["applied"] and applied["held_back"] == len(val)
    # A scope that leaves no train or held-back example is not applied: nothing to train or
    # to gate on.
    late = {**plan, "scope": {"since": f"live:r{len(batch) - 1}", "own_data": "stale"}}
    kept = start_improvement(service, **start, plan=PlanRecord(0, late, "planner"))
    record = service.find_run(kept)
    assert not record.attrs["scope"]["applied"]
    assert record.attrs["scope"]["reason"].endswith(f"example since live:r{len(batch) - 1}")
    assert load_task(record.task, stored_task_options(record.config)).own_data


FRESH = (
    "def plan(request):\n"
    "    ids = [e['id'] for e in request['examples']]\n"
    "    return {'diagnosis': {'order': ids},\n"
    "            'actions': [{'kind': 'harness_edit'}],\n"
    "            'success_criteria': [\n"
    "                {'metric': 'score', 'split_or_slice': 'val', 'op': '>', 'value': 2,\n"
    "                 'gate': False},\n"
    "                {'metric': 'score', 'split_or_slice': 'held_back', 'op': '>=',\n"
    "                 'value': 'served'}],\n"
    "            'scope': {'since': ids[len(ids) // 2], 'own_data': 'stale'},\n"
    "            'budget': {'generations': 1}}\n"
)


def test_a_plans_scope_reaches_its_run_and_only_gates_decide() -> None:
    batch = drifted(40, 20)
    seed = load_task("support", SIZES).seed_program()
    service = served_service(seed.with_files({PLANNER_FILE: FRESH}))
    (step,) = improve_with_plans(
        service,
        run="served",
        live=batch,
        budget=ImprovementBudget(generations=1),
        holdout_fraction=0.25,
        settings=PlanSettings(max_replans=0, limits=FAST),
    )
    shown = step.plan.plan["diagnosis"]["order"]
    served = [f"live:{e.request_id}" for e in batch]
    assert shown == [i for i in served if i in shown]  # in serving order, held-back ones out
    since = step.plan.plan["scope"]["since"]
    record = service.find_run(step.run_id)
    task = load_task(record.task, stored_task_options(record.config))
    assert isinstance(task, LiveTask) and not task.own_data
    fresh = {i.id for s in (Split.TRAIN, Split.VAL) for i in task.instances(s)}
    assert fresh and all(served.index(i) >= served.index(since) for i in fresh)
    assert record.attrs["scope"]["applied"] is True
    scores = step.outcome.scores
    assert scores["val"]["served"] is not None and scores["held_back"]["served"] is not None
    # val > 2 can never hold: it only informs; the held-back gate alone decides.
    assert not step.check.results[0]["met"]
    assert step.check.met == step.check.results[1]["met"]
