"""Behaviour of the built-in ``arith`` task, its model, its trainer and its task agent."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.tasks import Split, check_task, load_task
from hyperagents.tasks.arith import ArithTask

from task_checks import assert_registered, assert_splits_disjoint_and_deterministic

#: A model small enough to train in a second.
TINY = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "steps": 8, "batch_size": 8}


def _length(inputs: dict[str, str]) -> int:
    assert len(inputs["a"]) == len(inputs["b"])
    return len(inputs["a"])


def test_registered_with_its_default_sizes() -> None:
    task = ArithTask()
    assert_registered(task, (2000, 200, 200))
    assert task.carries_model is True
    assert len(task.training_examples()) == 2000


def test_the_protocol_checks_pass() -> None:
    failed = [c for c in check_task(ArithTask()) if not c.ok]
    assert not failed, failed


def test_splits_disjoint_deterministic_and_by_length() -> None:
    task = ArithTask(length=3, n_train=120, n_val=30, n_test=30, n_examples=90)
    assert_splits_disjoint_and_deterministic(
        task, ArithTask(length=3, n_train=120, n_val=30, n_test=30), ArithTask(seed=1, length=3)
    )
    train = [_length(i.inputs) for i in task.instances(Split.TRAIN)]
    assert sorted(set(train)) == [1, 2, 3, 4, 5, 6]
    assert train.count(6) == 20  # spread evenly over 1..2L
    for split in (Split.VAL, Split.TEST):
        assert {_length(i.inputs) for i in task.instances(split)} == {6}
    assert {_length(i.inputs) for i in task.holdout_instances(7)} == {6}
    for inst in task.instances(Split.VAL):
        assert inst.target == str(int(inst.inputs["a"]) + int(inst.inputs["b"]))


def test_training_examples_are_short_labelled_and_apart_from_the_splits() -> None:
    task = ArithTask(length=4, n_examples=400)
    examples = task.training_examples()
    assert examples == ArithTask(length=4, n_examples=400).training_examples()
    assert {_length(e.inputs) for e in examples} == {1, 2, 3, 4}
    assert all(e.target == str(int(e.inputs["a"]) + int(e.inputs["b"])) for e in examples)
    assert len({json.dumps(e.inputs, sort_keys=True) for e in examples}) == 400
    held_out = {
        json.dumps(i.inputs, sort_keys=True)
        for s in (Split.VAL, Split.TEST)
        for i in task.instances(s)
    }
    assert not held_out & {json.dumps(e.inputs, sort_keys=True) for e in examples}


@pytest.mark.parametrize(
    ("output", "value", "feedback"),
    [
        ("1579", 1.0, "correct"),
        (1579, 1.0, "correct"),
        ("01579", 0.0, "first wrong digit from the right: 5"),
        ("1589", 0.0, "first wrong digit from the right: 2"),
        ("15 79", 0.0, "invalid answer"),
        (None, 0.0, "invalid answer of type NoneType"),
        (True, 0.0, "invalid answer of type bool"),
        ([1579], 0.0, "invalid answer of type list"),
        ("9" * 10_000, 0.0, "..."),
    ],
)
def test_score_and_accepts_are_exact_match(output: Any, value: float, feedback: str) -> None:
    task = ArithTask(length=2)
    inst = type(task.instances(Split.VAL)[0])(
        id="x", inputs={"a": "1234", "b": "345"}, target="1579"
    )
    score = task.checked_score(inst, output)
    assert score.value == value and feedback in score.feedback
    assert task.accepts(inst, output) is (value == 1.0)
    assert len(score.feedback) < 200


@pytest.mark.parametrize(
    "bad", [{"length": 1}, {"length": 51}, {"n_examples": 0}, {"n_train": 10_001}, {"length": True}]
)
def test_bad_options_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ArithTask(**bad)


def test_the_seed_program_carries_code_and_no_model() -> None:
    program = load_task("arith").seed_program()
    assert {"task_agent.py", "arith_model.py", "trainer.py", "meta_agent.py"} <= set(program)
    assert not any(path.startswith("model/") for path in program)


# -- the model, the trainer and the task agent (torch is an optional extra) ------------------


@pytest.fixture
def program(tmp_path: Path) -> Iterator[dict[str, ModuleType]]:
    """The seed program written to a folder and its modules imported from there."""
    pytest.importorskip("torch", reason="torch (the 'weights' extra) is not installed")
    pytest.importorskip("safetensors", reason="safetensors (the 'weights' extra) is not installed")
    root = tmp_path / "program"
    load_task("arith").seed_program().write_to(root)
    sys.path.insert(0, str(root))
    names = ("arith_model", "trainer", "task_agent")
    try:
        yield {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(root))
        for name in names:
            sys.modules.pop(name, None)


def _request(
    task: ArithTask, out: Path, model_dir: Path | None = None, seed: int = 0
) -> dict[str, Any]:
    examples = [{"inputs": e.inputs, "output": e.target} for e in task.training_examples()]
    return {
        "model_dir": str(model_dir) if model_dir else None,
        "out_dir": str(out),
        "examples": examples,
        "seed": seed,
        "threads": 1,
        "device": "cpu",
        "options": dict(TINY),
    }


def test_the_trainer_is_deterministic_and_reports_its_curve(
    program: dict[str, ModuleType], tmp_path: Path
) -> None:
    task = ArithTask(length=2, n_examples=50)
    seen: list[dict[str, Any]] = []
    first = program["trainer"].train(_request(task, tmp_path / "a"), seen.append)
    program["trainer"].train(_request(task, tmp_path / "b"))
    other = program["trainer"].train(_request(task, tmp_path / "c", seed=1))
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in "abc"]
    assert weights[0] == weights[1] != weights[2]
    assert first["curve"] == seen and first["curve"][-1]["step"] == TINY["steps"]
    assert all(isinstance(p["loss"], float) for p in first["curve"])
    assert first["metrics"]["examples"] == 50 and other["metrics"]["steps"] == TINY["steps"]
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["d_model"] == 16 and config["pos"] == "abacus"


@pytest.mark.parametrize(("continues", "steps"), [(False, 2000), (True, 1000)])
def test_without_a_steps_option_a_new_model_takes_2000_steps_and_one_that_continues_1000(
    program: dict[str, ModuleType], tmp_path: Path, continues: bool, steps: int
) -> None:
    # 2000 from scratch is what learnt 1..L digits and half of L + 1 in the direct
    # measurement (RESULTS, issue 17); 6000 ran a round 0 past the stage's 600 s limit
    task = ArithTask(length=2, n_examples=20)
    tiny = {k: v for k, v in TINY.items() if k != "steps"} | {"batch_size": 1, "log_every": 5000}
    model_dir = None
    if continues:
        program["trainer"].train(_request(task, tmp_path / "first"))
        model_dir = tmp_path / "first"
    request = {**_request(task, tmp_path / "out", model_dir=model_dir), "options": tiny}
    done = program["trainer"].train(request)
    assert done["metrics"]["steps"] == steps and done["curve"][-1]["step"] == steps


def test_training_continues_from_the_given_model(
    program: dict[str, ModuleType], tmp_path: Path
) -> None:
    task = ArithTask(length=2, n_examples=50)
    trainer, model = program["trainer"], program["arith_model"]
    trainer.train(_request(task, tmp_path / "first"))
    request = _request(task, tmp_path / "second", model_dir=tmp_path / "first")
    request["options"]["d_model"] = 32  # a model that continues keeps its own architecture
    trainer.train(request)
    again = model.load_model(str(tmp_path / "second"))
    assert again.config.d_model == 16
    first = (tmp_path / "first" / "model.safetensors").read_bytes()
    assert (tmp_path / "second" / "model.safetensors").read_bytes() != first


def test_malformed_examples_are_skipped_and_none_is_an_error(
    program: dict[str, ModuleType], tmp_path: Path
) -> None:
    request = _request(ArithTask(length=2, n_examples=10), tmp_path / "m")
    request["examples"] += [
        {"inputs": {"a": "1"}, "output": "1"},
        "junk",
        {"inputs": {"a": "1", "b": "2"}, "output": 3},
    ]
    assert program["trainer"].train(request)["metrics"]["skipped"] == 3
    with pytest.raises(ValueError, match="no usable training example"):
        program["trainer"].train({**request, "examples": ["junk"]})


def test_the_task_agent_answers_with_its_model_or_the_fallback(
    program: dict[str, ModuleType], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = program["task_agent"]
    assert agent.solve({"a": "12", "b": "34"}) == "0"
    assert "no model" in capsys.readouterr().err
    with pytest.raises(ValueError, match="digit string"):
        agent.solve({"a": "12", "b": "x"})
    task = ArithTask(length=2, n_examples=50)
    program["trainer"].train(_request(task, Path(agent.MODEL_DIR)))
    agent._LOADED.clear()
    answers = [agent.solve(i.inputs) for i in task.instances(Split.VAL)[:5]]
    assert all(isinstance(a, str) for a in answers)
    problems = [(i.inputs["a"], i.inputs["b"]) for i in task.instances(Split.VAL)[:5]]
    model = program["arith_model"].load_model(agent.MODEL_DIR)
    assert answers == program["arith_model"].generate(model, problems)


def test_the_model_format_round_trips(program: dict[str, ModuleType]) -> None:
    model = program["arith_model"]
    prompt = model.encode_prompt("120", "7")
    assert [model.VOCAB[t] for t in prompt] == list("021+7=")
    assert model.decode_answer(model.encode_answer("127")) == "127"
    assert model.decode_answer([model.VOCAB.index("+")]) == ""
    with pytest.raises(ValueError):
        model.ModelConfig(pos="learned")


def test_places_count_the_digits_of_each_number_from_the_units(
    program: dict[str, ModuleType],
) -> None:
    import torch

    model = program["arith_model"]
    tokens = model.encode_prompt("120", "7") + model.encode_answer("127") + [model.PAD]
    row = torch.tensor([tokens, tokens])
    assert model.places(row).tolist()[0] == [1, 2, 3, 0, 1, 0, 1, 2, 3, 0, 0]
    shifted = model.places(row, torch.tensor([0, 2])).tolist()
    assert shifted[1] == [3, 4, 5, 0, 3, 0, 3, 4, 5, 0, 0]  # the other tokens stay at 0


@pytest.mark.parametrize(("offset", "learnt"), [(0, [1, 2, 3]), (2, [1, 2, 3, 4, 5])])
def test_the_place_offset_decides_which_places_are_learnt(
    program: dict[str, ModuleType], tmp_path: Path, offset: int, learnt: list[int]
) -> None:
    import torch

    model = program["arith_model"]
    request = _request(ArithTask(length=2, n_examples=50), tmp_path / "m")  # sums of 1..3 digits
    request["options"].update(place_offset=offset, weight_decay=0.0)
    program["trainer"].train(request)
    torch.manual_seed(0)  # the trainer's seed: the same initial weights
    arch = {k: TINY[k] for k in ("d_model", "n_layers", "n_heads", "d_ff")}
    before = model.AdderModel(model.ModelConfig(**arch)).place.weight
    after = model.load_model(str(tmp_path / "m")).place.weight
    changed = [p for p in range(1, 8) if not torch.equal(before[p], after[p])]
    assert changed == learnt


def test_the_task_agent_loads_its_model_in_the_runs_sandbox(
    program: dict[str, ModuleType], tmp_path: Path
) -> None:
    from hyperagents.runs import evaluate_seed

    task = ArithTask(length=2, n_val=3, n_examples=50)
    program["trainer"].train(_request(task, tmp_path / "model"))
    files = {f"model/{p.name}": p.read_bytes() for p in (tmp_path / "model").iterdir()}

    class WithModel(ArithTask):
        def seed_program(self) -> Any:
            return task.seed_program().with_files(files)

    trial = evaluate_seed(WithModel(length=2, n_val=3, n_examples=50))
    assert trial.validation.ok, trial.validation.errors
    assert trial.result is not None
    model = program["arith_model"].load_model(str(tmp_path / "model"))
    problems = [(i.inputs["a"], i.inputs["b"]) for i in task.instances(Split.VAL)]
    outputs = [r["output"] for r in trial.result.results]
    assert outputs == program["arith_model"].generate(model, problems)


def test_the_runs_training_stage_trains_as_the_trainer_does_in_process(
    program: dict[str, ModuleType], tmp_path: Path
) -> None:
    # Issue 17: the engine's rounds are the direct mode's computation. A child holding its
    # parent's model, trained by the run's stage in the sandbox (checkpoints written after
    # every step, a 63-bit seed as the engine derives), ends with the same bytes as the
    # trainer called in process with the same examples, seed and options.
    from hyperagents.sandbox import get_sandbox
    from hyperagents.weights import TrainingLimits, run_trainer

    task = ArithTask(length=2, n_examples=50)
    program["trainer"].train(_request(task, tmp_path / "parent"))
    parent = {f"model/{p.name}": p.read_bytes() for p in (tmp_path / "parent").iterdir()}
    request = _request(task, tmp_path / "here", model_dir=tmp_path / "parent", seed=2**62 + 7)
    program["trainer"].train(request)
    steps: list[int] = []
    outcome = run_trainer(
        task.seed_program().with_files(parent),
        request["examples"],
        sandbox=get_sandbox("auto", preload=task.sandbox_preload),
        limits=TrainingLimits(seconds=120.0, checkpoint_seconds=1e-9),
        seed=request["seed"],
        options=request["options"],
        on_checkpoint=lambda step, files: steps.append(step),
    )
    assert outcome.ok, outcome.reason
    assert steps, "the sandboxed training wrote no checkpoint"
    here = (tmp_path / "here" / "model.safetensors").read_bytes()
    assert outcome.model["model.safetensors"] == here
    assert here != parent["model/model.safetensors"]


class _Killed(Exception):
    """Stands for the kill of the trainer's process."""


def test_a_training_resumed_from_its_checkpoint_ends_with_the_same_model(
    program: dict[str, ModuleType], tmp_path: Path
) -> None:
    task = ArithTask(length=2, n_examples=50)
    trainer = program["trainer"]
    whole = trainer.train(_request(task, tmp_path / "whole"))
    checkpoints = tmp_path / "checkpoints"
    request = {
        **_request(task, tmp_path / "cut"),
        "checkpoint_dir": str(checkpoints),
        "checkpoint_seconds": 1e-9,  # one after every step
    }
    named: list[str] = []

    def progress(point: dict[str, Any]) -> None:
        if "checkpoint" in point:
            named.append(point["checkpoint"])
            if len(named) == 7:
                raise _Killed

    with pytest.raises(_Killed):
        trainer.train(request, progress)
    assert named[-1] == "step-7" and [p.name for p in checkpoints.iterdir()] == ["step-7"]
    resumed = trainer.train(
        {**request, "resume_dir": str(checkpoints / "step-7"), "checkpoint_seconds": 0},
        named.append,
    )
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("whole", "cut")]
    assert weights[0] == weights[1]
    assert resumed["curve"] == whole["curve"]
    assert named[7]["step"] > 7  # it went on from step 7, not from the start
