"""A program's meta files: the task's declared ``meta_files`` and every top-level ``meta_*.py``
(the meta agent's own modules). One rule, kept by transfers, frozen-meta mode and approval."""

from __future__ import annotations

from typing import Any

import pytest

from hyperagents.improvers import ImproveResult, meta_agent_files
from hyperagents.program import Program
from hyperagents.runs import Mode, Run, RunConfig
from hyperagents.sandbox import is_meta_module
from hyperagents.storages import InMemoryStorage, VariantState

from toytask import META_AGENT, TUNABLE_TASK_AGENT, ToyTask

LLM = meta_agent_files("llm") or {}
OFFLINE = meta_agent_files("offline") or {}


def make_run(
    *, mode: Mode = Mode.HYPERAGENT, meta_from: Program | None = None, **config: Any
) -> Run:
    return Run.create(
        task=ToyTask(task_agent=TUNABLE_TASK_AGENT),
        mode=mode,
        seed=0,
        storage=InMemoryStorage(),
        config=RunConfig.parse({"subset_size": 10, **config}),
        meta_from=meta_from,
    )


def meta_modules(program: Program) -> set[str]:
    return {path for path in program if is_meta_module(path)}


@pytest.mark.parametrize(
    ("path", "meta"),
    [
        ("meta_agent.py", True),
        ("meta_prompt.py", True),
        ("meta_new_idea.py", True),
        ("select_parent.py", True),  # declared by the task
        ("meta_state.json", True),  # the meta agent's state file
        ("task_agent.py", False),
        ("metadata.py", False),
        ("meta_notes.md", False),
        ("meta_state.yaml", False),
        ("pkg/meta_state.json", False),
        ("pkg/meta_prompt.py", False),
    ],
)
def test_the_rule(path: str, meta: bool) -> None:
    assert ToyTask().is_meta_file(path) is meta


def test_every_file_of_the_seed_meta_agents_is_a_meta_file() -> None:
    task = ToyTask()
    for files in (LLM, OFFLINE):
        assert "meta_agent.py" in files and len(files) > 1
    assert all(task.is_meta_file(path) for path in (*LLM, *OFFLINE))
    program = Program({"task_agent.py": "", "helper.py": "", **LLM})
    assert task.meta_paths(program) == sorted(
        {*LLM, "meta_agent.py", "select_parent.py", "planner.py", "reviewer.py"}
    )


def llm_seeded_task() -> ToyTask:
    """The toy task whose own seed program carries the LLM meta agent (all its files)."""
    siblings = {path: text for path, text in LLM.items() if path != "meta_agent.py"}
    return ToyTask(task_agent=TUNABLE_TASK_AGENT, meta_agent=LLM["meta_agent.py"], extra=siblings)


def test_a_seed_meta_agent_brings_all_its_files_and_only_them() -> None:
    run = make_run(meta_agent="llm")
    seed = run.program(run.variants()[0])
    assert meta_modules(seed) == set(LLM)
    assert all(seed.text(path) == text for path, text in LLM.items())
    run = Run.create(
        task=llm_seeded_task(),
        seed=0,
        storage=InMemoryStorage(),
        config=RunConfig.parse({"meta_agent": "offline"}),
    )
    seed = run.program(run.variants()[0])
    assert meta_modules(seed) == set(OFFLINE)  # the LLM agent's own modules went with it
    assert all(seed.text(path) == text for path, text in OFFLINE.items())


def test_a_transfer_carries_the_whole_meta_agent() -> None:
    donor = Program(
        {
            "task_agent.py": "def solve(inputs):\n    return 'lo'\n",
            "meta_extra.py": "X = 1\n",
            "notes.md": "not meta\n",
            **LLM,
        }
    )
    run = make_run(meta_from=donor)
    seed = run.program(run.variants()[0])
    assert meta_modules(seed) == {*LLM, "meta_extra.py"}
    assert seed.text("task_agent.py") == TUNABLE_TASK_AGENT and "notes.md" not in seed
    # A transferred single-file meta agent replaces the seed's one as a whole.
    run = Run.create(
        task=llm_seeded_task(),
        seed=0,
        storage=InMemoryStorage(),
        meta_from=Program({"task_agent.py": "", "meta_agent.py": META_AGENT}),
    )
    seed = run.program(run.variants()[0])
    assert meta_modules(seed) == {"meta_agent.py"} and seed.text("meta_agent.py") == META_AGENT


def _tell(run: Run, edit: dict[str, str | None]) -> Any:
    job = run.ask()
    return run.tell(job, ImproveResult(program=job.request.program.with_files(edit)))


def test_approval_holds_a_change_to_the_code_of_a_sibling_module() -> None:
    run = make_run(meta_agent="llm", approval="manual")
    run.optimize(0)
    child = _tell(run, {"meta_review.py": LLM["meta_review.py"] + "\nEXTRA = len('ab')\n"})
    assert child.state is VariantState.PENDING
    assert "changes the meta agent's code (meta_review.py)" in (child.reason or "")
    child = _tell(run, {"meta_brand_new.py": "def helper():\n    return 1\n"})
    assert child.state is VariantState.PENDING
    assert "(meta_brand_new.py)" in (child.reason or "")
    # Literal state kept in a sibling module is adaptation, as in meta_agent.py.
    stages = 'SHOWN_STAGES = ("train", "val", "train_subset")'
    assert stages in LLM["meta_report.py"]
    adapted = LLM["meta_report.py"].replace(stages, 'SHOWN_STAGES = ("train", "val")')
    child = _tell(run, {"meta_report.py": adapted})
    assert child.state is not VariantState.PENDING
    events = run.storage.list_events(run.id, kinds=["variant.meta_state"])
    assert any("meta_report.py" in event.message for event in events)


def test_frozen_meta_keeps_the_seeds_meta_agent_whole() -> None:
    run = make_run(mode=Mode.FROZEN_META, meta_agent="llm")
    run.optimize(0)
    job = run.ask()
    assert meta_modules(job.request.program) == set(LLM)
    edited = job.request.program.with_files(
        {
            "meta_review.py": LLM["meta_review.py"] + "\nEXTRA = 1\n",
            "meta_extra.py": "X = 1\n",
            "task_agent.py": TUNABLE_TASK_AGENT.replace('"t": 0.2', '"t": 0.7'),
        }
    )
    child = run.tell(job, ImproveResult(program=edited))
    program = run.program(child)
    assert meta_modules(program) == set(LLM)
    assert program.text("meta_review.py") == LLM["meta_review.py"]
    assert '"t": 0.7' in program.text("task_agent.py")


STATE = '{"step_scale": 0.3}\n'


def test_the_state_file_travels_with_the_meta_agent() -> None:
    donor = Program({"task_agent.py": "", **OFFLINE, "meta_state.json": STATE})
    run = make_run(meta_from=donor)
    seed = run.program(run.variants()[0])
    assert seed.text("meta_state.json") == STATE
    # A meta agent transferred without a state file leaves none of the seed's behind.
    run = Run.create(
        task=ToyTask(task_agent=TUNABLE_TASK_AGENT, extra={"meta_state.json": STATE}),
        seed=0,
        storage=InMemoryStorage(),
        meta_from=Program({"task_agent.py": "", **OFFLINE}),
    )
    assert "meta_state.json" not in run.program(run.variants()[0])


def test_frozen_meta_discards_the_state_the_meta_agent_wrote() -> None:
    run = make_run(mode=Mode.FROZEN_META, meta_agent="offline")
    run.optimize(0)
    task_edit = TUNABLE_TASK_AGENT.replace('"t": 0.2', '"t": 0.7')
    child = _tell(run, {"meta_state.json": STATE, "task_agent.py": task_edit})
    program = run.program(child)
    assert "meta_state.json" not in program
    assert '"t": 0.7' in program.text("task_agent.py")


def test_approval_does_not_hold_a_child_that_only_adapted_its_state() -> None:
    run = make_run(meta_agent="offline", approval="manual")
    run.optimize(0)
    child = _tell(run, {"meta_state.json": STATE})
    assert child.state is not VariantState.PENDING, child.reason
    events = run.storage.list_events(run.id, kinds=["variant.meta_state"])
    assert [event.variant_id for event in events] == [child.id]
    assert "(meta_state.json)" in events[0].message
    # Garbage in the state file is still data; a new module beside it is code.
    child = _tell(run, {"meta_state.json": "\x00 not json"})
    assert child.state is not VariantState.PENDING, child.reason
    child = _tell(run, {"meta_state.json": STATE + " ", "meta_more.py": "X = len('a')\n"})
    assert child.state is VariantState.PENDING
    assert "changes the meta agent's code (meta_more.py)" in (child.reason or "")
