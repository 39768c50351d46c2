"""What a face (the command line, the dashboard, a Python caller) asks of the application
service, as typed requests: start a run, resume one, replay one.

The rules that turn a request into a run's settings are written here once: the config mapping
of a new run (:meth:`StartRequest.run_config`), the budget merge of a resume
(:func:`merge_budgets`) and the target of a replay (:func:`replay_target`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hyperagents.exceptions import ConfigError
from hyperagents.runs._config import Mode, RunConfig, with_training_device
from hyperagents.runs._levels import apply_level
from hyperagents.storages import BaseStorage, RunRecord, RunStatus
from hyperagents.tasks import merge_task_options

__all__ = [
    "BUDGET_FIELDS",
    "ReplayRequest",
    "ResumeRequest",
    "StartRequest",
    "default_workers",
    "merge_budgets",
    "replay_name",
    "replay_target",
    "sandbox_options",
]

#: The run config fields that are budgets: a resume may set them again or lift them.
BUDGET_FIELDS = ("max_cost", "max_tokens", "max_seconds", "max_evaluations")


def default_workers(workers: int | None) -> int:
    """``workers``, or the number of CPUs when it is not given."""
    return workers or os.cpu_count() or 1


class _Request(BaseModel):
    """A request: immutable, and every field named (a misspelt one is an error)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StartRequest(_Request):
    """A new run: its task, mode, seed and target, and the settings that shape it.

    The options (``sandbox``, ``llm``, the budgets…) override the values of ``config`` (a
    config file's), which override :class:`RunConfig`'s defaults; :meth:`run_config` does the
    mapping. Values are checked there (:class:`~hyperagents.exceptions.ConfigError`), types here
    (:class:`pydantic.ValidationError`).
    """

    task: str = Field(default="review", description="task name or path/file.py:Class")
    task_options: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the task class, over the config's task_options "
        "(stored with the run)",
    )
    mode: Mode | None = Field(
        default=None, description="how children are made (default: the level's, else hyperagent)"
    )
    level: str | None = Field(
        default=None,
        description="a level preset (autoresearch, feedback, hyperagent, arena): its mode and "
        "the config values it sets (see hyperagents.runs.level_preset)",
    )
    generations: int = Field(default=30, ge=0, description="the run's target, stored with it")
    seed: int = 0
    name: str | None = Field(default=None, description="unique run name (default: TASK-MODE-sSEED)")
    workers: int | None = Field(
        default=None,
        ge=1,
        description="sandboxed workers, also the generations that may overlap (stored with "
        "the run); default: the number of CPUs",
    )
    config: dict[str, Any] = Field(default_factory=dict, description="run config values")
    sandbox: str | None = None
    ray_address: str | None = Field(
        default=None, description="the ray sandbox's cluster (implies sandbox ray)"
    )
    selector: str | None = None
    subset_size: int | None = None
    llm: str | None = None
    max_cost: float | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None
    max_evaluations: int | None = None
    meta: str | None = Field(default=None, description="seed meta agent: task, offline or llm")
    constitution: Path | dict[str, Any] | None = Field(
        default=None, description="rules every child must keep: a TOML or YAML file, or its table"
    )
    approval: str | None = None
    approval_threshold: float | None = None
    quarantine: bool = False
    levers: str | None = Field(
        default=None, description="what a child may change: harness, weights or both"
    )
    meta_from: str | None = Field(
        default=None, description="start with this variant's meta agent (ID, RUN/GEN, RUN/champion)"
    )
    seed_from: str | None = Field(
        default=None,
        description="start from this variant's whole program as the seed (ID, RUN/GEN, "
        "RUN/champion); it keeps its own meta agent",
    )
    device: str | None = Field(
        default=None, description="where trainers compute: auto, cpu or cuda (training.device)"
    )
    attrs: dict[str, Any] = Field(default_factory=dict, description="stored with the run")

    @property
    def engine_workers(self) -> int:
        """The workers an engine uses for this run (``workers``, else the number of CPUs)."""
        return default_workers(self.workers)

    def run_mode(self) -> Mode:
        """The mode of the new run: the level's (``level``, else the config's; ``mode``, when
        given too, must be it), else ``mode``, else ``hyperagent``.

        Raises:
            ConfigError: An unknown level, or a mode the level does not run in.
        """
        level = self.level if self.level is not None else self.config.get("level")
        if level is None:
            return self.mode or Mode.HYPERAGENT
        return apply_level(level, {}, self.mode)[0]

    def run_config(self) -> RunConfig:
        """The config of the new run: ``config`` with the options given over it, and the
        values its ``level`` sets.

        Raises:
            ConfigError: A value is invalid, the constitution does not load, or an option or
                config value differs from one the level sets.
        """
        from hyperagents.constitution import load_constitution

        workers = self.engine_workers
        rules = self.constitution
        config = RunConfig.parse(
            with_training_device(self.config, self.device),
            **sandbox_options(self.sandbox, self.ray_address),
            selector=self.selector,
            subset_size=self.subset_size,
            parallel_generations=workers if workers > 1 else None,
            llm=self.llm,
            max_cost=self.max_cost,
            max_tokens=self.max_tokens,
            max_seconds=self.max_seconds,
            max_evaluations=self.max_evaluations,
            meta_agent=self.meta,
            constitution=None if rules is None else load_constitution(rules).as_config(),
            approval=self.approval,
            approval_threshold=self.approval_threshold,
            quarantine=self.quarantine or None,
            levers=self.levers,
            task_options=merge_task_options(self.config, self.task_options),
        )
        if self.level is None:
            return config
        # Checked against what was asked for (the config file's values and the options), not
        # against defaults; then the level's values are set.
        given = {**self.config, "selector": self.selector}
        _, merged = apply_level(self.level, {k: v for k, v in given.items() if v is not None})
        fixed = {k: merged[k] for k in merged if k not in given or given[k] is None}
        return RunConfig.parse(config.model_dump(mode="json"), **fixed)


class ResumeRequest(_Request):
    """Continue a run where it stopped, optionally further, with new budgets or in another
    sandbox (stored with the run; values checked with its config: :func:`merge_budgets`)."""

    run: str | int = Field(description="run name or id")
    generations: int | None = Field(
        default=None, ge=0, description="generations to add to the target"
    )
    workers: int | None = Field(
        default=None, ge=1, description="sandboxed workers (default: the number of CPUs)"
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="seconds of this resume after which no new generation starts",
    )
    task: str | None = Field(
        default=None, description="load the task from here (e.g. a moved file)"
    )
    max_cost: float | None = Field(default=None, description="new LLM budget in US dollars")
    max_tokens: int | None = Field(default=None, description="new LLM budget in tokens")
    max_seconds: float | None = Field(default=None, description="new time budget (all resumes)")
    max_evaluations: int | None = Field(default=None, description="new evaluation budget")
    no_budget: bool = Field(default=False, description="lift the budgets not given again")
    sandbox: str | None = Field(
        default=None, description="where agent code runs from now on (stored with the run)"
    )
    ray_address: str | None = Field(
        default=None, description="the ray sandbox's cluster from now on (implies sandbox ray)"
    )
    join: bool = Field(
        default=False,
        description="join the engines driving the run (PostgreSQL): share its target and work",
    )

    @property
    def engine_workers(self) -> int:
        """The workers of the engine (``workers``, else the number of CPUs)."""
        return default_workers(self.workers)

    @property
    def changes_budgets(self) -> bool:
        """Whether the run's budgets change: one is given again, or they are lifted."""
        return self.no_budget or any(getattr(self, name) is not None for name in BUDGET_FIELDS)

    @property
    def changes_sandbox(self) -> bool:
        """Whether the run moves to another sandbox or Ray cluster."""
        return self.sandbox is not None or self.ray_address is not None

    @property
    def changes_config(self) -> bool:
        """Whether the run's stored config changes (budgets, sandbox)."""
        return self.changes_budgets or self.changes_sandbox


def sandbox_options(sandbox: str | None, ray_address: str | None) -> dict[str, Any]:
    """The config values of a ``--sandbox`` and a ``--ray-address`` given (a cluster's
    address alone means the ray sandbox)."""
    changes: dict[str, Any] = {}
    if ray_address is not None:
        changes["ray_address"] = ray_address
        sandbox = sandbox or "ray"
    if sandbox is not None:
        changes["sandbox"] = sandbox
    return changes


def merge_budgets(config: Mapping[str, Any], request: ResumeRequest) -> RunConfig | None:
    """The run's config with the budgets ``request`` gives (and those it lifts with
    ``no_budget``) and the sandbox it names; None when it changes none.

    Raises:
        ConfigError: The merged config is invalid.
    """
    if not request.changes_config:
        return None
    given = {name: getattr(request, name) for name in BUDGET_FIELDS}
    changes: dict[str, Any] = dict.fromkeys(BUDGET_FIELDS) if request.no_budget else {}
    changes.update({name: value for name, value in given.items() if value is not None})
    changes.update(sandbox_options(request.sandbox, request.ray_address))
    return RunConfig.parse({**dict(config), **changes})


class ReplayRequest(_Request):
    """Re-run a recorded run with the same task, mode, seed and config, answering every LLM
    request from its record (no model is called)."""

    run: str | int = Field(description="the recorded run: name or id")
    generations: int | None = Field(
        default=None, ge=0, description="replay only this far (default: as far as the record goes)"
    )
    name: str | None = Field(default=None, description="the new run's name (default: RUN-replay)")
    sandbox: str | None = Field(
        default=None, description="where agent code runs (not in the record)"
    )
    ray_address: str | None = Field(
        default=None, description="the ray sandbox's cluster (implies sandbox ray)"
    )
    workers: int | None = Field(
        default=None, ge=1, description="sandboxed workers (default: the recorded run's)"
    )


def replay_target(store: BaseStorage, original: RunRecord, generations: int | None = None) -> int:
    """How far a replay of ``original`` goes: ``generations`` when given, else as far as the
    record goes (its target when it completed; else the last generation before the first
    unfinished one: with overlapping generations, a later one may have finished while an
    earlier one was cut off).

    Raises:
        ConfigError: ``generations`` goes beyond the record.
    """
    target = int(original.target_generations or 0)
    if original.status is not RunStatus.COMPLETE:
        target = 0
        for variant in sorted(store.list_variants(original.id), key=lambda v: v.generation):
            if not variant.state.is_terminal:
                break
            target = variant.generation
    if generations is None:
        return target
    if generations > target:
        raise ConfigError(
            f"the record of {original.name} goes to generation {target}: "
            f"it cannot replay {generations}"
        )
    return generations


def replay_name(store: BaseStorage, original: str) -> str:
    """``ORIGINAL-replay``, or ``ORIGINAL-replay-N`` for the first N >= 2 not taken."""
    taken = {r.name for r in store.list_runs()}
    name = f"{original}-replay"
    n = 2
    while name in taken:
        name = f"{original}-replay-{n}"
        n += 1
    return name
