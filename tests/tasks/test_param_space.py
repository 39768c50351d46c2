"""A task agent's declared search space is checked when a run is created, each problem named."""

from __future__ import annotations

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.improvers import meta_agent_files
from hyperagents.program import Program
from hyperagents.runs import Run
from hyperagents.storages import InMemoryStorage
from hyperagents.tasks import (
    BUILTIN_TASKS,
    load_task,
    param_space_errors,
    program_param_space_errors,
    scaffold_task,
)

from toytask import TUNABLE_TASK_AGENT, ToyTask


def agent(params: str, space: str) -> str:
    return f"PARAMS = {params}\nPARAM_SPACE = {space}\n\n\ndef solve(inputs):\n    return 0\n"


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_the_built_in_seeds_declare_valid_spaces(name: str) -> None:
    assert program_param_space_errors(load_task(name).seed_program()) == []


def test_the_scaffolds_space_is_valid(tmp_path) -> None:
    folder = scaffold_task("demo_task", tmp_path)
    seed = Program.from_directory(folder / "seed")
    assert "PARAM_SPACE" in seed.text("task_agent.py")
    assert program_param_space_errors(seed) == []


def test_a_typo_in_a_key_is_named_with_a_suggestion() -> None:
    errors = param_space_errors(agent("{'w': 0.5}", "{'w': {'low': 0.0, 'hi': 1.0}}"))
    assert any("PARAM_SPACE['w']: unknown key 'hi' (did you mean 'high'?)" in e for e in errors)
    assert any("PARAM_SPACE['w']: a float needs 'high'" in e for e in errors)


@pytest.mark.parametrize(
    ("params", "space", "expected"),
    [
        ("{'w': 0.5}", "{'w': {'low': 0, 'high': 1, 'scale': 'log'}}", "needs low > 0"),
        ("{'w': 0.5}", "{'w': {'low': 0.1, 'high': 1, 'scale': 'logarithmic'}}", "scale"),
        ("{'w': 0.5}", "{'w': {'low': 1.0, 'high': 0.0}}", "low 1.0 is above high 0.0"),
        ("{'w': 5.0}", "{'w': {'low': 0.0, 'high': 1.0}}", "is outside [0.0, 1.0]"),
        ("{'w': 0.5}", "{'w': {'low': 0.0, 'high': float('inf')}}", "must be a literal"),
        ("{'w': 0.5}", "{'w': {'low': 0.0, 'high': 'one'}}", "'high' must be a finite number"),
        ("{'w': 0.5}", "{'v': {'low': 0.0, 'high': 1.0}}", "no parameter 'v' in PARAMS"),
        ("{'w': 0.5}", "{'w': {'type': 'double', 'low': 0, 'high': 1}}", "type 'double'"),
        ("{'w': 'a'}", "{'w': {'choices': []}}", "a non-empty list"),
        ("{'w': 'a'}", "{'w': {'choices': ['b', 'c']}}", "'a', is not among its choices"),
        ("{'w': True}", "{'w': {'low': 0}}", "'low' does not apply to a bool parameter"),
        ("{'w': 1}", "{'w': {'type': 'bool'}}", "a bool parameter, but PARAMS['w'] = 1"),
        ("{'w': 0.5}", "{'w': {'low': 0, 'high': 1, 'feature': 3}}", "'feature' must be"),
        ("{'w': 0.5}", "{'w': 0.5}", "PARAM_SPACE['w']: must be a dict"),
        ("{'w': 0.5}", "[('w', 1)]", "PARAM_SPACE must be a dict literal, got list"),
    ],
)
def test_each_problem_is_named(params: str, space: str, expected: str) -> None:
    errors = param_space_errors(agent(params, space))
    assert any(expected in e for e in errors), errors


def test_valid_spaces_and_sources_without_one_have_no_problems() -> None:
    space = (
        "{'a': {'type': 'float', 'low': 0.01, 'high': 10, 'scale': 'log', 'feature': 'x'},"
        " 'b': {'type': 'int', 'low': 0, 'high': 9, 'feature': ['x', 'y']},"
        " 'c': {'choices': ['p', 'q']}, 'd': {}, 'e': {'low': 2, 'high': 2}}"
    )
    params = "{'a': 1.0, 'b': 3, 'c': 'q', 'd': False, 'e': 2, 'unbounded': 7}"
    assert param_space_errors(agent(params, space)) == []
    assert param_space_errors("def solve(inputs):\n    return 1\n") == []
    assert param_space_errors("def solve(:\n") == []  # validation reports a syntax error
    assert param_space_errors("PARAM_SPACE = {}\n") != []  # the values it bounds are missing


def offline_toy(task_agent: str) -> ToyTask:
    """The toy task with the built-in offline meta agent, the one that reads PARAM_SPACE."""
    files = dict(meta_agent_files("offline") or {})
    return ToyTask(task_agent=task_agent, meta_agent=files.pop("meta_agent.py"), extra=files)


def test_a_run_with_a_bad_space_is_refused_and_nothing_is_stored() -> None:
    store = InMemoryStorage()
    bad = TUNABLE_TASK_AGENT.replace('"high": 1.0', '"hi": 1.0')
    with pytest.raises(ConfigError) as caught:
        Run.create(task=offline_toy(bad), storage=store)
    message = str(caught.value)
    assert "task_agent.py: PARAM_SPACE['t']: unknown key 'hi' (did you mean 'high'?)" in message
    assert store.list_runs() == []
    Run.create(task=offline_toy(TUNABLE_TASK_AGENT), storage=store)
    assert len(store.list_runs()) == 1
    # a meta agent of the task's own may read the literal its own way: not checked
    Run.create(task=ToyTask(task_agent=bad), storage=store)
    assert len(store.list_runs()) == 2


def test_the_scaffold_uses_the_installed_meta_agent_unless_copied(tmp_path) -> None:
    installed = meta_agent_files("offline") or {}
    shared = scaffold_task("shared_meta", tmp_path / "a")
    task = load_task(f"{shared / 'task.py'}:SharedMetaTask")
    assert sorted(p.name for p in (shared / "seed").iterdir()) == ["task_agent.py"]
    program = task.seed_program()
    assert {path: program.text(path) for path in installed} == installed
    forked = scaffold_task("own_meta", tmp_path / "b", copy_meta=True)
    (forked / "seed" / "meta_agent.py").write_text(
        "def improve(workspace, report):\n    return {}\n"
    )
    own = load_task(f"{forked / 'task.py'}:OwnMetaTask").seed_program()
    assert own.text("meta_agent.py").startswith("def improve(workspace, report):")
    assert set(installed) <= set(own)  # its sibling modules were copied too
