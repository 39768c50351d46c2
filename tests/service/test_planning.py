"""The planning loop with a model and data actions: the planner's and teacher's calls go through
the gateway to an OpenAI-compatible server and are recorded with the improvement run (never the
served run), replayable and within the improvement's budget; ``more_data`` actions are carried
out (teacher labels and the champion's verified answers join train only, requests wanting a
person's label are queryable, and a label posted for one joins the next improvement's train
data), and no label a plan brought in ever enters the gate's slices."""

from __future__ import annotations

import time
from typing import Any

import pytest
from typer.testing import CliRunner

from hyperagents.cli import app
from hyperagents.runs import RunConfig, RunLLM, own_sandbox
from hyperagents.service import (
    DATA_EVENT,
    WANTED_EVENT,
    Autopilot,
    AutopilotSettings,
    Improvement,
    ImprovementBudget,
    LiveTask,
    PlanSettings,
    Stage,
    act_on_data,
    attach_feedback,
    improve_with_plans,
    parse_settings,
    post_override,
    split_live,
    wanted_labels,
)
from hyperagents.storages import LLMCallSpec
from hyperagents.tasks import Split, load_task, stored_task_options
from hyperagents.testing import FakeOpenAIServer

from planning_site import PLAN_PROMPT, SIZES, Site, key, model_plan


@pytest.fixture
def site(tmp_path: Any) -> Site:
    return Site(f"sqlite:///{tmp_path / 'planning.db'}")


def run_task(site: Site, run_id: int) -> LiveTask:
    record = site.service.find_run(run_id)
    task = load_task(record.task, stored_task_options(record.config))
    assert isinstance(task, LiveTask)
    return task


def test_the_model_plans_and_teaches_through_the_gateway_recorded_with_the_improvement(
    site: Site,
) -> None:
    with FakeOpenAIServer(handler=site.model(model_plan(site)), model="m") as server:
        steps = improve_with_plans(
            site.service,
            run="served",
            live=site.live,
            budget=ImprovementBudget(generations=1),
            holdout_fraction=0.25,
            settings=PlanSettings(max_replans=0, model=f"{server.base_url}#m"),
            service_id=site.record.id,
        )
        asked = len(server.requests)
    (step,) = steps
    diagnosis = step.plan.plan["diagnosis"]
    assert (
        diagnosis["llm"] == {"used": True}
        and diagnosis["summary"] == "Everything is sent to billing."
    )
    # Recorded with the improvement run, never the served run; counted in its usage.
    calls = site.store.list_llm_calls(step.run_id)
    purposes = sorted({c.purpose.split("/")[0] for c in calls})
    # support's verifier needs the target, so ``self`` votes; the served run's lineage has
    # fewer voters than its quorum (3): none is asked, nothing is spent on it.
    assert purposes == ["plan", "teacher"] and len(calls) == asked == 1 + 3
    assert site.store.list_llm_calls(site.service.find_run("served").id) == []
    assert site.store.llm_usage(step.run_id)["calls"] == asked
    # The teacher's labels join train with their source, and nothing a plan brought in gates.
    task = run_task(site, step.run_id)
    train = {e.request_id: e for e in task.live_examples["train"]}
    taught = site.unlabelled[1:]
    assert all(train[i].source == "teacher" for i in taught)
    assert all(train[i].label == site.truth[key(train[i].inputs)] for i in taught)
    gate = {i.id for i in task.held_back_instances()} | {i.id for i in task.instances(Split.VAL)}
    gate |= {i.id for i in task.instances(Split.TEST)}
    assert gate and not gate & {f"live:{i}" for i in taught}
    assert all(e.source is None for e in task.live_examples["held_back"])
    # What was done is on the step and in the service's log; the criteria saw the new data.
    by_source = {d["source"]: d for d in step.data}
    assert by_source["teacher"]["kept"] == len(taught)
    assert by_source["people"]["wanted"] == [site.unlabelled[0]]
    own = by_source["self"]
    assert own["by"] == "vote" and own["kept"] == 0 and own["quorum"] == 3
    assert own["refused"] == [f"{len(own['voters'])} voters, fewer than the quorum of 3"]
    kinds = [e.kind for e in site.store.list_service_events(site.record.id)]
    assert DATA_EVENT in kinds and WANTED_EVENT in kinds
    assert step.outcome.scores["live_train"]["served"] is not None


def test_planning_calls_replay_without_the_model(site: Site) -> None:
    messages = [{"role": "user", "content": f"{PLAN_PROMPT}: anything"}]
    with FakeOpenAIServer(handler=site.model({"summary": "s", "actions": []}), model="m") as server:
        model = RunLLM(site.store, None, spec=f"{server.base_url}#m", seed=3)
        first = model.handler(variant_id=None, purpose="plan", scope="plan/0")(
            {"messages": messages}
        )
        assert len(model.pending) == 1 and len(server.requests) == 1
        run_id = site.service.find_run("served").id
        model.attach(run_id)
        assert model.pending == [] and len(site.store.list_llm_calls(run_id)) == 1
        replay = RunLLM(site.store, None, spec=None, replay_of=run_id)
        again = replay.handler(variant_id=None, purpose="plan", scope="plan/0")(
            {"messages": messages}
        )
        assert again == first and len(server.requests) == 1  # answered from the record


def test_a_bad_reply_falls_back_to_the_rules_and_a_budget_bounds_planning(site: Site) -> None:
    with FakeOpenAIServer(handler=site.model("Send chat to technical."), model="m") as server:
        steps = improve_with_plans(
            site.service,
            run="served",
            live=site.live,
            budget=ImprovementBudget(generations=1, max_tokens=1),
            settings=PlanSettings(max_replans=0, model=f"{server.base_url}#m"),
        )
        asked = len(server.requests)
    (step,) = steps
    llm = step.plan.plan["diagnosis"]["llm"]
    assert step.plan.source == "planner" and llm["used"] is False  # the rule-based plan
    assert "not one JSON object" in llm["reason"]
    # One call spent the 1-token budget: the teacher was refused without reaching the model.
    assert asked == 1
    teacher = [d for d in step.data if d["source"] == "teacher"]
    assert all(d["kept"] == 0 and "budget" in d["refused"][0] for d in teacher)
    assert site.store.llm_usage(step.run_id)["calls"] >= 1


def test_wanted_labels_are_queryable_and_a_posted_label_joins_the_next_train_only(
    site: Site, tmp_path: Any
) -> None:
    improve_with_plans(
        site.service,
        run="served",
        live=site.live,
        budget=ImprovementBudget(generations=1),
        settings=PlanSettings(max_replans=0),  # the seed planner: failed ones want a label
        service_id=site.record.id,
    )
    wanted = [w["request_id"] for w in wanted_labels(site.store, site.record.id)]
    assert sorted(wanted) == sorted(int(i) for i in site.unlabelled)
    result = CliRunner().invoke(app, ["wanted", "served", "--storage", site.store.url])
    assert result.exit_code == 0, result.output
    assert all(f"request {i}" in result.output for i in wanted)
    chosen = wanted[0]
    attach_feedback(site.store, chosen, label="technical", by="a person")
    assert chosen not in [w["request_id"] for w in wanted_labels(site.store, site.record.id)]
    pilot = Autopilot(
        site.store,
        site.record.id,
        task=load_task("support", SIZES),
        improver=lambda live, service: Improvement(None, []),
    )
    live = {e.request_id: e for e in pilot.live_examples()}
    assert live[str(chosen)].label == "technical" and live[str(chosen)].source == "people"
    for seed in range(20):  # whatever the draw, a label a plan asked for is never held back
        split = split_live(live.values(), holdout_fraction=0.9, seed=seed)
        assert str(chosen) in {e.request_id for e in split.train}
        assert str(chosen) not in {e.request_id for e in split.held_back}


def test_the_planner_model_is_an_autopilot_setting_and_a_serve_option() -> None:
    assert AutopilotSettings().planner_llm is None  # no model unless asked
    chosen = parse_settings(AutopilotSettings, {"max_cost": 0.5}, planner_llm="run")
    assert (chosen.planner_llm, chosen.max_cost) == ("run", 0.5)
    help_text = CliRunner().invoke(app, ["serve", "--help"]).output
    assert "--planner-llm" in help_text


def test_what_an_improvements_models_spent_counts_against_the_triggers_budget(
    site: Site,
) -> None:
    improvement = site.service.find_run("served").id  # stands in for an improvement run
    call = LLMCallSpec(
        key="k",
        provider="p",
        model="m",
        request={"messages": [], "params": {}},
        reply="r",
        cost=0.25,
        purpose="plan/label",
        prompt_tokens=10,
        completion_tokens=2,
    )
    site.store.add_llm_call(improvement, call)
    steps = [{"run_id": improvement}, {"run_id": 999_999}]  # a run gone: nothing counted
    pilot = Autopilot(
        site.store,
        site.record.id,
        task=load_task("support", SIZES),
        improver=lambda live, service: Improvement(None, steps),
        settings=parse_settings(AutopilotSettings, {"feedback_wait_s": 0}),
    )
    post_override(site.store, site.record.id, "force", who="test")
    deadline = time.monotonic() + 30
    while pilot.step() is not Stage.IMPROVING:
        assert time.monotonic() < deadline
    while pilot.step() is not Stage.WATCHING:
        assert time.monotonic() < deadline
    assert pilot.trigger.spent_usd == pytest.approx(0.25)
    saved = Autopilot(
        site.store,
        site.record.id,
        task=load_task("support", SIZES),
        improver=lambda live, service: Improvement(None, []),
    )
    assert saved.trigger.spent_usd == pytest.approx(0.25)  # recorded with its state


TEACHER = (
    "def label(inputs):\n"
    "    if 'refund' in inputs['message'].lower():\n"
    "        return 'refunds'\n"
    "    raise ValueError('no idea')\n"
)


def test_a_teacher_program_labels_in_the_sandbox_and_self_answers_are_verified(
    site: Site,
) -> None:
    task = load_task("support", SIZES)
    program = task.seed_program().with_files({"teacher.py": TEACHER})
    unlabelled = [e for e in site.live if not e.labelled]
    plan = {
        "actions": [
            {"kind": "more_data", "source": "teacher", "request_ids": []},
            {
                "kind": "more_data",
                "source": "self",
                "request_ids": [f"live:{unlabelled[0].request_id}"],
            },
        ]
    }
    with own_sandbox(RunConfig.parse({"sandbox": "process"}), task) as sandbox:
        done = act_on_data(
            plan, site.live, task=task, program=program, sandbox=sandbox, teacher=None
        )
    teacher, own = done.record
    refunds = [e for e in unlabelled if "refund" in e.inputs["message"].lower()]
    assert refunds and teacher["by"] == "program" and teacher["asked"] == len(unlabelled)
    assert teacher["kept"] == len(refunds) and len(teacher["refused"]) == len(unlabelled) - len(
        refunds
    )
    assert all(e.source == "teacher" and e.label == "refunds" for e in done.examples)
    # support's verifier needs the target: a live input has none, so the champion alone
    # votes, fewer voters than the quorum: nothing is asked or kept
    assert own == {
        "source": "self",
        "asked": 1,
        "by": "vote",
        "kept_as": "self-vote",
        "quorum": 3,
        "voters": [None],
        "kept": 0,
        "ids": [],
        "refused": ["1 voters, fewer than the quorum of 3"],
    }
    assert done.wanted == ()
