"""The offline seed meta agent chooses the lever where the program has a trainer: a weight
update (``training_plan.json``) with its portfolio's ``weights_share``, adapted from the
outcomes of earlier updates; always one where the task agent declares nothing to tune."""

from __future__ import annotations

from hyperagents.runs import Run, RunConfig
from hyperagents.storages import InMemoryStorage, VariantState

from weightstask import TASK_AGENT, WeightsTask

TUNABLE = TASK_AGENT.replace(
    'PARAMS = {"t": 0.2}',
    'PARAMS = {"t": 0.2}\nPARAM_SPACE = {"t": {"type": "float", "low": 0.0, "high": 1.0}}',
)


class _TunableWeightsTask(WeightsTask):
    """The weights task whose task agent also declares a parameter to tune."""

    def __init__(self) -> None:
        super().__init__()
        self._files["task_agent.py"] = TUNABLE


def _offline_run(task: WeightsTask, generations: int) -> Run:
    run = Run.create(
        task=task,
        storage=InMemoryStorage(),
        config=RunConfig.parse({"subset_size": 10, "meta_agent": "offline"}),
    )
    run.optimize(generations)
    return run


def test_with_nothing_to_tune_every_edit_is_a_weight_update() -> None:
    run = _offline_run(WeightsTask(), 3)
    children = [v for v in run.variants() if v.generation > 0]
    assert all(v.meta_info["operator"] == "weights" for v in children)
    assert all(v.metrics["training"]["state"] == "done" for v in children)
    assert children[0].meta_info["plan"]["sources"] == ["self", "task", "people"]
    # its share grew with the updates that improved on their parents (the agent's own data)
    shares = [v.meta_info["meta"]["portfolio"]["weights_share"] for v in children]
    assert shares[0] == 0.5 and shares[-1] > shares[0]


def test_with_parameters_to_tune_the_agent_chooses_between_levers() -> None:
    run = _offline_run(_TunableWeightsTask(), 6)
    children = [v for v in run.variants() if v.generation > 0]
    levers = {v.metrics["training"]["lever"] for v in children}
    assert levers == {"weights", "harness"}
    for child in children:
        operator = child.meta_info["operator"]
        assert (operator == "weights") is (child.metrics["training"]["lever"] == "weights")
        assert child.state is not VariantState.FAILED


def test_levers_harness_turns_the_agents_weight_updates_into_nothing() -> None:
    run = Run.create(
        task=WeightsTask(),
        storage=InMemoryStorage(),
        config=RunConfig.parse({"subset_size": 10, "meta_agent": "offline", "levers": "harness"}),
    )
    run.optimize(1)
    child = run.variants()[1]
    # the plan reduced to the harness; only the meta agent's own state changed
    assert child.metrics["training"]["lever"] == "harness"
    assert child.metrics["training"]["chosen"] == "weights"
    assert child.state is VariantState.COMPLETE
    program = run.storage.get_program(child.program_id)
    seed = run.storage.get_program(run.variants()[0].program_id)
    assert seed.changed_paths(program) == ["meta_state.json"]
