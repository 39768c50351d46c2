"""Run configuration (validated with pydantic)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from hyperagents._validation import validate_merged
from hyperagents.exceptions import ConfigError
from hyperagents.weights import Device, TrainingLimits

__all__ = ["Mode", "RunConfig", "TrainingConfig", "with_training_device"]


class Mode(StrEnum):
    """How children are produced.

    * ``hyperagent``: the parent's own meta agent edits a copy of the parent (its own source
      included), so improvements to the meta agent compound along a lineage.
    * ``frozen-meta``: the seed's meta agent always does the editing and meta-level edits are
      discarded (the child keeps the seed's meta files): the ablation without self-reference.
    * ``no-archive``: like ``hyperagent`` but the parent is always the current best variant
      (no open-ended exploration of stepping stones).

    The baseline arms (:attr:`baseline`) run no meta agent: every child is the seed with new
    values of the parameters its task agent declares, drawn by ``random`` search, Optuna's TPE
    (``optuna-tpe``) or CMA-ES (``optuna-cmaes``), and evaluated on the same stages (see
    :mod:`hyperagents.evaluation`).
    """

    HYPERAGENT = "hyperagent"
    FROZEN_META = "frozen-meta"
    NO_ARCHIVE = "no-archive"
    RANDOM = "random"
    OPTUNA_TPE = "optuna-tpe"
    OPTUNA_CMAES = "optuna-cmaes"

    @property
    def baseline(self) -> bool:
        """Whether this is a baseline arm (no meta agent: children are the seed with drawn
        parameter values)."""
        return self in (Mode.RANDOM, Mode.OPTUNA_TPE, Mode.OPTUNA_CMAES)


SELECTORS = ("score_child", "best", "random", "tournament", "program")


#: The training stage's default limits, defined once by the value object the stage runs with.
_LIMITS = TrainingLimits()


class TrainingConfig(BaseModel):
    """The training stage's own limits and data bounds (see :mod:`hyperagents.weights`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seconds: float = Field(
        _LIMITS.seconds, gt=0, description="wall-clock seconds one training may run"
    )
    memory_mb: int = Field(
        _LIMITS.memory_mb, ge=64, description="the trainer's memory limit in MiB"
    )
    threads: int = Field(
        _LIMITS.threads,
        ge=1,
        le=256,
        description="threads of the trainer's numeric libraries (torch's too)",
    )
    max_model_mb: int = Field(
        _LIMITS.max_model_mb, ge=1, description="the largest model a trainer may write"
    )
    device: Device = Field(
        _LIMITS.device,
        description="where the trainer computes: auto (a GPU when the trainer's sandbox sees "
        "one, else the CPU), cpu, or cuda (asked for; the CPU when none is there)",
    )
    checkpoint_seconds: float = Field(
        _LIMITS.checkpoint_seconds,
        ge=0,
        description="how often a trainer is asked to write a checkpoint, which a run killed "
        "mid-training resumes from (0: never)",
    )
    max_examples: int = Field(
        10_000, ge=1, description="training examples of one training at most (first kept)"
    )
    teacher_instances: int = Field(
        32, ge=0, description="train instances the teacher (the run's model) labels per training"
    )
    voters: int = Field(
        5,
        ge=1,
        le=64,
        description="for a task without a verifier: the models (the parent and its ancestors) "
        "whose outputs on train inputs vote on the self source's examples",
    )
    quorum: int = Field(
        3,
        ge=1,
        le=64,
        description="for a task without a verifier: the fewest voters that must have answered "
        "a train instance for a majority output to be kept",
    )


class RunConfig(BaseModel):
    """Everything that shapes a run besides its task, mode and seed.

    All fields are stored with the run, so a resumed run behaves as the original.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    selector: str = Field("score_child", description="parent selector: " + ", ".join(SELECTORS))
    tournament_size: int = Field(3, ge=1)
    subset_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto",
        description="train instances in the first stage; auto: from the train split's size "
        "when the run is created, which stores the number (see runs.subset_defaults)",
    )
    subset_threshold: float | None = Field(
        None, description="absolute score the train subset must reach for full evaluation"
    )
    subset_margin: Annotated[float, Field(ge=0)] | Literal["auto"] | None = Field(
        "auto",
        description="children more than this fraction of the score range below their parent's "
        "train-subset score stop after the first stage (None: no relative threshold; auto: "
        "from the subset's size when the run is created, which stores the number)",
    )
    parallel_generations: int = Field(
        1,
        ge=1,
        le=256,
        description="generations that may be in flight at once; parent selection for "
        "generation g sees generations <= g - parallel_generations (part of the result)",
    )
    meta_timeout: float = Field(120.0, gt=0, description="seconds for one meta-agent call")
    validate_timeout: float = Field(
        60.0,
        gt=0,
        description="seconds for validating a child (in the process of its first stage, whose "
        "own time limit counts from the end of the validation)",
    )
    select_timeout: float = Field(30.0, gt=0)
    eval_overhead: float = Field(30.0, ge=0, description="seconds added to a stage's time limit")
    timeout_factor: float | None = Field(
        20.0,
        gt=1,
        description="a child's time limit on an instance its parent answered: this many times "
        "the parent's time there, at least timeout_floor, at most the task's instance_timeout "
        "(null: always the task's); a runaway child then costs seconds, not the whole limit",
    )
    timeout_floor: float = Field(
        5.0, gt=0, description="seconds an adaptive limit (timeout_factor) never goes below"
    )
    memory_mb: int = Field(2048, ge=64)
    report_results: int = Field(500, ge=0, description="per-instance results shown to meta agents")
    report_archive: int = Field(500, ge=0, description="archive entries shown to meta agents")
    report_archive_bytes: int = Field(
        128 * 1024,
        ge=0,
        description="bytes of JSON the archive part of a meta agent's report may take (the "
        "latest entries that fit are shown)",
    )
    heartbeat_interval: float = Field(5.0, gt=0)
    heartbeat_grace: float = Field(60.0, gt=0)
    sandbox: str = Field("auto", description="auto, bwrap, process or ray (the extra 'ray')")
    ray_address: str | None = Field(
        None,
        description="the ray sandbox's cluster: None starts a local Ray instance; 'auto' or "
        "'ray://host:port' joins a cluster (where agent code runs: results do not depend on it)",
    )
    ray_inner: Literal["auto", "bwrap", "process"] = Field(
        "bwrap", description="the sandbox each job of the ray sandbox runs in on its node"
    )
    ray_queue_timeout: float | None = Field(
        600.0,
        gt=0,
        description="seconds a job of the ray sandbox may wait for a node (None: no limit); "
        "its own time limit counts from when it starts there",
    )
    meta_agent: str = Field(
        "task", description="seed meta agent: task (the task's own), offline, or llm"
    )
    llm: str | None = Field(
        None,
        description="language model spec (openai:M, http://host/v1#M, scripted:FILE…); a "
        "scripted or local file is stored with its absolute path",
    )
    max_seconds: float | None = Field(
        None,
        gt=0,
        description="time budget of the run: seconds of engine time, summed over resumes; "
        "once spent, no new generation starts",
    )
    max_evaluations: int | None = Field(
        None,
        ge=0,
        description="evaluation budget of the run: evaluation stages run (train subset, train, "
        "val, test of each variant); once reached, no new generation starts",
    )
    max_cost: float | None = Field(None, ge=0, description="LLM dollar budget of the run")
    max_tokens: int | None = Field(None, ge=0, description="LLM token budget of the run")
    llm_retries: int = Field(3, ge=0, description="retries of transient LLM failures")
    llm_timeout: float = Field(60.0, gt=0, description="seconds to wait for one LLM reply")
    llm_cache: bool = Field(False, description="answer identical LLM requests from a cache")
    llm_failure_limit: int = Field(
        5,
        ge=1,
        description="LLM calls failing in a row (each after its retries) that stop the run: "
        "the model is unusable until fixed, then the run resumes",
    )
    llm_prices: dict[str, tuple[float, float]] | None = Field(
        None,
        description="price overrides, {model: [input, output]} in US dollars per million tokens "
        "(stored with the run, so a resumed run keeps counting the same way)",
    )
    replay_of: str | None = Field(
        None, description="answer LLM requests from this run's record instead of a model"
    )
    warm_workers: bool = Field(
        True,
        description="keep one sandboxed fork server per worker started ahead of time "
        "(each request still runs in a fresh child process of its own)",
    )
    max_retries: int = Field(3, ge=0, description="retries of work that failed in the sandbox")
    approval: Literal["auto", "manual", "threshold"] = Field(
        "auto",
        description="auto: children are accepted as evaluated; manual: a child that would "
        "become champion or that changes a meta file waits for approval; threshold: only a "
        "child that would become champion by at least approval_threshold waits",
    )
    approval_threshold: float = Field(
        0.0, ge=0, description="threshold mode: the val gain over the champion that needs approval"
    )
    quarantine: bool = Field(
        False,
        description="before a child becomes champion, re-evaluate it on held-out data with "
        "fresh randomness; a suspicious gain waits for review instead of being promoted",
    )
    quarantine_jump: float = Field(
        3.0,
        gt=0,
        description="a gain over the champion more than this many times the largest earlier "
        "champion gain is suspicious (once the run has two earlier gains)",
    )
    quarantine_gap: float = Field(
        0.15,
        ge=0,
        description="a gap between stages (val above train, or val against the held-out "
        "re-evaluation) wider than this fraction of the score range is suspicious",
    )
    constitution: dict[str, Any] | None = Field(
        None,
        description="rules every child must keep before it runs (hyperagents.constitution); "
        "stored with the run, so a resumed or replayed run checks the same rules",
    )
    task_options: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the task class (JSON values), stored with the run "
        "so that resume, replay and every listing rebuild the same task",
    )
    levers: Literal["harness", "weights", "both"] = Field(
        "both",
        description="what a child may change: harness (code edits only: no weight update), "
        "weights (weight updates only: code edits outside the meta files are undone), or both "
        "(as the meta agent's training_plan.json chooses); an ablation arm",
    )
    level: Literal["autoresearch", "feedback", "hyperagent", "arena"] | None = Field(
        None,
        description="the level preset the run was started with (hyperagents.runs.level_preset): "
        "its mode and the config values it sets are the run's own; None: no level",
    )
    review: bool = Field(
        False,
        description="after each child's evaluation, the reviewer.py of its program reviews it "
        "against the run's whole history (earlier variants, scores, reviews); meta agents are "
        "shown the latest reviews (see review_latest)",
    )
    review_timeout: float = Field(60.0, gt=0, description="seconds for one review")
    review_latest: int = Field(
        3, ge=0, le=100, description="the latest reviews shown to a meta agent in its report"
    )
    review_history: int = Field(
        500,
        ge=1,
        description="earlier variants (the latest) in the history a reviewer reads, with "
        "their reviews",
    )
    training: TrainingConfig = Field(
        {},
        validate_default=True,
        description="the training stage's limits (seconds, memory_mb, threads, …)",
    )

    @field_validator("llm")
    @classmethod
    def _portable_llm(cls, value: str | None) -> str | None:
        """A scripted or local model file is kept with its absolute path (resume anywhere)."""
        if value is None:
            return None
        from hyperagents.llm import portable_llm_spec

        return portable_llm_spec(value)

    @field_validator("task_options")
    @classmethod
    def _json_task_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Options are kept as a JSON round trip leaves them (what a resumed run gets)."""
        from hyperagents.tasks import check_task_options

        try:
            return check_task_options(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.selector not in SELECTORS:
            raise ValueError(f"unknown selector {self.selector!r}; choose from {SELECTORS}")
        if self.llm_prices is not None:
            from hyperagents.llm import load_prices

            load_prices(self.llm_prices)  # raises LLMConfigError (a ValueError) on bad prices
        if self.constitution is not None:
            from hyperagents.constitution import load_constitution

            try:
                load_constitution(self.constitution)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        if self.meta_agent not in ("task", "offline", "llm"):
            raise ValueError(
                f"unknown meta agent {self.meta_agent!r}; choose from task, offline, llm"
            )
        return self

    @classmethod
    def parse(cls, data: dict[str, Any] | None = None, **overrides: Any) -> RunConfig:
        """Validate ``data`` merged with ``overrides``.

        Raises:
            ConfigError: A value is invalid (the message names the field).
        """
        return validate_merged(cls, data, overrides, what="run config")


def with_training_device(config: dict[str, Any], device: str | None) -> dict[str, Any]:
    """``config`` with its ``training.device`` set to ``device`` (None: ``config`` as it is);
    the rest of its ``training`` table is kept (a copy: ``config`` is not changed).

    Raises:
        ConfigError: ``training`` is given but is not a table.
    """
    if device is None:
        return config
    training = config.get("training") or {}
    if not isinstance(training, dict):
        raise ConfigError("invalid run config: training: must be a table")
    return {**config, "training": {**training, "device": device}}


def parse_mode(mode: str | Mode) -> Mode:
    """Return the :class:`Mode` for a name.

    Raises:
        ConfigError: Unknown mode.
    """
    if mode == "arena":  # stored by hyperagents.arena, which drives it (not this engine)
        raise ConfigError(
            "this run is an arena: its own loop drives it, not the run engine "
            "(`hyperagents resume NAME` continues it from its last round)"
        )
    try:
        return Mode(mode)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ConfigError(f"unknown mode {mode!r}; choose one of: {choices}") from None
