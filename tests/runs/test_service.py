"""The application service: the config mapping of a start, the budget merge of a resume, the
target of a replay, engines in the background, and every steering operation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import (
    ConfigError,
    RunNotFoundError,
    RunStateError,
    VariantNotFoundError,
)
from hyperagents.program import Program
from hyperagents.runs import (
    Decision,
    Drive,
    EngineLauncher,
    RemoteCaller,
    ReplayRequest,
    ResumeRequest,
    RunService,
    StartRequest,
    engine_command,
    merge_budgets,
    replay_name,
    replay_target,
)
from hyperagents.storages import (
    InMemoryStorage,
    RDBStorage,
    RunRecord,
    RunSpec,
    RunStatus,
    VariantState,
)

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"
SEED = {"task_agent.py": "def solve(x):\n    return 1\n", "meta_agent.py": "# meta\n"}


class Recorder(EngineLauncher):
    """A launcher that records what it is asked to start (or fails as an engine would)."""

    def __init__(self, url: str | None = "sqlite:///shared.db", *, fail: bool = False) -> None:
        super().__init__(url)
        self.asked: list[tuple[str, ResumeRequest]] = []
        self.fail = fail

    def launch(self, run: RunRecord, request: ResumeRequest) -> int:
        self.asked.append((run.name, request))
        if self.fail:
            raise RunStateError(f"the engine for {run.name!r} stopped at once: boom")
        return 4242


def toy_start(**values: Any) -> StartRequest:
    values = {"workers": 1, **values}
    return StartRequest(task=TOY, config={"sandbox": "process", "subset_size": 10}, **values)


def stored_run(
    store: InMemoryStorage,
    name: str,
    states: list[VariantState],
    *,
    status: RunStatus = RunStatus.STOPPED,
    target: int | None = None,
) -> RunRecord:
    """A run written straight into storage: a seed and one variant per state after it."""
    program = store.put_program(Program(SEED))
    run_id = store.create_run(
        RunSpec(
            name=name, task="review", mode="hyperagent", seed=0, config={}, seed_program_id=program
        )
    )
    parent = None
    for generation, state in enumerate([VariantState.COMPLETE, *states]):
        parent = store.create_variant(
            run_id=run_id,
            generation=generation,
            parent_id=parent if generation else None,
            state=state,
            program_id=program,
        )
    store.set_run_status(run_id, status)
    if target is not None:
        store.set_target_generations(run_id, target)
    return store.get_run(run_id)


# -- the config mapping -----------------------------------------------------------------------
def test_options_override_the_config_table_which_overrides_the_defaults() -> None:
    request = StartRequest(
        config={"subset_size": 7, "selector": "best", "llm_retries": 1},
        selector="random",
        max_cost=2.5,
        meta="offline",
        workers=3,
        approval="threshold",
        approval_threshold=0.1,
    )
    config = request.run_config()
    assert config.selector == "random" and config.subset_size == 7 and config.llm_retries == 1
    assert config.max_cost == 2.5 and config.meta_agent == "offline"
    assert config.parallel_generations == 3 and request.engine_workers == 3
    assert config.approval == "threshold" and config.approval_threshold == 0.1


def test_one_worker_and_unset_flags_leave_the_table_alone() -> None:
    config = StartRequest(config={"parallel_generations": 4, "quarantine": True}, workers=1)
    assert config.run_config().parallel_generations == 4
    assert config.run_config().quarantine is True  # --quarantine not given: not "False"
    assert StartRequest(quarantine=True).run_config().quarantine is True


def test_a_constitution_table_is_loaded_into_the_config(tmp_path: Path) -> None:
    rules = {"rule": [{"name": "keep", "kind": "protected_paths", "paths": ["rules.md"]}]}
    stored = StartRequest(constitution=rules).run_config().constitution
    assert stored is not None and stored["rule"][0]["paths"] == ["rules.md"]
    missing = StartRequest(constitution=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="cannot read constitution"):
        missing.run_config()


def test_bad_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="selector"):
        StartRequest(selector="nope").run_config()
    with pytest.raises(ConfigError, match="max_cost"):
        StartRequest(max_cost=-1.0).run_config()


# -- the budget merge -------------------------------------------------------------------------
def test_a_resume_without_budgets_changes_nothing() -> None:
    request = ResumeRequest(run="r", generations=3)
    assert not request.changes_budgets
    assert merge_budgets({"max_cost": 1.0}, request) is None


def test_a_budget_given_again_replaces_the_stored_one_only() -> None:
    stored = {"max_cost": 1.0, "max_tokens": 100, "subset_size": 9}
    merged = merge_budgets(stored, ResumeRequest(run="r", max_tokens=500))
    assert merged is not None
    assert (merged.max_cost, merged.max_tokens, merged.subset_size) == (1.0, 500, 9)


def test_no_budget_lifts_every_budget_not_given_again() -> None:
    stored = {"max_cost": 1.0, "max_tokens": 100, "max_seconds": 60.0, "max_evaluations": 9}
    merged = merge_budgets(stored, ResumeRequest(run="r", no_budget=True, max_seconds=5.0))
    assert merged is not None
    assert (merged.max_cost, merged.max_tokens, merged.max_evaluations) == (None, None, None)
    assert merged.max_seconds == 5.0


def test_an_invalid_budget_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_tokens"):
        merge_budgets({}, ResumeRequest(run="r", max_tokens=-5))


# -- the replay target ------------------------------------------------------------------------
def test_a_complete_run_replays_to_its_target() -> None:
    store = InMemoryStorage()
    done = stored_run(
        store, "done", [VariantState.COMPLETE] * 3, status=RunStatus.COMPLETE, target=3
    )
    assert replay_target(store, done) == 3
    assert replay_target(store, done, 2) == 2
    with pytest.raises(ConfigError, match="goes to generation 3: it cannot replay 4"):
        replay_target(store, done, 4)


def test_a_cut_off_run_replays_up_to_its_first_unfinished_generation() -> None:
    store = InMemoryStorage()
    states = [
        VariantState.COMPLETE,
        VariantState.FAILED,
        VariantState.RUNNING,
        VariantState.COMPLETE,
    ]
    cut = stored_run(store, "cut", states, target=10)
    assert replay_target(store, cut) == 2  # generation 4 finished, but 3 was cut off
    with pytest.raises(ConfigError, match="cannot replay 3"):
        replay_target(store, cut, 3)


def test_replay_names_are_not_taken() -> None:
    store = InMemoryStorage()
    assert replay_name(store, "orig") == "orig-replay"
    stored_run(store, "orig-replay", [])
    stored_run(store, "orig-replay-2", [])
    assert replay_name(store, "orig") == "orig-replay-3"


# -- start, resume and replay in this process ------------------------------------------------
def test_start_resume_and_replay_drive_one_storage() -> None:
    service = RunService(InMemoryStorage())
    started = service.start(toy_start(generations=2, name="toy", seed=3, attrs={"by": "test"}))
    assert (started.generations, started.timeout, started.workers) == (None, None, 1)
    started.optimize()
    record = service.find_run("toy")
    assert record.status is RunStatus.COMPLETE and record.seed == 3
    assert record.target_generations == 2 and record.attrs["by"] == "test"
    resumed = service.resume(ResumeRequest(run="toy", generations=1, timeout=30.0, max_tokens=9))
    assert (resumed.generations, resumed.timeout) == (1, 30.0)
    assert service.find_run(record.id).config["max_tokens"] == 9
    resumed.optimize()
    assert service.storage.count_variants(record.id) == 4
    replay = service.replay(ReplayRequest(run="toy", generations=2, sandbox="process"))
    assert replay.run.name == "toy-replay" and replay.run.config.replay_of == "toy"
    assert replay.run.target_after(None) == 2
    assert replay.workers == replay.run.config.parallel_generations


def test_meta_from_records_its_donor() -> None:
    service = RunService(InMemoryStorage())
    service.start(toy_start(generations=0, name="donor")).optimize()
    drive = service.start(toy_start(generations=0, name="taker", meta_from="donor/seed"))
    assert drive.run.record().attrs["meta_from"] == "donor/seed"
    with pytest.raises(VariantNotFoundError):
        service.start(toy_start(name="nobody", meta_from="donor/9"))


def test_a_bad_start_touches_no_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    service = RunService(url)
    with pytest.raises(ConfigError):
        service.start(StartRequest(selector="nope"))
    assert not (tmp_path / "new.db").exists()  # the URL was never opened


def test_drive_passes_its_settings_to_the_engine() -> None:
    calls: list[tuple[Any, ...]] = []

    class FakeRun:
        def optimize(self, generations: Any, **kwargs: Any) -> None:
            calls.append((generations, kwargs))

    Drive(FakeRun(), 5, 2.0, 3).optimize(callbacks=["cb"])  # type: ignore[arg-type,list-item]
    assert calls == [(5, {"timeout": 2.0, "workers": 3, "callbacks": ["cb"], "join": False})]
    Drive(FakeRun(), None, None, 2, join=True).optimize()  # type: ignore[arg-type]
    assert calls[-1] == (None, {"timeout": None, "workers": 2, "callbacks": (), "join": True})


# -- engines in the background ----------------------------------------------------------------
def test_the_engine_command_line_is_built_from_the_request() -> None:
    store = InMemoryStorage()
    record = stored_run(store, "-n", [])
    plain = engine_command(record, ResumeRequest(run=record.id))
    assert plain[1:] == ["-m", "hyperagents", "resume", "-q", "--", "-n"]
    full = engine_command(
        record, ResumeRequest(run="x", generations=2, workers=3, timeout=1.5, task="t.py:T")
    )
    options = ["--generations", "2", "--workers", "3", "--timeout", "1.5", "--task", "t.py:T"]
    assert full[5:] == [*options, "--", "-n"]


def test_start_detached_creates_the_run_then_launches_its_engine() -> None:
    launcher = Recorder()
    service = RunService(InMemoryStorage(), launcher=launcher)
    record = service.start_detached(toy_start(generations=4, name="bg", workers=2))
    assert record.status is RunStatus.CREATED and record.target_generations == 4
    assert record.config["parallel_generations"] == 2
    [(name, request)] = launcher.asked
    assert name == "bg" and (request.generations, request.workers) == (None, 2)


def test_a_failed_engine_leaves_no_run_behind() -> None:
    service = RunService(InMemoryStorage(), launcher=Recorder(fail=True))
    with pytest.raises(RunStateError, match="boom"):
        service.start_detached(toy_start(name="gone"))
    with pytest.raises(RunNotFoundError):
        service.find_run("gone")


def test_a_storage_of_its_own_process_drives_nothing() -> None:
    service = RunService(InMemoryStorage(), storage_url="memory")
    assert not service.can_drive
    with pytest.raises(RunStateError, match="cannot be driven"):
        service.start_detached(toy_start(name="never"))
    assert service.storage.list_runs() == []


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"task": "nope"}, "unknown task"),
        ({"task": TOY}, "unknown task"),  # a file: code from wherever the caller pointed
        ({"task": "review", "sandbox": "process"}, "sandbox"),
        ({"task": "review", "llm": "scripted:/etc/passwd"}, "files"),
        ({"task": "review", "config": {"sandbox": "process"}}, "config table"),
        ({"task": "review", "constitution": {"rule": []}}, "constitution"),
    ],
)
def test_a_remote_caller_may_start_only_what_the_operator_set_up(
    values: dict[str, Any], said: str
) -> None:
    launcher = Recorder()
    service = RunService(InMemoryStorage(), launcher=launcher)
    with pytest.raises(ConfigError, match=said):
        service.start_detached(StartRequest(**values), remote=RemoteCaller(token_protected=True))
    assert launcher.asked == [] and service.storage.list_runs() == []


def test_resume_detached_checks_the_run_and_merges_budgets_before_launching() -> None:
    launcher = Recorder()
    service = RunService(InMemoryStorage(), launcher=launcher)
    done = stored_run(service.storage, "done", [], status=RunStatus.COMPLETE, target=1)
    with pytest.raises(RunStateError, match="reached its target"):
        service.resume_detached(ResumeRequest(run="done"))
    remote = RemoteCaller()
    with pytest.raises(ConfigError, match="task"):
        service.resume_detached(ResumeRequest(run="done", task="x.py:T"), remote=remote)
    asked = ResumeRequest(run=done.id, generations=2, max_cost=3.0)
    service.resume_detached(asked, remote=remote)
    assert launcher.asked == [("done", asked)]
    assert service.find_run(done.id).config["max_cost"] == 3.0


# -- steering ---------------------------------------------------------------------------------
def test_decisions_on_waiting_children() -> None:
    service = RunService(InMemoryStorage())
    states = [VariantState.PENDING, VariantState.PENDING, VariantState.FAILED]
    stored_run(service.storage, "gate", states)
    approved = service.approve("gate/1", who="ann", note="fine")
    assert approved.state is VariantState.COMPLETE and "approved by ann: fine" in str(
        approved.reason
    )
    rejected = service.decide("gate/2", Decision.REJECT, who="bob")
    assert rejected.state is VariantState.REJECTED
    with pytest.raises(RunStateError, match="not waiting for approval"):
        service.approve("gate/2", who="ann")
    with pytest.raises(RunStateError, match="cannot be a parent"):
        service.pin("gate/3", who="ann")
    pinned = service.pin("gate/1", who="ann")
    record = service.find_run("gate")
    assert (record.pinned_parent, record.pinned_by) == (pinned.id, "ann")
    with pytest.raises(RunStateError, match="seed cannot be banned"):
        service.ban("gate/seed", who="ann")
    service.ban(pinned.id, who="ann", note="drifted")
    assert service.find_run("gate").banned == {pinned.id}
    kinds = [e.kind for e in service.storage.list_events(record.id)]
    for kind in ("variant.approved", "variant.rejected", "variant.pinned", "variant.banned"):
        assert kind in kinds


def test_stop_says_what_it_did() -> None:
    service = RunService(InMemoryStorage())
    stored_run(service.storage, "idle", [])
    with pytest.raises(RunStateError, match="not running"):
        service.stop("idle", who="me")
    stored_run(service.storage, "orphan", [], status=RunStatus.RUNNING)
    stopped = service.stop("orphan", who="me")
    assert stopped.run.status is RunStatus.STOPPED
    assert "no engine drives it" in stopped.message


def test_delete_needs_the_name_when_confirming() -> None:
    service = RunService(InMemoryStorage())
    record = stored_run(service.storage, "old", [VariantState.COMPLETE])
    with pytest.raises(ConfigError, match="type the run's name"):
        service.delete("old", confirm="ol")
    assert service.delete(record.id, confirm="old").name == "old"
    with pytest.raises(RunNotFoundError):
        service.find_run("old")


def test_a_url_service_opens_and_closes_its_own_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'own.db'}"
    service = RunService(url)
    assert service.can_drive  # another process can open the file
    assert isinstance(service.storage, RDBStorage) and service.storage.list_runs() == []
    service.close()
    given = InMemoryStorage()
    RunService(given).close()  # a storage given is the caller's: left open
    assert given.list_runs() == []
