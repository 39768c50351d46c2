"""The arena's engine: create or resume an arena stored as a run, play its rounds, score the
champion on the held-out adversarial suite.

The arena is a run of mode ``arena`` in storage (its :class:`ArenaConfig` as the run's config).
After every round the whole state (agents, suite, histories, evaluations) is stored as a
content-addressed blob and named by the round's ``arena.round`` event; within a round, each
piece of agent work (a test agent's proposals, a code agent's answers, a child) is stored as it
completes (an ``arena.step`` event, see :mod:`hyperagents.arena._steps`; deleted with the
round's record, in its transaction, once the round is recorded). So an arena killed at
any moment resumes from its last finished round and the steps of the next one stored since,
doing none of them again; every random choice is derived from the seed, the round and the
agent, so the resumed arena ends exactly as one never killed. An interrupt (Ctrl-C; SIGTERM
under the command line) lets the work in flight finish and be stored before the arena stops.
The agents' work runs on ``workers`` threads, which never changes a result. While it plays,
its process holds the run's engine slot with the run engine's lease and heartbeats
(:func:`~hyperagents.runs.hold_run`): one process drives an arena at a time, a stop request
ends it after the round in flight, and ``hyperagents resume`` continues it (with the workers
it is given).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hyperagents.arena._agents import arena_files, arena_sandbox, heldout_score
from hyperagents.arena._config import ArenaConfig
from hyperagents.arena._round import RoundContext, play_round
from hyperagents.arena._state import AgentSlot, ArenaState
from hyperagents.arena._suite import Oracle, heldout_cases, oracle_of, task_cases
from hyperagents.arena._tournament import mutate_test_agent, replace_worst
from hyperagents.exceptions import ConfigError, RunNotFoundError
from hyperagents.improvers import meta_agent_files
from hyperagents.llm import portable_llm_spec
from hyperagents.program import Program
from hyperagents.runs import HeldRun, RunLLM, default_workers, derive_seed, hold_run
from hyperagents.sandbox import Sandbox
from hyperagents.storages import BaseStorage, RunRecord, RunSpec, RunStatus, get_storage
from hyperagents.tasks import Task, load_task

__all__ = [
    "Agents",
    "ArenaResult",
    "arena_name",
    "arena_series",
    "arena_suite",
    "run_arena",
    "seed_code_agent",
    "seed_test_agent",
]

MODE = "arena"


@dataclass(frozen=True)
class ArenaResult:
    """What an arena ended with (also its JSON summary, :meth:`summary`).

    Attributes:
        run_id: The arena's run in storage.
        name: Its name.
        rounds: Rounds played.
        champion: The champion's name and its stored program's id.
        suite_size: Cases in the growing suite.
        evaluations: Code agent evaluations spent, by kind, and in all (``total``).
        heldout: The held-out suite's size, and the champion's and the seed code agent's
            accuracy on it (empty for an arena stopped before its end).
        series: Per round: the suite's size and each code agent's scores (see
            :func:`arena_series`).
    """

    run_id: int
    name: str
    rounds: int
    champion: dict[str, Any]
    suite_size: int
    evaluations: dict[str, int]
    heldout: dict[str, Any]
    series: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The result as JSON-compatible data."""
        return asdict(self)


def seed_test_agent(task: Task | Oracle) -> Program:
    """The task's seed test agent: seeded edits of its seed inputs (``test_agent.py``, and
    ``task_mutators.py`` with the task's own edits; see :mod:`hyperagents.arena._testers`).

    Raises:
        ConfigError: The task cannot play an arena.
    """
    oracle = task if isinstance(task, Oracle) else oracle_of(task)
    return oracle.mutators.program()


def arena_suite(store: BaseStorage, run_id: int) -> list[dict[str, Any]]:
    """The growing suite of an arena after its last finished round ([] before the first)."""
    events = store.list_events(run_id, kinds=["arena.round"], newest_first=True, limit=1)
    if not events:
        return []
    return ArenaState.from_program(store.get_program(str(events[0].data["state"]))).suite


def seed_code_agent(task: Task, meta: str, *, self_propose: bool = False) -> Program:
    """The code agents' seed: the task's seed program (and the arena meta agent for ``arena``;
    and the task's seed test agent, its own ``propose()``, with ``self_propose``).

    Raises:
        ConfigError: ``self_propose`` for a task that cannot play an arena.
    """
    program = task.seed_program()
    if meta == "llm":
        program = task.with_meta_agent(program, meta_agent_files("llm") or {})
    if meta == "arena":
        program = program.with_files(arena_files("meta_arena.py"))
    if self_propose:
        tester = seed_test_agent(task)
        program = program.with_files({path: tester[path] for path in tester})
    return program


def initial_state(ctx: RoundContext, agents: Agents) -> ArenaState:
    """Round 0: the code agents (given, else the seed), the test agents (given, else the seed,
    each after the first with its parameters mutated so a tournament starts diverse), the
    task's train split as the suite."""
    config = ctx.config
    state = ArenaState(round=0, code=[], test=[], suite=task_cases(ctx.task, ctx.oracle.key))
    coders = agents.code or [
        seed_code_agent(ctx.task, config.meta, self_propose=config.self_propose)
    ]
    tester = seed_test_agent(ctx.oracle)
    for i in range(config.code_agents):
        program_id = ctx.put(coders[i % len(coders)])
        state.code.append(AgentSlot(name=state.new_name("code"), program=program_id))
    for i in range(config.test_agents):
        if agents.test:
            program = agents.test[i % len(agents.test)]
        elif i > 0:
            program, _ = mutate_test_agent(tester, random.Random(ctx.seed(0, "test", i)))
        else:
            program = tester
        state.test.append(AgentSlot(name=state.new_name("test"), program=ctx.put(program)))
    return state


@dataclass(frozen=True)
class Agents:
    """The programs an arena starts from (empty: the seeds), dealt in turn to its slots.

    Attributes:
        code: Code agents: a task agent (``task_agent.py``) and a meta agent.
        test: Test agents: ``test_agent.py`` with ``propose(history, n, seed)``.
    """

    code: Sequence[Program] = ()
    test: Sequence[Program] = ()


def open_run(
    store: BaseStorage,
    config: ArenaConfig,
    name: str,
    *,
    tester: Program,
    experiment: str | None = None,
    arm: str | None = None,
    level: bool = False,
) -> tuple[int, bool]:
    """The arena's run id (created when new, in ``experiment`` as ``arm``, with the seed test
    agent ``tester`` as its seed program; ``level``: a run of the arena level, which records a
    variant per round) and whether it existed. Nothing of an
    existing run is changed here: :func:`store_settings` does, once its engine slot is held.

    Raises:
        ConfigError: A run of that name exists and is not an arena with the same settings
            (the number of rounds, the evaluation budget and the sandbox aside), or of another
            experiment.
    """
    try:
        record = store.get_run_by_name(name)
    except RunNotFoundError:
        spec = RunSpec(
            name=name,
            task=config.task,
            mode=MODE,
            seed=config.seed,
            config=config.model_dump(),
            seed_program_id=store.put_program(tester),
            task_name=config.task,
            target_generations=config.rounds,
            attrs={"arena": True, **({"level": MODE} if level else {})},
            experiment=experiment,
            arm=arm,
        )
        return store.create_run(spec), False
    if record.mode != MODE:
        raise ConfigError(f"run {name!r} exists and is not an arena (mode {record.mode})")
    if record.experiment != experiment:
        raise ConfigError(f"run {name!r} exists and is not part of experiment {experiment!r}")
    # The rounds, the budget and the sandbox may change on resume (none changes a result).
    stored = dict(record.config) | {"rounds": config.rounds, "sandbox": config.sandbox}
    stored["max_evaluations"] = config.max_evaluations
    if stored != config.model_dump():
        raise ConfigError(f"arena {name!r} exists with other settings: {dict(record.config)}")
    return record.id, True


def store_settings(store: BaseStorage, run_id: int, config: ArenaConfig) -> None:
    """Store the settings a resume may change (the rounds, the budget, the sandbox)."""
    store.update_run_config(run_id, config.model_dump())
    store.set_target_generations(run_id, config.rounds)


def is_level_run(store: BaseStorage, record: RunRecord) -> bool:
    """Whether ``record`` is a run of the arena level (it records a variant per round; one
    made before the level was marked on its run is known by its variants)."""
    return record.attrs.get("level") == MODE or bool(store.list_variants(record.id))


def last_state(ctx: RoundContext) -> ArenaState | None:
    """The state of the last finished round (None: no round finished)."""
    events = ctx.store.list_events(ctx.run_id, kinds=["arena.round"], newest_first=True, limit=1)
    if not events:
        return None
    return ArenaState.from_program(ctx.program(str(events[0].data["state"])))


def arena_series(store: BaseStorage, run_id: int) -> list[dict[str, Any]]:
    """Per round (the last record of each): suite size and growth, code agents' scores before
    the round, on the grown suite (the drop) and after it (the recovery), test agents' hard
    cases, the champion and the evaluations spent."""
    rounds: dict[int, dict[str, Any]] = {}
    for event in store.list_events(run_id, kinds=["arena.round"]):
        data = dict(event.data)
        data.pop("state", None)
        rounds[int(data["round"])] = data
    return [rounds[key] for key in sorted(rounds)]


def arena_context(
    store: BaseStorage,
    run_id: int,
    task: Task,
    config: ArenaConfig,
    sandbox: Sandbox | None,
    *,
    workers: int = 1,
) -> tuple[RoundContext, list[dict[str, Any]]]:
    """The round context (sandbox, oracle, held-out inputs, ``workers`` threads) and the
    held-out cases."""
    box = sandbox or arena_sandbox(config.sandbox, task, memory_mb=config.memory_mb)
    oracle = oracle_of(task)
    ctx = RoundContext(store, run_id, task, config, box, oracle, frozenset(), {}, workers=workers)
    if config.meta == "llm":
        spec = portable_llm_spec(str(config.llm))
        ctx.llm = RunLLM(store, run_id, spec=spec, seed=derive_seed(config.seed, "arena", "llm"))
    cases = heldout_cases(task, seed=config.seed, size=config.heldout_size)
    ctx.heldout = frozenset(case["input"] for case in cases)
    return ctx, cases


def run_arena(
    config: ArenaConfig,
    *,
    storage: str | BaseStorage | None = None,
    name: str | None = None,
    sandbox: Sandbox | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    agents: Agents | None = None,
    stop: Callable[[], bool] | None = None,
    workers: int | None = None,
) -> ArenaResult:
    """Create (or resume) the arena ``name`` and play it to ``config.rounds`` rounds, holding
    its run's engine slot as the run engine does (see :func:`~hyperagents.runs.hold_run`): a
    stop request (``hyperagents stop``), ``stop()`` or another engine taking it over ends it
    after the round in flight (status ``stopped``; ``hyperagents resume`` continues it).

    Args:
        config: The arena's settings.
        storage: Storage URL or object (default: ``$HYPERAGENTS_STORAGE`` or the SQLite file).
        name: The arena's run name (default ``arena-<task>-<C>x<T>-s<seed>``); an existing
            arena of that name with the same settings is resumed from its last round.
        sandbox: Override the sandbox (default: ``config.sandbox``).
        on_round: Called with each round's summary once it is stored.
        agents: The programs a new arena starts from (default: the seeds); a resumed arena
            goes on with the agents it has.
        stop: Asked before each round: whether to stop there.
        workers: Threads that run the agents' work side by side (default: the number of
            CPUs); results never depend on it, so a resumed arena may take another number.

    Returns:
        Its result; the held-out scores are measured once it has played its rounds (empty
        when it stopped before).

    Raises:
        ConfigError: Bad settings, or a run of that name that is not this arena.
        RunStateError: Another live engine drives the arena (nothing was changed).
        TaskError: The task cannot be loaded, or its oracle's package is missing.
        SandboxError: The sandbox itself kept failing (the arena resumes from its last
            round's stored steps).
        KeyboardInterrupt: An interrupt: the work in flight was stored first, and the arena
            is marked stopped (it resumes from the steps stored).
    """
    task = load_task(config.task, {})
    tester = seed_test_agent(task)  # a task that cannot play an arena stops here
    store = get_storage(storage)
    name = name or arena_name(config)
    run_id, existed = open_run(store, config, name, tester=tester)
    count = default_workers(workers)
    ctx, heldout = arena_context(store, run_id, task, config, sandbox, workers=count)
    started = f"arena: to round {config.rounds}, {count} workers"
    with hold_run(store, run_id, started=started, workers=count) as held:
        if existed:
            store_settings(store, run_id, config)
        state = last_state(ctx) if existed else None
        if state is None:
            state = initial_state(ctx, agents or Agents())
        done = play_held(ctx, state, held, on_round=on_round, stop=stop)
        return _finish(ctx, state, name, heldout if done else None)


def play_held(
    ctx: RoundContext,
    state: ArenaState,
    held: HeldRun,
    *,
    on_round: Callable[[dict[str, Any]], None] | None,
    stop: Callable[[], bool] | None,
    spent: Callable[[ArenaState], int] | None = None,
    round_extra: int = 0,
) -> bool:
    """:func:`play_rounds` in a run whose engine slot ``held`` holds: a stop request, another
    engine taking the run over or ``stop()`` ends it before a round; say how it ended
    (:meth:`HeldRun.end`) and return whether it is done (its rounds played or budget spent).

    Raises:
        SandboxError: The sandbox itself kept failing (the round goes on from its stored steps
            on resume).
    """

    def halt(_: ArenaState) -> bool:
        return held.stop_reason() is not None or (stop is not None and stop())

    done = play_rounds(
        ctx, state, on_round=on_round, stop=halt, spent=spent, round_extra=round_extra
    )
    if done:
        held.end(RunStatus.COMPLETE, f"done after round {state.round}")
    else:
        held.end(RunStatus.STOPPED, held.stop_reason() or f"stopped after round {state.round}")
    return done


def arena_name(config: ArenaConfig) -> str:
    """An arena's default run name: ``arena-<task>-<C>x<T>-s<seed>``."""
    return f"arena-{config.task}-{config.code_agents}x{config.test_agents}-s{config.seed}"


def round_cost(config: ArenaConfig) -> int:
    """The most code agent evaluations one round can spend: each code agent's screening,
    catching up and children, and a tournament's mutated winner's child."""
    replacement = 1 if config.tournament and config.replace_every else 0
    return config.code_agents * (2 + config.children) + replacement


def play_rounds(
    ctx: RoundContext,
    state: ArenaState,
    *,
    on_round: Callable[[dict[str, Any]], None] | None,
    stop: Callable[[ArenaState], bool],
    spent: Callable[[ArenaState], int] | None = None,
    round_extra: int = 0,
) -> bool:
    """Play the rounds after ``state.round`` up to ``config.rounds``, each stored as it ends,
    stopping before a round that could take the evaluations past ``config.max_evaluations``
    or when ``stop(state)`` says so.

    Args:
        ctx: The arena's context.
        state: Its state (changed in place).
        on_round: Called with each round's summary once it is stored.
        stop: Whether to stop now (an interrupt), asked before each round.
        spent: The evaluations spent so far (default: the code agents'), for the budget.
        round_extra: Evaluations a round may cost beyond the code agents' (the budget's).

    Returns:
        Whether the arena is done (its rounds played or its budget spent), not stopped.

    Raises:
        SandboxError: The sandbox itself kept failing (the round goes on from its stored steps
            on resume).
    """
    with ctx.pool.running():
        return _play(ctx, state, on_round, stop, spent, round_extra)


def _play(
    ctx: RoundContext,
    state: ArenaState,
    on_round: Callable[[dict[str, Any]], None] | None,
    stop: Callable[[ArenaState], bool],
    spent: Callable[[ArenaState], int] | None,
    round_extra: int,
) -> bool:
    """:func:`play_rounds` with the workers running."""
    config = ctx.config
    for round_no in range(state.round + 1, config.rounds + 1):
        budget = config.max_evaluations
        used = spent(state) if spent is not None else state.total_evaluations()
        if budget is not None and used + round_cost(config) + round_extra > budget:
            return True
        if stop(state):
            return False
        started = time.monotonic()
        summary = play_round(ctx, state, round_no, replace_worst)
        summary["seconds"] = round(time.monotonic() - started, 3)
        summary["state"] = ctx.put(state.to_program())
        ctx.log.end_round("arena.round", _round_message(summary), summary)
        if on_round is not None:
            on_round(summary)
    return True


def _round_message(summary: dict[str, Any]) -> str:
    return (
        f"round {summary['round']}: +{summary['added']} hard cases (suite "
        f"{summary['suite_size']}), champion {summary['champion']} "
        f"{summary['champion_score']:.3f}"
    )


def _finish(
    ctx: RoundContext, state: ArenaState, name: str, cases: list[dict[str, Any]] | None
) -> ArenaResult:
    """Score the champion (and the seed code agent) on the held-out suite and record it (not
    for an arena stopped before its end: ``cases`` None)."""
    champion = state.champion()
    evaluations = dict(state.evaluations) | {"total": state.total_evaluations()}
    result = ArenaResult(
        run_id=ctx.run_id,
        name=name,
        rounds=state.round,
        champion={"name": champion.name, "program": champion.program, "score": champion.score},
        suite_size=len(state.suite),
        evaluations=evaluations,
        heldout={},
        series=arena_series(ctx.store, ctx.run_id),
    )
    if cases is None:
        return result
    accuracy = heldout_score(
        ctx.program(champion.program),
        cases,
        task=ctx.task,
        sandbox=ctx.sandbox,
        limits=ctx.eval_limits,
    )
    seed_program = seed_code_agent(ctx.task, ctx.config.meta, self_propose=ctx.config.self_propose)
    seed_accuracy = heldout_score(
        seed_program, cases, task=ctx.task, sandbox=ctx.sandbox, limits=ctx.eval_limits
    )
    heldout = {"size": len(cases), "champion": accuracy, "seed": seed_accuracy}
    ctx.event(
        "arena.heldout",
        f"champion {champion.name}: {accuracy:.3f} on the held-out suite "
        f"(seed {seed_accuracy:.3f})",
        {"round": state.round, "champion_name": champion.name, **heldout},
    )
    return replace(result, heldout=heldout)
