"""Hostile candidates: every attack of the sandbox issue, a real program through a real sandbox.

The cases live in :mod:`hyperagents.testing.hostile` (shared with ``benchmarks/bench_hostile.py``).
Each runs through both sandboxes. Where a sandbox is expected to contain a case, the test asserts
containment (host-side evidence, no stray process, killed in time) and the recorded outcome and
reason. Where the ``process`` sandbox documents that it does not contain a case (no filesystem
isolation, no private uid), the test asserts that documented behaviour, or skips the case when
running it uncontained would be unsafe (fork bomb, killing the parent).

The engine tests put hostile code into a run (task agent or meta agent) with the ``bwrap`` sandbox
and check that the run completes, records the right reason and carries on to the next generation.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from hyperagents.evaluation import evaluate_stage
from hyperagents.program import Program
from hyperagents.runs import Run, RunConfig
from hyperagents.sandbox import (
    BwrapSandbox,
    Limits,
    Outcome,
    ProcessSandbox,
    Sandbox,
    bwrap_available,
)
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState
from hyperagents.tasks import Split, Task
from hyperagents.testing.hostile import (
    HOSTILE_CASES,
    HostileCase,
    fork_bomb_counts,
    network_probe,
    run_case,
    sandbox_traits,
    stray_processes,
)

from toytask import ToyTask

pytestmark = pytest.mark.slow

BWRAP = bwrap_available()
needs_bwrap = pytest.mark.skipif(
    not BWRAP and os.environ.get("CI") != "true", reason="bubblewrap is not available here"
)
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(
    scope="module",
    params=[
        "process",
        "process-forked",
        pytest.param("bwrap", marks=needs_bwrap),
        pytest.param("bwrap-forked", marks=needs_bwrap),
    ],
)
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """Each sandbox cold (a process started per request) and forked (a fork server's child:
    every case must be contained there too, and leave the server fit for the next)."""
    made = ProcessSandbox() if request.param.startswith("process") else BwrapSandbox()
    if request.param.endswith("-forked"):
        made.set_warm(1)
    yield made
    made.close()


def _until_ready(sandbox: Sandbox) -> None:
    deadline = time.monotonic() + 60
    while getattr(sandbox, "standbys", 0) < 1:
        assert time.monotonic() < deadline, "no fork server is ready"
        time.sleep(0.01)


def _why_uncontained(case: HostileCase, sandbox: Sandbox) -> str:
    return (
        f"{case.name} is not contained by the {sandbox.name} sandbox here (it would need one "
        f"of {sorted(case.needs_any)}; it has {sorted(sandbox_traits(sandbox))}); "
        "not run: unsafe on a shared machine"
    )


#: Slack for a loaded machine, in seconds: past a case's wall-clock limit for the sandbox to
#: answer, and for the processes of a killed case to go. Only a hang or a process that was not
#: killed outlasts it (the hostile programs sleep or loop for an hour or more).
PATIENCE = 30.0


@pytest.mark.parametrize("name", list(HOSTILE_CASES))
def test_hostile_case(name: str, sandbox: Sandbox, tmp_path: Path) -> None:
    case = HOSTILE_CASES[name]
    traits = sandbox_traits(sandbox)
    expected = not case.needs_any or bool(case.needs_any & traits)
    if case.unsafe_uncontained and not expected:
        pytest.skip(_why_uncontained(case, sandbox))
    forked = getattr(sandbox, "warm", 0) > 0
    if forked:  # the last case may have cost the server: wait for its replacement
        _until_ready(sandbox)
    report = run_case(
        case, sandbox, tmp_path, traits=traits, kill_margin=PATIENCE, stray_grace=PATIENCE
    )
    # Never skipped silently: a sandbox that promises no network must pass the network probe.
    assert report.ran, report.note
    assert report.result is not None
    assert report.result.extra.get("start") == ("forked" if forked else "cold")
    # Whatever the sandbox, the engine gets its answer in bounded time: never a hang.
    assert report.in_time, f"{report.seconds:.1f} s > {report.kill_bound:.1f} s"
    if expected:
        assert report.breaches == [], report.breaches
        assert report.stray == [], f"stray processes: {report.stray}"
        assert report.contained
        assert report.outcome is case.outcome, report.reason
        assert re.search(case.reason, report.reason), report.reason
        assert report.reason_ok
    elif not getattr(sandbox, "isolates_user", False):
        _assert_documented_uncontained(case, report.breaches, report.stray, report.reason)
    _assert_case_specifics(case, report.result, report.score, sandbox)


def _assert_documented_uncontained(
    case: HostileCase, breaches: list[str], stray: list[int], reason: str
) -> None:
    """The process sandbox without filesystem isolation or a private uid runs agent code with
    the engine's own rights (documented): files the engine can reach, the agent can too."""
    if case.name == "read_shadow":
        assert bool(breaches) == os.access("/etc/shadow", os.R_OK)
    elif case.name == "read_labels_import":
        # The process sandbox does not hide the package (documented); whether the agent can
        # import it depends on the installation (an editable install's .pth file is not read
        # by an interpreter started with -S), so either is the documented behaviour.
        assert breaches or "ModuleNotFoundError: No module named 'hyperagents" in reason
    elif case.name == "outliving_child":
        # Without a PID namespace or a private uid, a setsid child escapes the process group
        # kill (documented; run_case killed it).
        assert len(stray) <= 2
    else:
        assert breaches, f"{case.name}: expected the documented escape"


def _assert_case_specifics(
    case: HostileCase, result: Any, score: float | None, sandbox: Sandbox
) -> None:
    if case.name == "fork_bomb":
        # The process limit bit: forks were refused, not merely killed at the wall clock.
        forked, refused = fork_bomb_counts(result.stderr)
        assert refused > 0 and 0 < forked < case.max_processes, result.stderr[-500:]
    elif case.name == "print_1gb":
        assert len(result.stdout) <= case.limits.max_output_bytes
        assert result.extra["output_truncated"]["stdout_truncated"]
    elif case.name in ("fake_score", "monkeypatch_scoring"):
        assert score == 0.0
        outputs = [m["output"] for m in result.messages if m["type"] == "instance"]
        assert outputs == ["wrong"] * 4  # one message per instance, from the harness
        assert result.result["instances"] == 4  # not the forged 99
    elif case.name == "kill_parent":
        # The engine (this process) is alive and the sandbox answered normally.
        assert result.outcome is Outcome.OK
    if sandbox.name == "bwrap" and ROOT:
        uid = result.extra["isolation"]["user"]
        assert isinstance(uid, int) and uid != 0
        assert stray_processes(uid=uid) == []


@needs_bwrap
def test_network_probe_sees_no_network_in_bwrap(tmp_path: Path) -> None:
    isolated, seen = network_probe(BwrapSandbox(), tmp_path)
    assert isolated, seen


def test_engine_scoring_is_untouched_by_monkeypatching(sandbox: Sandbox) -> None:
    """The trusted evaluator scores a ToyTask stage the same whatever the agent patched."""
    patched = HOSTILE_CASES["monkeypatch_scoring"].render(token="t")
    honest = "def solve(inputs):\n    return 'wrong'\n"
    task = ToyTask(sizes=(6, 2, 2))
    before = (Task.score, ToyTask.score, Task.aggregate)
    scores = []
    for source in (honest, patched):
        stage = evaluate_stage(
            Program({"task_agent.py": source}),
            task=task,
            instances=task.instances(Split.TRAIN),
            stage="train",
            split="train",
            sandbox=sandbox,
            limits=Limits(wall_time=10),
        )
        scores.append(stage.score)
        assert [r["feedback"] for r in stage.results] == ["invalid output 'wrong'"] * 6
    assert scores == [0.0, 0.0]
    assert (Task.score, ToyTask.score, Task.aggregate) == before


# -- the engine: hostile variants inside a run ------------------------------------------------
class _FastToy(ToyTask):
    """Short instance limits: a task agent that never returns is cut at the stage's wall-clock
    limit (instances x 1 s + the overhead) soon."""

    instance_timeout = 1.0


class _RoomyToy(ToyTask):
    """Ample instance limits for agents that end by themselves (a memory hog reaching its limit
    takes a few seconds on a loaded machine): their outcome, never a timeout, is recorded."""

    instance_timeout = 10.0


def _template_params(case: HostileCase, token: str) -> dict[str, str]:
    """Values for a case's template parameters outside its own set-up: a closed loopback port,
    and host paths that must stay untouched (checked by the caller)."""
    import string

    names = string.Template(case.source).get_identifiers()
    params = {name: f"/tmp/{token}-{name}" for name in names}
    params.update(token=token)
    if "port" in params:
        params["port"] = "9"
    return params


def _task_level(case: HostileCase, token: str, toy: type[ToyTask] = _FastToy) -> ToyTask:
    """A seed whose meta agent writes the hostile task agent (so children are hostile)."""
    hostile = case.render(**_template_params(case, token))
    meta = (
        f"HOSTILE = {hostile!r}\n\n\n"
        "def improve(workspace, report):\n"
        "    with open(workspace + '/task_agent.py', 'w') as handle:\n"
        "        handle.write(HOSTILE)\n"
        "    return {'operator': 'hostile'}\n"
    )
    return toy(meta_agent=meta, sizes=(6, 4, 4))


def _meta_level(case: HostileCase, token: str, toy: type[ToyTask] = _FastToy) -> ToyTask:
    """A seed whose meta agent is itself hostile."""
    meta = case.render(token=token) + "\n\ndef improve(workspace, report):\n    return solve({})\n"
    return toy(meta_agent=meta, sizes=(6, 4, 4))


class _EngineCase(NamedTuple):
    """A hostile case inside a run, and the limits it meets there: short ones that a program
    which never ends surely exceeds, ample ones (a loaded machine starts a sandbox in seconds)
    for the honest seed and for programs that end by themselves."""

    name: str
    level: str  # "task": the children's task agent is hostile; "meta": the seed's meta agent
    state: VariantState  # the children's final state
    pattern: str  # what their record must say
    toy: type[ToyTask] = _RoomyToy
    meta_timeout: float = 30.0


PRUNED, FAILED, INVALID = VariantState.PRUNED, VariantState.FAILED, VariantState.INVALID
#: Seconds a stage's wall-clock limit adds to its instances' (``eval_overhead``): ample for the
#: honest seed to start and finish on a loaded machine.
STAGE_OVERHEAD = 5.0
#: The wall-clock limit of a 2-instance stage of :class:`_FastToy`, where a loop is killed.
_FAST_STAGE = f"{2 * _FastToy.instance_timeout + STAGE_OVERHEAD:g} s"
ENGINE_CASES = [
    _EngineCase(
        "infinite_loop", "task", PRUNED, rf"^timeout: killed after {_FAST_STAGE}", _FastToy
    ),
    _EngineCase("allocate_50gb", "task", PRUNED, r"^memory: MemoryError"),
    _EngineCase("segfault", "task", PRUNED, r"^crash: killed by signal 11 \(SIGSEGV\)"),
    _EngineCase(
        "outliving_child", "task", PRUNED, rf"^timeout: killed after {_FAST_STAGE}", _FastToy
    ),
    _EngineCase(
        "fork_bomb",
        "meta",
        FAILED,
        r"^meta agent failed: timeout: killed after 2 s",
        meta_timeout=2.0,  # its main process sleeps forever
    ),
    _EngineCase("kill_parent", "meta", FAILED, r"^meta agent failed: exception: PermissionError"),
    _EngineCase("delete_workspace", "meta", INVALID, r"^meta_agent.py: required file is missing"),
]


def _recorded(run: Run, variant: Any) -> list[str]:
    """Every reason recorded for a variant: its own, its stages' sandbox reasons and errors."""
    found = [variant.reason or ""]
    for evaluation in run.storage.list_evaluations(variant.id):
        found.append(str(evaluation.metrics.get("sandbox_reason", "")))
        found.extend(str(r.get("error") or "") for r in evaluation.results)
    return [text for text in found if text]


@needs_bwrap
@pytest.mark.parametrize("engine_case", ENGINE_CASES, ids=[c.name for c in ENGINE_CASES])
def test_run_survives_hostile_variants(engine_case: _EngineCase) -> None:
    name, level, state, pattern, toy, meta_timeout = engine_case
    case = HOSTILE_CASES[name]
    token = f"hyperagents-hostile-engine-{name}-{os.getpid()}"
    make = _task_level if level == "task" else _meta_level
    run = Run.create(
        task=make(case, token, toy),
        seed=0,
        storage=InMemoryStorage(),
        config=RunConfig.parse(
            {
                "sandbox": "bwrap",
                "subset_size": 2,
                "meta_timeout": meta_timeout,
                "validate_timeout": 60.0,
                "eval_overhead": STAGE_OVERHEAD,
                "memory_mb": 512,
                "max_retries": 0,
            }
        ),
    )
    record = run.optimize(generations=2)
    assert record.status is RunStatus.COMPLETE
    variants = run.variants()
    assert [v.generation for v in variants] == [0, 1, 2]  # carried on to the next generation
    assert all(v.state.is_terminal for v in variants)
    assert variants[0].state is VariantState.COMPLETE  # the (honest) seed is unaffected
    for child in variants[1:]:
        assert child.state is state, child.reason
        assert child.parent_id == variants[0].id
        reasons = _recorded(run, child)
        assert any(re.search(pattern, text) for text in reasons), reasons
    assert stray_processes(token=token) == []


@needs_bwrap
@pytest.mark.parametrize("name", list(HOSTILE_CASES))
def test_every_hostile_task_agent_leaves_the_run_going(name: str) -> None:
    """Each case as the task agent of every child: the run finishes its generations, every
    child ends in a final state with what happened recorded, and nothing is left running."""
    case = HOSTILE_CASES[name]
    token = f"hyperagents-hostile-engine-all-{name}-{os.getpid()}"
    run = Run.create(
        task=_task_level(case, token),
        seed=0,
        storage=InMemoryStorage(),
        config=RunConfig.parse(
            {
                "sandbox": "bwrap",
                "subset_size": 2,
                "meta_timeout": 30.0,  # the seed's meta agent writes the hostile task agent
                "validate_timeout": 60.0,
                "eval_overhead": 1.0,  # whatever ends a child (a kill included) is recorded
                "memory_mb": 512,
                "max_retries": 0,
            }
        ),
    )
    assert run.optimize(generations=2).status is RunStatus.COMPLETE
    variants = run.variants()
    assert [v.generation for v in variants] == [0, 1, 2]
    assert all(v.state.is_terminal for v in variants)
    for child in variants[1:]:
        assert child.parent_id == variants[0].id
        if child.state is VariantState.COMPLETE:
            continue  # harmless in this sandbox (e.g. its fake score was simply ignored)
        assert _recorded(run, child) or child.scores, child
    assert stray_processes(token=token) == []
    for value in _template_params(case, token).values():
        assert not (value.startswith("/tmp/") and Path(value).exists()), f"wrote {value}"
