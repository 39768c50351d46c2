"""Live examples reach an improvement run's train split (labelled) or its meta agent's report
(feedback only), never val or test; a held-back slice is disjoint from everything training
sees, by request id and by inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.runs import Run, RunConfig
from hyperagents.service import (
    MAX_EXAMPLE_BYTES,
    MAX_KIND_BYTES,
    MAX_LIVE_EXAMPLES,
    LiveExample,
    LiveTask,
    inputs_key,
    live_task_options,
    split_live,
)
from hyperagents.storages import InMemoryStorage
from hyperagents.tasks import Instance, Split, load_task

SIZES = {"n_train": 12, "n_val": 8, "n_test": 4}


def fresh_requests(n: int, seed: int = 7) -> list[Instance]:
    """Support requests the served run's task never generated (another data seed)."""
    return list(load_task("support", {"seed": seed, "n_train": n}).instances(Split.TRAIN))


def live_batch(n: int = 18) -> list[LiveExample]:
    """Every third example has feedback only; the others a label (the right team)."""
    batch = []
    for k, inst in enumerate(fresh_requests(n)):
        if k % 3 == 2:
            batch.append(LiveExample(f"r{k}", inst.inputs, "billing", feedback=0.0))
        else:
            batch.append(LiveExample(f"r{k}", inst.inputs, "billing", label=inst.target))
    return batch


def ids_and_keys(items: Any) -> tuple[set[str], set[str]]:
    """The ids (request ids for examples) and input keys of instances or examples."""
    ids = {getattr(i, "request_id", None) or i.id for i in items}
    return ids, {inputs_key(i.inputs) for i in items}


def test_the_split_is_disjoint_by_request_id_and_by_inputs() -> None:
    batch = live_batch()
    twin = batch[0]  # the same inputs under another id, with feedback only: same side
    batch.append(LiveExample("twin", twin.inputs, "billing", feedback=0.2))
    split = split_live(batch, holdout_fraction=0.3, seed=4)
    parts = [split.train, split.feedback, split.held_back]
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            assert not ids_and_keys(a)[0] & ids_and_keys(b)[0]
            assert not ids_and_keys(a)[1] & ids_and_keys(b)[1]
    assert split.held_back and all(e.labelled for e in split.held_back)
    assert all(e.labelled for e in split.train)
    assert all(not e.labelled and e.feedback is not None for e in split.feedback)
    # The twin's inputs have a label: it is dropped (never shown beside a held-back label).
    assert {d["request_id"] for d in split.dropped} == {"twin"}
    assert split == split_live(batch, holdout_fraction=0.3, seed=4)  # seeded
    assert split_live(batch).held_back == ()  # nothing held back unless asked


def test_labelled_live_examples_reach_train_and_never_val_or_test() -> None:
    batch = live_batch()
    task = load_task("live", live_task_options("support", SIZES, split_live(batch)))
    assert isinstance(task, LiveTask) and task.name == "support"
    base = load_task("support", SIZES)
    train = task.instances(Split.TRAIN)
    live = [i for i in train if i.id.startswith("live:")]
    assert [i.id for i in live] == [f"live:{e.request_id}" for e in batch if e.labelled]
    assert list(train[: len(train) - len(live)]) == list(base.instances(Split.TRAIN))
    for split in (Split.VAL, Split.TEST):
        assert list(task.instances(split)) == list(base.instances(split))  # the task's own
        ids, keys = ids_and_keys(task.instances(split))
        assert not ids & {i.id for i in live}
        assert not keys & ids_and_keys(live)[1]
    # Feedback-only examples are shown to the meta agent, never scored in any split.
    feedback_ids = {f"live:{e.request_id}" for e in batch if not e.labelled}
    assert {e["id"] for e in task.feedback_examples()} == feedback_ids
    assert not feedback_ids & {i.id for s in Split for i in task.instances(s)}
    # A labelled live example is scored by the task's own scorer against its label.
    first = live[0]
    assert task.score(first, first.target).value == 1.0
    assert task.score(first, "not a team").value == 0.0


def test_live_examples_with_gate_inputs_are_dropped() -> None:
    base = load_task("support", SIZES)
    val = base.instances(Split.VAL)[0]
    test = base.instances(Split.TEST)[0]
    batch = [
        LiveExample("v", val.inputs, "x", label=val.target),
        LiveExample("t", test.inputs, "x", feedback=0.0),
        *live_batch(3),
    ]
    task = load_task("live", live_task_options("support", SIZES, split_live(batch)))
    assert isinstance(task, LiveTask)
    assert {d["request_id"] for d in task.dropped} == {"v", "t"}
    train_ids = {i.id for i in task.instances(Split.TRAIN)}
    assert "live:v" not in train_ids and "live:t" not in {e["id"] for e in task.feedback_examples()}


def test_the_held_back_slice_never_reaches_training() -> None:
    batch = live_batch(30)
    split = split_live(batch, holdout_fraction=0.4, seed=1)
    task = load_task("live", live_task_options("support", SIZES, split))
    assert isinstance(task, LiveTask)
    held = task.held_back_instances()
    assert len(held) == len(split.held_back) > 0
    trained = list(task.instances(Split.TRAIN))
    shown = task.feedback_examples()
    seen_ids = {i.id for i in trained} | {e["id"] for e in shown}
    seen_keys = ids_and_keys(trained)[1] | {inputs_key(e["inputs"]) for e in shown}
    assert not {i.id for i in held} & seen_ids
    assert not ids_and_keys(held)[1] & seen_keys
    # The slice gates: it joins val (after the task's own), never test.
    base = load_task("support", SIZES)
    assert list(task.instances(Split.VAL)) == [*base.instances(Split.VAL), *held]
    assert list(task.instances(Split.TEST)) == list(base.instances(Split.TEST))
    # Options written by hand that overlap are cut at load: training wins, the slice shrinks.
    options = live_task_options("support", SIZES, split)
    options["held_back"].append(options["train"][0])
    again = load_task("live", options)
    assert isinstance(again, LiveTask)
    assert len(again.held_back_instances()) == len(held)
    assert again.dropped[-1]["request_id"] == options["train"][0]["request_id"]


def test_the_meta_agent_report_shows_feedback_examples() -> None:
    split = split_live(live_batch(9))
    run = Run.create(
        task="live",
        storage=InMemoryStorage(),
        config=RunConfig.parse(
            {"task_options": live_task_options("support", SIZES, split), "sandbox": "process"}
        ),
    )
    report = run.ask().request.report
    shown = report["feedback_examples"]
    assert [e["id"] for e in shown] == [f"live:{e.request_id}" for e in split.feedback]
    assert set(shown[0]) == {"id", "inputs", "output", "feedback"}  # no label, no score


def test_bad_live_examples_are_refused() -> None:
    with pytest.raises(ConfigError, match="feedback"):
        LiveExample("a", {}, "x", feedback=1.5)
    with pytest.raises(ConfigError, match="feedback"):
        LiveExample("a", {}, "x", feedback=float("nan"))
    with pytest.raises(ConfigError, match="request id"):
        LiveExample("", {}, "x", label="y")
    with pytest.raises(ConfigError, match="bytes"):
        LiveExample("a", {"message": "x" * MAX_EXAMPLE_BYTES}, "x", label="y")
    with pytest.raises(ConfigError, match="JSON"):
        LiveExample("a", {"bad": object()}, "x", label="y")
    with pytest.raises(ConfigError, match="unknown keys"):
        LiveExample.from_json({"request_id": "a", "secret": 1})
    with pytest.raises(ConfigError, match="holdout_fraction"):
        split_live([], holdout_fraction=1.0)
    many = [{"request_id": f"r{k}", "inputs": k, "output": 0, "label": 1} for k in range(300)]
    options = {"base": "support", "base_options": SIZES, "train": many}
    with pytest.raises(ConfigError, match=f"at most {MAX_LIVE_EXAMPLES}"):
        LiveTask(**options)
    with pytest.raises(ConfigError, match="another live task"):
        LiveTask(base="live")


def test_an_id_given_twice_joins_once() -> None:
    one = live_batch(2)[0]
    twice = {"request_id": one.request_id, "inputs": {"other": 1}, "output": 0, "label": "x"}
    options = live_task_options("support", SIZES, split_live([one]))
    options["train"].append(twice)
    options["feedback"] = [{**twice, "inputs": {"third": 1}, "label": None, "feedback": 0.0}]
    task = LiveTask(**options)
    ids = [i.id for i in task.instances(Split.TRAIN)]
    assert len(ids) == len(set(ids)) and ids.count(f"live:{one.request_id}") == 1
    assert task.feedback_examples() == []
    assert [d["reason"] for d in task.dropped] == ["its id is taken", "its id is taken"]


def test_a_batch_larger_than_a_run_takes_keeps_its_latest_examples() -> None:
    text = "x" * (MAX_EXAMPLE_BYTES - 200)
    batch = [LiveExample(f"r{k}", {"m": f"{k}{text}"}, 0, label=1) for k in range(60)]
    split = split_live(batch)
    kept = [e.request_id for e in split.train]
    assert kept == [f"r{k}" for k in range(60 - len(kept), 60)]  # the latest, in order
    assert sum(len(json.dumps(e.as_json())) for e in split.train) <= MAX_KIND_BYTES
    assert {d["request_id"] for d in split.dropped} == {f"r{k}" for k in range(60 - len(kept))}
    options = live_task_options("support", SIZES, split)
    options["train"] = [e.as_json() for e in batch]
    with pytest.raises(ConfigError, match="bytes"):
        LiveTask(**options)


def test_the_sandbox_hides_the_wrapped_tasks_files() -> None:
    from pathlib import Path

    from hyperagents.sandbox import task_locations

    spec = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"
    task = LiveTask(base=spec)
    assert task_locations(task) == task_locations(task.wrapped_task)
    assert any(p.endswith("toytask.py") for p in task_locations(task))


def test_labels_a_plan_brought_in_join_train_only_never_a_gate() -> None:
    batch = live_batch()
    brought = [
        LiveExample(
            e.request_id, e.inputs, e.output, label="technical", feedback=e.feedback, source=s
        )
        for e, s in zip(
            [e for e in batch if not e.labelled], ("teacher", "self", "people") * 9, strict=False
        )
    ]
    # A teacher's label for an input a person labelled too: dropped whenever that is held back.
    person = next(e for e in batch if e.labelled)
    brought.append(
        LiveExample("t-twin", person.inputs, "billing", label="account", source="teacher")
    )
    mine = {e.request_id for e in brought}
    for seed in range(12):
        split = split_live(batch + brought, holdout_fraction=0.5, seed=seed)
        assert split.held_back and not mine & {e.request_id for e in split.held_back}
        held_keys = {inputs_key(e.inputs) for e in split.held_back}
        assert not held_keys & {inputs_key(e.inputs) for e in split.train if e.source}
        assert {e.request_id for e in split.train if e.source} | {
            d["request_id"] for d in split.dropped
        } >= mine
        task = LiveTask(
            "support",
            SIZES,
            **{
                k: v
                for k, v in live_task_options("support", SIZES, split).items()
                if k in ("train", "feedback", "held_back")
            },
        )
        assert not {f"live:{i}" for i in mine} & {i.id for i in task.held_back_instances()}
        assert not {f"live:{i}" for i in mine} & {i.id for i in task.instances(Split.VAL)}
    # Stored with a source, a held-back example is dropped by the task, never a gate.
    smuggled = LiveTask(
        "support", SIZES, held_back=[brought[0].as_json()], train=[batch[0].as_json()]
    )
    assert smuggled.held_back_instances() == []
    assert smuggled.dropped[0]["reason"] == "a label a plan brought in never gates"
    assert LiveExample.from_json(brought[0].as_json()) == brought[0]
    with pytest.raises(ConfigError, match="goes with a label"):
        LiveExample("x", {}, "billing", source="teacher")
    with pytest.raises(ConfigError, match="goes with a label"):
        LiveExample("x", {}, "billing", label="a", source="oracle")
