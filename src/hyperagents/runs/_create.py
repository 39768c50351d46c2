"""Creating a run: its seed program, the checks that may refuse it, and its first records.

Everything that can refuse a run is checked before anything is stored, so a start that fails
leaves no run behind; then the seed program, the run (under a free name) and its seed variant
are stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperagents.evaluation import check_baseline
from hyperagents.exceptions import ConfigError, DuplicateError
from hyperagents.improvers import REVIEWER_FILE, default_reviewer, meta_agent_files
from hyperagents.llm import probe_llm
from hyperagents.program import Program
from hyperagents.runs._config import Mode, RunConfig, parse_mode
from hyperagents.runs._context import sandbox_for
from hyperagents.runs._gate import check_seed, run_constitution
from hyperagents.runs._levels import apply_level
from hyperagents.runs._meta_files import transfer_meta
from hyperagents.runs._stages import resolve_subset
from hyperagents.sandbox import Sandbox
from hyperagents.storages import (
    BaseStorage,
    EventSpec,
    RunRecord,
    RunSpec,
    VariantState,
    storage_for_creation,
)
from hyperagents.tasks import (
    Split,
    Task,
    file_spec,
    load_task,
    program_param_space_errors,
    stored_task_options,
)


@dataclass(frozen=True)
class NewRun:
    """A run just created: what :class:`~hyperagents.runs.Run` is built from.

    Attributes:
        storage: The storage holding it.
        record: Its record.
        task: The task object.
        sandbox: The sandbox it runs in.
    """

    storage: BaseStorage
    record: RunRecord
    task: Task
    sandbox: Sandbox


def create_run(
    *,
    task: str | Task,
    name: str | None,
    mode: str | Mode | None,
    seed: int,
    storage: str | BaseStorage | None,
    config: RunConfig | Mapping[str, Any] | None,
    sandbox: Sandbox | None,
    attrs: Mapping[str, Any] | None,
    meta_from: Program | None,
    generations: int | None,
    experiment: str | None = None,
    arm: str | None = None,
    seed_from: Program | None = None,
) -> NewRun:
    """Check, then store, a new run (see :meth:`Run.create` for the arguments).

    Raises:
        ConfigError: Bad mode, config, seed or generations, a meta agent that cannot be
            transferred, a ``seed_from`` program together with a built-in meta agent, a seed
            that breaks the constitution, a model that cannot be used, a seed task agent
            whose ``PARAM_SPACE`` has problems, a baseline mode whose packages are missing
            or that finds no space to search.
        TaskError: The task cannot be loaded (with the config's ``task_options``: an option
            its class does not take, or its constructor raised; or options for a task object).
        DuplicateError: ``name`` is taken.
    """
    run_mode, cfg = run_settings(mode, config)
    check_generations(generations)
    task_obj = load_task(task, cfg.task_options)
    task_spec = portable_spec(task) if isinstance(task, str) else task_obj.name
    cfg = resolve_subset(cfg, len(task_obj.instances(Split.TRAIN)))  # stored as numbers
    check_seed_value(seed)
    program = seed_program(task_obj, cfg, meta_from, seed_from)
    cfg = run_constitution(cfg, task_obj)
    check_seed(cfg, task_obj, program)
    check_param_space(program)
    if run_mode.baseline:
        check_baseline(run_mode.value, program)
    # Everything that can refuse the run is checked before the storage is opened: a start that
    # fails leaves no run behind, and no new empty database.
    built = sandbox if sandbox is not None else sandbox_for(cfg, task_obj)
    check_judge(cfg, task_obj)
    check_llm(cfg)
    spec = RunSpec(
        name=name or f"{task_obj.name}-{cfg.level or run_mode.value}-s{seed}",
        task=task_spec,
        mode=run_mode.value,
        seed=seed,
        config=cfg.model_dump(mode="json"),
        seed_program_id="",  # set by store_run
        task_name=task_obj.name,
        experiment=experiment,
        arm=arm,
        target_generations=generations,  # in the same write as the run: never a run without it
        attrs=dict(attrs or {}),
    )
    with storage_for_creation(storage) as store:  # opened (or made) only now
        run_id = store_run(store, spec, program, exact_name=name is not None)
    return NewRun(store, store.get_run(run_id), task_obj, built)


__all__ = [
    "NewRun",
    "check_generations",
    "check_judge",
    "check_llm",
    "check_param_space",
    "check_seed_value",
    "create_run",
    "create_seed_variant",
    "portable_spec",
    "record_task",
    "run_settings",
    "seed_program",
    "store_run",
]


def run_settings(
    mode: str | Mode | None, config: RunConfig | Mapping[str, Any] | None
) -> tuple[Mode, RunConfig]:
    """The mode and config of a new run: ``mode`` (default ``hyperagent``) and ``config``; where
    ``config`` names a ``level``, the level's mode and the values it sets over ``config``'s
    (see :func:`~hyperagents.runs.apply_level`; of a :class:`RunConfig`, the fields it was
    given count, not its defaults).

    Raises:
        ConfigError: A bad mode, level or config, or a mode or value the level sets otherwise.
    """
    if isinstance(config, RunConfig):
        given = config.model_dump(mode="json", include=config.model_fields_set)
        base = config.model_dump(mode="json")
    else:
        given = base = dict(config or {})
    level = given.get("level")
    if level is None:
        cfg = config if isinstance(config, RunConfig) else RunConfig.parse(base)
        return parse_mode(mode if mode is not None else Mode.HYPERAGENT), cfg
    run_mode, merged = apply_level(level, given, None if mode is None else parse_mode(mode))
    return run_mode, RunConfig.parse({**base, **merged})


def check_generations(generations: object) -> None:
    """Raises: ConfigError: ``generations`` is neither None nor an integer >= 0."""
    if generations is not None and (
        not isinstance(generations, int) or isinstance(generations, bool) or generations < 0
    ):
        raise ConfigError(f"generations must be an integer >= 0, got {generations!r}")


def check_param_space(program: Program) -> None:
    """Check the seed task agent's ``PARAM_SPACE`` when the built-in offline meta agent is the
    one that reads it (a meta agent of one's own may give the literal another meaning).

    Raises:
        ConfigError: The space has problems (each named with its key: a typo would otherwise
            give children that never change).
    """
    offline = (meta_agent_files("offline") or {}).get("meta_agent.py")
    if "meta_agent.py" not in program or program["meta_agent.py"] != (offline or "").encode():
        return
    errors = program_param_space_errors(program)
    if errors:
        lines = "\n".join(f"  - {error}" for error in errors)
        raise ConfigError(f"the seed program's search space has problems:\n{lines}")


def check_seed_value(seed: object) -> None:
    """Raises: ConfigError: ``seed`` is not an integer."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an integer, got {seed!r}")


def check_llm(config: RunConfig) -> None:
    """Refuse a model the run could not use: a bad spec, a missing key or script file, a
    server that does not answer (a replay calls no model)."""
    if config.llm is not None and config.replay_of is None:
        probe_llm(config.llm, timeout=min(10.0, config.llm_timeout))


def check_judge(config: RunConfig, task: Task) -> None:
    """Refuse a judged task (scored by the run's LLM) in a run without a model.

    Raises:
        ConfigError: The task is judged and the run has neither a model nor a replay.
    """
    if task.uses_judge and config.llm is None and config.replay_of is None:
        raise ConfigError(
            f"task {task.name!r} is scored by an LLM judge: give the run a model (--llm SPEC, "
            "or llm in the config); without one nothing could score it"
        )


def portable_spec(spec: str) -> str:
    """File specs are stored with an absolute path so the run resumes from any directory."""
    parts = file_spec(spec)
    if parts is not None:
        return f"{Path(parts[0]).expanduser().resolve()}:{parts[1]}"
    return spec.strip()


def record_task(record: RunRecord, spec: str | None = None) -> Task:
    """A run's task, as it was created: its spec (or ``spec``, e.g. where a task file has
    moved) with the ``task_options`` stored in its config.

    Raises:
        TaskError: The task does not load any more (the message names an option that no
            longer fits).
        TaskNotFoundError: Nothing matches the spec.
    """
    return load_task(record.task if spec is None else spec, stored_task_options(record.config))


def seed_program(
    task: Task, config: RunConfig, meta_from: Program | None, seed_from: Program | None = None
) -> Program:
    """The run's seed program: ``seed_from`` as it is (e.g. a served champion's program, to
    improve it further), else the task's; with the configured built-in meta agent or the
    meta files transferred from ``meta_from``; with ``review`` on, the default reviewer where
    it has no ``reviewer.py``.

    Raises:
        ConfigError: Both a built-in meta agent and ``meta_from`` are given, or a built-in
            meta agent and ``seed_from`` (the program keeps its own), or ``meta_from`` has no
            ``meta_agent.py``.
    """
    program = task.seed_program() if seed_from is None else seed_from
    files = meta_agent_files(config.meta_agent)
    if files is not None and seed_from is not None:
        raise ConfigError(
            f"a run started from a given program keeps its meta agent: meta_agent must be "
            f"'task', not {config.meta_agent!r}"
        )
    if files is not None:
        if meta_from is not None:
            raise ConfigError(
                "give either a transferred meta agent (meta_from) or meta_agent "
                f"{config.meta_agent!r}, not both"
            )
        program = transfer_meta(program, files, task)
    if meta_from is not None:
        if "meta_agent.py" not in meta_from:
            raise ConfigError("the program to take the meta agent from has no meta_agent.py")
        program = transfer_meta(program, meta_from, task)
    if config.review and REVIEWER_FILE not in program:
        program = program.with_files({REVIEWER_FILE: default_reviewer()})
    return program


def create_seed_variant(store: BaseStorage, run_id: int, program_id: str, message: str) -> None:
    """Store the seed variant (generation 0) of a run.

    Raises:
        DuplicateError: The run has its seed variant already.
    """
    store.create_variant(
        run_id=run_id,
        generation=0,
        parent_id=None,
        state=VariantState.RUNNING,
        program_id=program_id,
        meta_info={"seed": True},
        event=EventSpec("variant.created", message, {"generation": 0}),
    )


def store_run(store: BaseStorage, spec: RunSpec, program: Program, *, exact_name: bool) -> int:
    """Store a new run with its seed program and seed variant; return its id.

    Args:
        store: The storage.
        spec: The run (its ``seed_program_id`` is replaced by the stored program's).
        program: The seed program.
        exact_name: Whether ``spec.name`` was asked for (else a taken name is suffixed
            ``-2``, ``-3``…).

    Raises:
        DuplicateError: ``spec.name`` is taken and ``exact_name``.
    """
    program_id = store.put_program(program)
    for attempt in range(1000):
        candidate = spec.name if attempt == 0 else f"{spec.name}-{attempt + 1}"
        try:
            run_id = store.create_run(
                dataclasses.replace(spec, name=candidate, seed_program_id=program_id)
            )
            break
        except DuplicateError:
            if exact_name:
                raise
    else:  # pragma: no cover - a thousand runs with one name
        raise DuplicateError(f"no free run name like {spec.name!r}")
    create_seed_variant(store, run_id, program_id, "seed program")
    store.add_event(
        run_id,
        "run.created",
        f"task {spec.task}, mode {spec.mode}, seed {spec.seed}",
        data={"config": spec.config},
    )
    return run_id
