"""A candidate's failure is the candidate's, never the run's: hostile children in real runs.

Every case of :data:`hyperagents.testing.hostile_runs.RUN_CASES` (forged sandbox errors, NaN,
JSON nested 100,000 deep, deep return values, file names that are not UTF-8, a tree 3,000 levels
deep, a scorer that overflows, forged CPU times) goes through a real two-generation run in each
sandbox: the run completes, the hostile child ends in a final state with the recorded reason, the
next child completes, and no workspace is left behind. A fuzz run of a meta agent writing random
garbage everywhere holds the same.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hyperagents.sandbox import BwrapSandbox, ProcessSandbox, Sandbox, bwrap_available
from hyperagents.storages import RunStatus, get_storage
from hyperagents.testing.hostile_runs import RUN_CASES, chaos_run, run_child_case

pytestmark = pytest.mark.slow

needs_bwrap = pytest.mark.skipif(
    not bwrap_available() and os.environ.get("CI") != "true",
    reason="bubblewrap is not available here",
)


def _process_sandbox() -> Sandbox:
    try:
        return ProcessSandbox()
    except Exception as exc:  # e.g. refused as root without an explicit opt-in
        pytest.skip(f"the process sandbox is not usable here: {exc}")


@pytest.fixture(scope="module", params=["process", pytest.param("bwrap", marks=needs_bwrap)])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return _process_sandbox() if request.param == "process" else BwrapSandbox()


@pytest.mark.parametrize("name", list(RUN_CASES))
def test_a_hostile_child_ends_itself_not_the_run(name: str, sandbox: Sandbox) -> None:
    case = RUN_CASES[name]
    report = run_child_case(case, sandbox=sandbox)
    assert report.run_status == RunStatus.COMPLETE.name, report.run_message
    assert report.contained, report
    assert case.reason in report.recorded(), report.recorded()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite",
        pytest.param(
            os.environ.get("HYPERAGENTS_TEST_POSTGRES_URL", ""),
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(
                    not os.environ.get("HYPERAGENTS_TEST_POSTGRES_URL"),
                    reason="HYPERAGENTS_TEST_POSTGRES_URL is not set",
                ),
            ],
            id="postgresql",
        ),
    ],
)
@needs_bwrap
def test_every_case_in_a_real_database(url: str, tmp_path: Path) -> None:
    """What a database refuses (NaN, lone surrogates) never reaches it."""
    storage = get_storage(f"sqlite:///{tmp_path / 'runs.db'}" if url == "sqlite" else url)
    for case in RUN_CASES.values():
        if case.name == "forged_usage":
            continue  # slow, and nothing it sends is stored differently
        report = run_child_case(case, sandbox="bwrap", storage=storage)
        assert report.contained, report
        assert case.reason in report.recorded(), report.recorded()


def test_forged_times_are_replaced_by_times_measured_outside(sandbox: Sandbox) -> None:
    report = run_child_case(RUN_CASES["forged_usage"], sandbox=sandbox)
    assert report.contained, report
    assert report.instance_walls, "no per-instance times recorded"
    # The agent claims 0 s per instance but busies itself 0.3 s of CPU each time.
    assert min(report.instance_walls) >= 0.25, report.instance_walls


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzzing_the_engine_through_a_real_run(seed: int, sandbox: Sandbox) -> None:
    run, left = chaos_run(generations=24, seed=seed, sandbox=sandbox)
    record = run.record()
    assert record.status is RunStatus.COMPLETE, run.last_stop_reason
    variants = run.variants()
    assert [v.generation for v in variants] == list(range(25))
    assert all(v.state.is_terminal for v in variants), [(v.generation, v.state) for v in variants]
    assert all(v.reason for v in variants if v.state.name in ("FAILED", "INVALID", "PRUNED"))
    assert not left


@needs_bwrap
def test_fuzzing_with_parallel_workers() -> None:
    run, left = chaos_run(generations=16, seed=7, sandbox="bwrap", workers=2)
    assert run.record().status is RunStatus.COMPLETE, run.last_stop_reason
    assert all(v.state.is_terminal for v in run.variants())
    assert not left
