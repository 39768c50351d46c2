"""MetaAgentImprover: runs a program's meta agent in the sandbox and reads back the child."""

from __future__ import annotations

from hyperagents.improvers import ImproveRequest, MetaAgentImprover, meta_agent_files
from hyperagents.sandbox import Limits, ProcessSandbox

from toytask import TUNABLE_TASK_AGENT, ToyTask

IMPROVER = MetaAgentImprover(sandbox=ProcessSandbox(), limits=Limits(wall_time=30))


def test_child_is_the_edited_workspace() -> None:
    parent = ToyTask().seed_program()
    result = IMPROVER.improve(ImproveRequest(parent, {"seed": 3}, 3))
    assert result.program is not None and result.reason is None
    assert result.program["task_agent.py"] != parent["task_agent.py"]
    assert result.meta_info["operator"] == "step"
    assert result.metrics["wall"] > 0
    again = IMPROVER.improve(ImproveRequest(parent, {"seed": 3}, 3))
    assert again.program == result.program  # deterministic for a seed


def test_failures_are_results_not_exceptions() -> None:
    meta = "def improve(workspace, report):\n    raise RuntimeError('meta kaput')\n"
    parent = ToyTask(meta_agent=meta).seed_program()
    result = IMPROVER.improve(ImproveRequest(parent, {"seed": 1}, 1))
    assert result.program is None and "meta kaput" in (result.reason or "")


def test_huge_or_odd_meta_info_is_capped() -> None:
    meta = (
        "def improve(workspace, report):\n"
        "    open(workspace + '/x.txt', 'w').write('x')\n"
        "    return {'blob': 'y' * 200000}\n"
    )
    result = IMPROVER.improve(ImproveRequest(ToyTask(meta_agent=meta).seed_program(), {}, 0))
    assert result.program is not None and "truncated_meta_info" in result.meta_info
    meta = (
        "def improve(workspace, report):\n"
        "    open(workspace + '/x.txt', 'w').write('x')\n    return 42\n"
    )
    result = IMPROVER.improve(ImproveRequest(ToyTask(meta_agent=meta).seed_program(), {}, 0))
    assert result.meta_info == {"result": 42}


def test_symlink_left_in_workspace_invalidates_the_child() -> None:
    meta = (
        "import os\ndef improve(workspace, report):\n"
        "    os.symlink('/etc/passwd', workspace + '/leak')\n    return {}\n"
    )
    result = IMPROVER.improve(ImproveRequest(ToyTask(meta_agent=meta).seed_program(), {}, 0))
    assert result.program is None and "invalid workspace" in (result.reason or "")


def test_offline_meta_agent_source_is_shipped() -> None:
    assert "def improve(" in (meta_agent_files("offline") or {})["meta_agent.py"]


def test_the_offline_seed_runs_in_the_sandbox_with_its_sibling_modules() -> None:
    # The offline seed: meta_agent.py imports its meta_*.py siblings from the workspace.
    task = ToyTask(task_agent=TUNABLE_TASK_AGENT)
    parent = task.with_meta_agent(task.seed_program(), meta_agent_files("offline") or {})
    assert len([path for path in parent if path.startswith("meta_")]) > 1
    result = IMPROVER.improve(ImproveRequest(parent, {"seed": 3}, 3))
    assert result.program is not None, result.reason
    assert result.meta_info["agent"] == "offline-meta-agent"
    assert result.meta_info["meta_self_edited"] is True
    # It wrote its own state file and the task agent's PARAMS; its code files are unchanged
    # and no bytecode came back.
    assert parent.changed_paths(result.program) == ["meta_state.json", "task_agent.py"]
    assert all(result.program[path] == parent[path] for path in parent if path != "task_agent.py")


def test_a_meta_agent_of_several_files_runs_in_the_sandbox() -> None:
    # meta_agent.py imports its sibling meta_*.py modules from the workspace by name.
    meta = (
        "from meta_steps import step\n\n"
        "def improve(workspace, report):\n"
        "    path = workspace + '/task_agent.py'\n"
        "    source = open(path).read()\n"
        "    open(path, 'w').write(source.replace('0.2', str(step(0.2))))\n"
        "    return {'operator': 'steps'}\n"
    )
    steps = "def step(value):\n    return round(value + 0.1, 4)\n"
    task = ToyTask(task_agent=TUNABLE_TASK_AGENT, meta_agent=meta, extra={"meta_steps.py": steps})
    parent = task.seed_program()
    result = IMPROVER.improve(ImproveRequest(parent, {"seed": 3}, 3))
    assert result.program is not None, result.reason
    assert result.meta_info == {"operator": "steps"}
    assert '"t": 0.3' in result.program.text("task_agent.py")
    # Nothing but the edit came back (no bytecode of the imported module).
    assert parent.changed_paths(result.program) == ["task_agent.py"]
