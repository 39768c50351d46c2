"""Majority voting, the ``self`` source's filter for a task without a verifier: an output is
kept when a quorum of voters answered its instance and more than half of them agree."""

from __future__ import annotations

from typing import Any

from hyperagents.tasks import Instance, Split
from hyperagents.weights import DataGuard, unverified_outputs, voted_outputs

from toytask import ToyTask


def _guard() -> tuple[DataGuard, list[str]]:
    task = ToyTask(sizes=(6, 3, 3), seed=3)
    return DataGuard(task), [i.id for i in task.instances(Split.TRAIN)]


def test_a_strict_majority_of_the_voters_that_answered_wins() -> None:
    guard, ids = _guard()
    ballots: list[dict[str, Any]] = [
        {ids[0]: "hi", ids[1]: "lo", ids[2]: {"a": 1, "b": 2}},
        {ids[0]: "hi", ids[1]: "hi", ids[2]: {"b": 2, "a": 1}},
        {ids[0]: "lo", ids[1]: "x", ids[2]: None},
    ]
    kept = voted_outputs(guard, ballots, quorum=2)
    # ids[0]: 2 of 3 say "hi"; ids[1]: no output has more than half; ids[2]: 2 of the 2 that
    # answered agree (keys in any order)
    assert [(e.instance_id, e.output) for e in kept] == [(ids[0], "hi"), (ids[2], {"a": 1, "b": 2})]
    assert {e.source for e in kept} == {"self-vote"}


def test_a_tie_keeps_nothing_and_the_quorum_counts_answering_voters() -> None:
    guard, ids = _guard()
    assert voted_outputs(guard, [{ids[0]: "hi"}, {ids[0]: "lo"}], quorum=1) == []
    assert voted_outputs(guard, [{ids[0]: "hi"}, {ids[0]: "hi"}, {}], quorum=3) == []
    (only,) = voted_outputs(guard, [{ids[0]: "hi"}], quorum=1)  # self-distillation
    assert only.output == "hi"


def test_votes_on_held_out_or_unknown_instances_are_not_counted() -> None:
    task = ToyTask(sizes=(6, 3, 3), seed=3)
    guard = DataGuard(task)
    val = task.instances(Split.VAL)[0].id
    ballots = [{val: "hi", "made-up": "hi"}] * 3
    assert voted_outputs(guard, ballots, quorum=1) == []
    assert unverified_outputs(guard, {val: "hi", "made-up": "lo"}, source="teacher") == []


def test_kept_examples_follow_the_train_splits_order() -> None:
    guard, ids = _guard()
    ballot = {i: "lo" for i in reversed(ids)}
    kept = voted_outputs(guard, [ballot, ballot], quorum=2)
    assert [e.instance_id for e in kept] == ids


def test_a_guard_over_given_train_instances_votes_on_them_and_never_on_held_out_inputs() -> None:
    task = ToyTask(sizes=(6, 3, 3), seed=3)
    val = task.instances(Split.VAL)[0]
    served = [Instance("live:1", {"x": 0.123}, None), Instance("live:2", val.inputs, None)]
    guard = DataGuard(task, train=served)  # e.g. live inputs nobody labelled
    own = task.instances(Split.TRAIN)[0].id
    ballot = {"live:1": "hi", "live:2": "hi", own: "hi"}
    kept = voted_outputs(guard, [ballot, ballot], quorum=2)
    assert [(e.instance_id, e.inputs, e.output) for e in kept] == [("live:1", {"x": 0.123}, "hi")]
