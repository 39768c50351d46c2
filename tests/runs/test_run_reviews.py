"""Level 2's reviewer: it runs after each child's benchmark and sees the whole history, while
the worker (the meta agent) is shown only the latest reviews; a hostile reviewer fails no run;
the LLM path goes through the sandbox's bridge; the offline meta agent acts on reviews."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hyperagents.runs import Run, parse_review, stored_reviews
from hyperagents.runs._review import ReviewError
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState

from toytask import META_AGENT, ToyTask

CONFIG = {"subset_size": 10, "sandbox": "process", "level": "feedback"}

#: A reviewer that reports, in its review, what it was given.
SEEING_REVIEWER = """import json


def review(workspace, history):
    seen = {
        "child": history["variant"]["generation"],
        "history": [e["generation"] for e in history["history"]],
        "reviews": [r["generation"] for r in history["reviews"]],
        "evaluated": bool(history["variant"]["scores"]),
        "change": sorted(history["variant"]["change"].get("files", {})),
    }
    return {"issue_type": "seen", "severity": "low", "fix_suggestion": json.dumps(seen),
            "confidence": 0.5, "pattern_detected": None}
"""

#: The toy meta agent, also keeping (in its meta info) what its report held.
RECORDING_META_AGENT = META_AGENT.replace(
    '    return {"operator": "step", "t": [t, new], "step": STEP}',
    '    return {"operator": "step", "t": [t, new], "step": STEP,\n'
    '            "report_keys": sorted(report), "reviews": report.get("reviews"),\n'
    '            "report_bytes": len(json.dumps(report))}',
)


def _run(reviewer: str, generations: int, **config: Any) -> Run:
    task = ToyTask(meta_agent=RECORDING_META_AGENT, extra={"reviewer.py": reviewer})
    run = Run.create(task=task, storage=InMemoryStorage(), seed=2, config={**CONFIG, **config})
    run.optimize(generations=generations)
    return run


def test_the_reviewer_sees_the_whole_history_and_the_worker_only_the_latest_reviews() -> None:
    run = _run(SEEING_REVIEWER, 7, review_latest=2)
    variants = run.variants()
    outcomes = stored_reviews(run.storage, run.id)
    assert sorted(outcomes) == sorted(v.id for v in variants[1:])  # every child, once
    assert all(v.metrics["review"]["seconds"] > 0 for v in variants[1:])  # its cost, recorded
    for child in variants[1:]:
        seen = json.loads(outcomes[child.id]["fix_suggestion"])
        g = child.generation
        assert seen["child"] == g and seen["evaluated"]  # after the child's benchmark
        assert seen["history"] == list(range(g))  # every earlier variant, the seed included
        assert seen["reviews"] == list(range(1, g))  # every earlier review
        assert seen["change"] == ["task_agent.py"]  # the diff, summarised
    # The worker of generation g is shown the latest two reviews (of generations g-2, g-1)
    # and nothing of the history the reviewer read.
    for child in variants[1:]:
        info = child.meta_info
        shown = info["reviews"]
        g = child.generation
        assert [r["generation"] for r in shown] == list(range(max(1, g - 2), g))
        for review in shown:
            assert set(review) <= {"generation", "issue_type", "severity", "fix_suggestion",
                                   "confidence", "pattern_detected", "source"}  # fmt: skip
            assert "history" not in review
        assert "history" not in info["report_keys"]
    # The reviewer's input grows with the run; the worker's reviews stay the same size.
    last = json.loads(outcomes[variants[-1].id]["fix_suggestion"])
    assert len(last["history"]) == 7 > len(variants[-1].meta_info["reviews"]) == 2
    sizes = [len(json.dumps(v.meta_info["reviews"])) for v in variants[3:]]
    assert max(sizes) - min(sizes) < 50


HOSTILE = {
    "crash": "def review(workspace, history):\n    raise RuntimeError('reviewer crashed')\n",
    "loop": "def review(workspace, history):\n    while True:\n        pass\n",
    "huge": "def review(workspace, history):\n    print('x' * 5_000_000)\n"
    "    return {'issue_type': 'x' * 3_000_000, 'severity': 'low', 'fix_suggestion': '',"
    " 'confidence': 0.5}\n",
    "bad_json": 'def review(workspace, history):\n    return \'{"issue_type": "bug", \'\n',
    "wrong_fields": "def review(workspace, history):\n    return {'issue_type': 'bug', "
    "'severity': 'apocalyptic', 'fix_suggestion': 'x', 'confidence': 7}\n",
    "deep": "def review(workspace, history):\n    v = {}\n    for _ in range(50):\n"
    "        v = {'a': v}\n    return v\n",
    "exit": "import os\n\ndef review(workspace, history):\n    os._exit(3)\n",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_reviewer_does_not_fail_the_run(kind: str) -> None:
    run = _run(HOSTILE[kind], 2, review_timeout=2.0)
    record = run.record()
    assert record.status is RunStatus.COMPLETE
    variants = run.variants()
    assert [v.generation for v in variants] == [0, 1, 2]
    assert all(v.state.is_terminal for v in variants)
    outcomes = stored_reviews(run.storage, run.id)
    assert sorted(outcomes) == [v.id for v in variants[1:]]
    assert all("error" in outcome for outcome in outcomes.values())
    events = run.storage.list_events(run.id, kinds=["variant.review_failed"])
    assert len(events) == 2 and all(e.message for e in events)
    # The worker is shown no review (there was none), and still made its children.
    assert variants[2].meta_info["reviews"] == []
    assert variants[2].state is VariantState.COMPLETE or variants[2].reason


def test_review_output_is_parsed_with_bounds() -> None:
    good = {"issue_type": "bug", "severity": "high", "fix_suggestion": "f", "confidence": 1,
            "pattern_detected": None, "extra": "dropped"}  # fmt: skip
    assert parse_review(good) == {**{k: v for k, v in good.items() if k != "extra"},
                                  "confidence": 1.0, "source": None}  # fmt: skip
    assert parse_review(json.dumps(good))["severity"] == "high"
    long = parse_review({**good, "fix_suggestion": "y" * 5000})["fix_suggestion"]
    assert len(long) == 2000 and long.endswith("…")
    for bad in (
        "not json",
        [good],
        {**good, "severity": "apocalyptic"},
        {**good, "confidence": 1.5},
        {**good, "confidence": True},
        {**good, "issue_type": ""},
        {**good, "fix_suggestion": "z" * 20_000},  # over the size bound
        {"a": {"b": {"c": {"d": {"e": 1}}}}},
    ):
        with pytest.raises(ReviewError, match="not a review"):
            parse_review(bad)


def test_the_default_reviewer_asks_the_runs_model_through_the_sandbox_bridge(
    tmp_path: Path,
) -> None:
    reply = {"issue_type": "overfitting", "severity": "medium", "fix_suggestion": "generalise",
             "confidence": 0.8, "pattern_detected": "threshold drifts"}  # fmt: skip
    script = tmp_path / "replies.json"
    script.write_text(json.dumps({"replies": [json.dumps(reply)] * 2 + ["no json here"]}))
    task = ToyTask(meta_agent=RECORDING_META_AGENT)  # the default reviewer is added
    run = Run.create(
        task=task, storage=InMemoryStorage(), config={**CONFIG, "llm": f"scripted:{script}"}
    )
    run.optimize(generations=3)
    variants = run.variants()
    outcomes = stored_reviews(run.storage, run.id)
    first, second, third = (outcomes[v.id] for v in variants[1:])
    assert first == {**reply, "source": "llm"} and second == {**reply, "source": "llm"}
    # A reply that is no review falls back to the rules, saying so.
    assert third["source"].startswith("rules (model failed")
    calls = run.storage.list_llm_calls(run.id)
    assert [c.purpose for c in calls] == ["review/review"] * 3  # (the job's, the call's)
    assert {c.variant_id for c in calls} == {v.id for v in variants[1:]}
    # The worker saw the model's reviews.
    assert variants[3].meta_info["reviews"][-1]["issue_type"] == "overfitting"


def test_the_offline_meta_agent_is_steered_by_the_latest_review() -> None:
    run = Run.create(
        task="shipping", storage=InMemoryStorage(), seed=0, config={**CONFIG, "subset_size": 20}
    )
    run.optimize(generations=6)
    variants = run.variants()
    outcomes = stored_reviews(run.storage, run.id)
    steered = [v for v in variants[2:] if "review_steering" in v.meta_info]
    assert steered, "no child was steered by a review"
    generation_of = {v.generation: v for v in variants}
    for child in variants[2:]:
        latest = outcomes[generation_of[child.generation - 1].id]
        steering = child.meta_info.get("review_steering")
        if latest.get("severity") in (None, "none") or latest["issue_type"] not in (
            "regression",
            "broken_change",
            "plateau",
            "persistent_failures",
        ):
            assert steering is None
            continue
        assert steering["generation"] == child.generation - 1
        assert steering["issue"] == latest["issue_type"]
        if steering["issue"] in ("regression", "broken_change"):
            assert steering["step"] < 1.0  # careful after a regression
        if steering["issue"] == "persistent_failures":
            assert steering["operators"]["focus"] > 1.0  # aim at the failing instances


def test_a_review_a_crash_cut_off_is_made_before_the_next_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hyperagents.runs._review import Reviews

    task = ToyTask(meta_agent=RECORDING_META_AGENT, extra={"reviewer.py": SEEING_REVIEWER})
    store = InMemoryStorage()
    run = Run.create(task=task, storage=store, seed=2, config=CONFIG)
    with monkeypatch.context() as patch:  # the engine dies after each evaluation, before reviews
        patch.setattr(Reviews, "after_evaluation", lambda self, variant_id: None)
        run.optimize(generations=2)
    ids = [v.id for v in run.variants()]
    # Generation 1 was reviewed when generation 2's job was built; generation 2 not yet.
    assert sorted(stored_reviews(store, run.id)) == [ids[1]]
    resumed = Run.load(run.id, storage=store, task=task)
    resumed.optimize(generations=2)
    variants = resumed.variants()
    outcomes = stored_reviews(store, run.id)
    assert sorted(outcomes) == [v.id for v in variants[1:]]  # each child reviewed, once
    assert len(store.list_events(run.id, kinds=["variant.reviewed"])) == 4
    for child in variants[1:]:
        seen = json.loads(outcomes[child.id]["fix_suggestion"])
        assert seen["history"] == list(range(child.generation))
        assert seen["reviews"] == list(range(1, child.generation))
    # The job of generation 3 was shown generation 2's review, made before its job was built.
    assert [r["generation"] for r in variants[3].meta_info["reviews"]] == [1, 2]
