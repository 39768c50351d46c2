"""The training step in runs: a child that plans a weight update is trained in the sandbox,
its model lands in ``model/``, every example is recorded with its source, the run's levers
bound the choice, a failing trainer fails its child alone, and the result is reproducible."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hyperagents.runs import Run, RunConfig
from hyperagents.runs._context import RunContext
from hyperagents.runs._training import Training
from hyperagents.storages import (
    EventSpec,
    InMemoryStorage,
    RunStatus,
    VariantRecord,
    VariantState,
)
from hyperagents.tasks import Instance, Split
from hyperagents.weights import LABEL_EVENT, check_model, model_files, post_label

from toytask import ToyTask
from weightstask import TRAINER, WeightsTask


def _run(task: WeightsTask, *, seed: int = 0, **config: Any) -> Run:
    return Run.create(
        task=task,
        storage=InMemoryStorage(),
        seed=seed,
        config=RunConfig.parse({"subset_size": 10, **config}),
    )


def _child(run: Run, generation: int = 1) -> VariantRecord:
    return next(v for v in run.variants() if v.generation == generation)


def _trained_events(run: Run, variant_id: int) -> list[Any]:
    return run.storage.list_events(run.id, kinds=["variant.trained"], variant_id=variant_id)


def test_a_weight_update_trains_the_child_and_records_its_data() -> None:
    run = _run(WeightsTask())
    assert run.optimize(2).status is RunStatus.COMPLETE
    seed, child = _child(run, 0), _child(run, 1)
    assert child.state is VariantState.COMPLETE
    training = child.metrics["training"]
    assert training["lever"] == "weights" and training["state"] == "done"
    assert training["sources"]["task"] == 8 and training["sources"]["self"] > 0
    assert training["examples"] == sum(training["sources"].values())
    assert (
        len(training["curve"]) == 150
        and training["curve"][-1]["loss"] < training["curve"][0]["loss"]
    )
    program = run.storage.get_program(child.program_id)
    assert check_model(model_files(program)) is None
    assert "training_plan.json" not in program  # the plan is consumed
    parent = run.storage.get_program(seed.program_id)
    assert sorted(parent.changed_paths(program)) == ["model/config.json", "model/model.safetensors"]
    (event,) = _trained_events(run, child.id)
    examples = event.data["examples"]
    assert len(examples) == training["examples"]
    assert {e["source"] for e in examples} == {"self", "task"}
    train_ids = {i.id for i in run.task.instances(Split.TRAIN)}
    assert all(e["id"] in train_ids for e in examples if e["source"] == "self")
    # the parent's own outputs were kept only where the verifier accepted them
    targets = {i.id: i.target for i in run.task.instances(Split.TRAIN)}
    assert all(e["output"] == targets[e["id"]] for e in examples if e["source"] == "self")
    assert child.scores["val"] > seed.scores["val"]


def test_the_model_is_a_safetensors_file_others_can_read() -> None:
    numpy_loader = pytest.importorskip("safetensors.numpy")
    run = _run(WeightsTask())
    run.optimize(1)
    program = run.storage.get_program(_child(run).program_id)
    tensors = numpy_loader.load(program["model/model.safetensors"])
    assert tensors["wb"].shape == (2,)
    assert json.loads(program["model/config.json"])["kind"] == "logistic"


def test_the_same_seed_gives_the_same_child_bytes() -> None:
    first, second = _run(WeightsTask(), seed=3), _run(WeightsTask(), seed=3)
    first.optimize(2)
    second.optimize(2)
    assert [v.program_id for v in first.variants()] == [v.program_id for v in second.variants()]
    assert (
        _child(first, 2).metrics["training"]["curve"]
        == _child(second, 2).metrics["training"]["curve"]
    )


class _LeakyTask(WeightsTask):
    """A task whose own training examples include a val instance (by id) and a test
    instance's inputs (under a fresh id): neither may become an example."""

    def training_examples(self) -> list[Instance]:
        val, test = self.instances(Split.VAL)[0], self.instances(Split.TEST)[0]
        leaked = [
            Instance(val.id, val.inputs, val.target),
            Instance("fresh-id", test.inputs, test.target),
        ]
        return [*super().training_examples(), *leaked]


def test_val_and_test_data_never_become_examples() -> None:
    task = _LeakyTask(sources=("self", "task", "people", "teacher"))
    run = _run(task)
    held_out = [i for split in (Split.VAL, Split.TEST) for i in task.instances(split)]
    # labels for held-out instances forced into the store, past the API's own refusal
    for inst in held_out:
        run.storage.add_event(
            run.id, LABEL_EVENT, "forced", data={"instance_id": inst.id, "output": inst.target}
        )
    run.optimize(2)
    held_ids = {i.id for i in held_out}
    held_inputs = {json.dumps(i.inputs, sort_keys=True) for i in held_out}
    train_inputs = {i.id: i.inputs for i in task.instances(Split.TRAIN)}
    for child in (_child(run, 1), _child(run, 2)):
        (event,) = _trained_events(run, child.id)
        assert event.data["examples"]
        for example in event.data["examples"]:
            assert example["id"] not in held_ids
            inputs = train_inputs.get(example["id"])
            if inputs is not None:
                assert json.dumps(inputs, sort_keys=True) not in held_inputs
        assert child.metrics["training"]["sources"]["task"] == 8  # the two leaks left out


def test_people_labels_for_train_instances_are_trained_on() -> None:
    task = WeightsTask(sources=("people",))
    run = _run(task)
    train = task.instances(Split.TRAIN)
    for inst in train[:6]:
        post_label(run.storage, run.id, task, inst.id, inst.target, by="ann")
    run.optimize(1)
    child = _child(run)
    assert child.metrics["training"]["sources"] == {"people": 6}
    (event,) = _trained_events(run, child.id)
    assert sorted(e["id"] for e in event.data["examples"]) == sorted(i.id for i in train[:6])


def test_levers_harness_forbids_weight_updates() -> None:
    run = _run(WeightsTask(lever="both"), levers="harness")
    run.optimize(1)
    child = _child(run)
    training = child.metrics["training"]
    assert training["lever"] == "harness" and training["chosen"] == "both"
    assert "levers 'harness'" in training["reduced"] and training["state"] == "none"
    program = run.storage.get_program(child.program_id)
    assert not model_files(program) and not _trained_events(run, child.id)
    assert b'"t": 0.25' in program["task_agent.py"]  # the code edit is kept


def test_levers_weights_undoes_code_edits() -> None:
    run = _run(WeightsTask(lever="both"), levers="weights")
    run.optimize(1)
    child = _child(run)
    training = child.metrics["training"]
    assert training["lever"] == "weights" and training["undone"] == ["task_agent.py"]
    program = run.storage.get_program(child.program_id)
    seed = run.storage.get_program(_child(run, 0).program_id)
    assert program["task_agent.py"] == seed["task_agent.py"]
    assert training["state"] == "done" and model_files(program)


def test_both_levers_edit_and_train() -> None:
    run = _run(WeightsTask(lever="both"))
    run.optimize(1)
    child = _child(run)
    program = run.storage.get_program(child.program_id)
    assert child.metrics["training"]["lever"] == "both"
    assert b'"t": 0.25' in program["task_agent.py"] and model_files(program)


def test_a_child_without_a_plan_chose_the_harness() -> None:
    run = Run.create(
        task=ToyTask(), storage=InMemoryStorage(), config=RunConfig.parse({"subset_size": 10})
    )
    run.optimize(1)
    training = _child(run).metrics["training"]
    assert training["lever"] == "harness" and training["chosen"] == "harness"
    assert training["state"] == "none" and "reduced" not in training


def test_a_plan_without_a_trainer_is_the_harness_recorded() -> None:
    plan = (
        ToyTask()
        .seed_program()["meta_agent.py"]
        .decode()
        .replace(
            "def improve(workspace, report):\n",
            "def improve(workspace, report):\n"
            "    open(workspace + '/training_plan.json', 'w').write('{\"lever\": \"weights\"}')\n",
        )
    )
    run = Run.create(
        task=ToyTask(meta_agent=plan),
        storage=InMemoryStorage(),
        config=RunConfig.parse({"subset_size": 10}),
    )
    run.optimize(1)
    child = _child(run)
    training = child.metrics["training"]
    assert training["chosen"] == "weights" and training["lever"] == "harness"
    assert "without a trainer.py" in training["reduced"]
    assert child.state is VariantState.COMPLETE
    assert "training_plan.json" not in run.storage.get_program(child.program_id)


CRASHING = TRAINER.replace(
    "    rng = random.Random", "    raise RuntimeError('boom')\n    rng = random.Random"
)
SILENT = TRAINER.replace('    write_model(request["out_dir"], w, b)\n', "")
GARBAGE = TRAINER.replace(
    '    write_model(request["out_dir"], w, b)\n',
    "    open(request['out_dir'] + '/config.json', 'w').write('{}')\n"
    "    open(request['out_dir'] + '/model.safetensors', 'wb').write(b'\\x10' * 30)\n",
)
SPINNING = TRAINER.replace(
    "    rng = random.Random", "    while True:\n        pass\n    rng = random.Random"
)


@pytest.mark.parametrize(
    ("trainer", "reason"),
    [
        (CRASHING, "trainer failed: exception"),
        (SILENT, "no config.json"),
        (GARBAGE, "model.safetensors"),
        (SPINNING, "timeout"),
    ],
)
def test_a_failing_trainer_fails_its_child_alone(trainer: str, reason: str) -> None:
    run = _run(WeightsTask(trainer=trainer), training={"seconds": 3})
    assert run.optimize(2).status is RunStatus.COMPLETE
    for generation in (1, 2):
        child = _child(run, generation)
        assert child.state is VariantState.INVALID
        assert reason in (child.reason or "")
        assert child.metrics["training"]["state"] == "failed"
        (event,) = run.storage.list_events(run.id, kinds=["variant.invalid"], variant_id=child.id)
        assert len(event.data["examples"]) == child.metrics["training"]["examples"] > 0


@pytest.mark.parametrize(
    ("trainer", "reason"),
    [
        ("def fit(request):\n    return {}\n", "trainer.py: does not define a callable 'train'"),
        ("def train(:\n", "trainer.py:1: syntax error"),
    ],
)
def test_a_program_is_validated_with_its_trainer(trainer: str, reason: str) -> None:
    run = _run(WeightsTask(trainer=trainer))
    run.optimize(0)
    seed = _child(run, 0)
    assert seed.state is VariantState.INVALID
    assert reason in (seed.reason or "")


TORCH_TRAINER = TRAINER.replace(
    '    write_model(request["out_dir"], w, b)\n',
    '    import torch\n    write_model(request["out_dir"], w, b)\n',
).replace('"metrics": {', '"metrics": {"torch_threads": torch.get_num_threads(), ')


def test_torch_in_the_trainer_runs_with_the_stages_threads() -> None:
    pytest.importorskip("torch")
    task = WeightsTask(trainer=TORCH_TRAINER, options={"epochs": 5})
    run = _run(task, training={"threads": 2})
    run.optimize(1)
    child = _child(run)
    assert child.state is VariantState.COMPLETE, child.reason
    assert child.metrics["training"]["trainer_metrics"]["torch_threads"] == 2.0


def test_the_parents_outputs_missing_from_the_record_are_made_in_the_sandbox() -> None:
    run = _run(WeightsTask())
    run.optimize(0)
    seed = _child(run, 0)
    storage = run.storage
    # a parent with the seed's program but no evaluation recorded (its outputs unknown)
    parent_id = storage.create_variant(
        run_id=run.id,
        generation=1,
        parent_id=seed.id,
        program_id=seed.program_id,
        state=VariantState.COMPLETE,
        event=EventSpec("variant.created", "test"),
    )
    child_id = storage.create_variant(
        run_id=run.id, generation=2, parent_id=parent_id, state=VariantState.RUNNING
    )
    ctx = RunContext(storage=storage, record=run.record(), task=run.task)
    outputs, seconds = Training(ctx)._parent_outputs(storage.get_variant(child_id))
    recorded = {
        r["id"]: r["output"]
        for e in storage.list_evaluations(seed.id)
        if e.stage == "train"
        for r in e.results
    }
    assert outputs == recorded and seconds > 0  # the same outputs, made again


MEDDLING = TRAINER.replace(
    '    write_model(request["out_dir"], w, b)\n',
    '    write_model(request["out_dir"], w, b)\n'
    "    open('task_agent.py', 'w').write('def solve(inputs):\\n    return \"hi\"\\n')\n"
    "    open('model_io.py', 'a').write('# edited by the trainer\\n')\n",
)
LINKING = TRAINER.replace(
    '    write_model(request["out_dir"], w, b)\n',
    '    write_model(request["out_dir"], w, b)\n'
    "    import os\n    os.symlink('/etc/passwd', request['out_dir'] + '/leak.safetensors')\n",
)


def test_only_the_model_a_trainer_writes_reaches_the_child() -> None:
    run = _run(WeightsTask(trainer=MEDDLING))
    run.optimize(1)
    child, seed = _child(run), _child(run, 0)
    assert child.state is VariantState.COMPLETE
    parent = run.storage.get_program(seed.program_id)
    program = run.storage.get_program(child.program_id)
    assert sorted(parent.changed_paths(program)) == [
        "model/config.json",
        "model/model.safetensors",
    ]


def test_a_link_in_the_trainers_output_is_refused() -> None:
    run = _run(WeightsTask(trainer=LINKING))
    assert run.optimize(1).status is RunStatus.COMPLETE
    child = _child(run)
    assert child.state is VariantState.INVALID
    assert "trainer's output unreadable" in (child.reason or "")


class _UnverifiedTask(WeightsTask):
    """The same task, declared without a verifier: its own outputs are kept by vote."""

    has_verifier = False


def _lineage(run: Run, variant: VariantRecord) -> list[VariantRecord]:
    found = []
    current = variant.parent_id
    while current is not None:
        found.append(run.storage.get_variant(current))
        current = found[-1].parent_id
    return found


def test_without_a_verifier_the_lineage_votes_on_the_self_examples() -> None:
    run = _run(_UnverifiedTask(), selector="best", training={"quorum": 2, "voters": 3})
    run.optimize(4)
    stored: dict[int, dict[str, Any]] = {}
    for variant in run.variants():
        stored[variant.id] = {
            r["id"]: r["output"]
            for e in run.storage.list_evaluations(variant.id)
            if e.split == "train" and e.stage in ("train", "train_subset")
            for r in e.results
            if r.get("error") is None
        }
    voted_some = False
    for generation in (1, 2, 3, 4):
        child = _child(run, generation)
        (event,) = _trained_events(run, child.id)
        voters = [stored[v.id] for v in _lineage(run, child)[:3]]
        votes = [e for e in event.data["examples"] if e["source"] != "task"]
        assert {e["source"] for e in votes} <= {"self-vote"}
        for example in votes:
            answers = [b[example["id"]] for b in voters if example["id"] in b]
            assert len(answers) >= 2 and 2 * answers.count(example["output"]) > len(answers)
        if len(voters) < 2:
            assert votes == []  # one voter never reaches the quorum of two
        voted_some = voted_some or bool(votes)
    assert voted_some


def test_a_resumed_training_that_fails_runs_again_from_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from hyperagents.runs._checkpoints import CheckpointStore
    from hyperagents.storages import RDBStorage

    given: list[tuple[int, int]] = []

    def stale(self: CheckpointStore, run_id: int, variant_id: int, key: str) -> Any:
        given.append((run_id, variant_id))
        return (3, {"state.json": b"{not json"}) if len(given) == 1 else None

    monkeypatch.setattr(CheckpointStore, "load", stale)
    storage = RDBStorage(f"sqlite:///{tmp_path / 'run.db'}")
    try:
        run = Run.create(
            task=WeightsTask(),
            storage=storage,
            seed=0,
            config=RunConfig.parse({"subset_size": 10}),
        )
        assert run.optimize(1).status is RunStatus.COMPLETE
        child = _child(run, 1)
        training = child.metrics["training"]
        assert training["state"] == "done" and "resumed_from" not in training
        (resumed,) = storage.list_events(run.id, kinds=["training.resumed"])
        assert resumed.variant_id == child.id and resumed.data["step"] == 3
        assert given == [(run.id, child.id)] * 2  # the checkpoint's run failed; then from scratch
    finally:
        storage.close()
