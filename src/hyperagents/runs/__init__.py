"""Runs: create, load and drive self-improvement experiments."""

from __future__ import annotations

from hyperagents.runs._audit import (
    AUDIT_COLUMNS,
    EVENT_KINDS,
    KIND_ALIASES,
    audit_rows,
    canonical_kind,
    check_kinds,
    stored_kinds,
)
from hyperagents.runs._config import (
    SELECTORS,
    Mode,
    RunConfig,
    parse_mode,
    with_training_device,
)
from hyperagents.runs._context import derive_seed, own_sandbox, sandbox_for
from hyperagents.runs._create import record_task
from hyperagents.runs._crew import ENGINE_COLUMNS, engine_label, run_engines
from hyperagents.runs._decide import Decision, approve, ban, decide, pin, reject
from hyperagents.runs._delete import check_no_engine, delete_run
from hyperagents.runs._diffs import (
    DiffLimits,
    FileDiff,
    ProgramDiff,
    compare,
    hunk_header,
    unified_text,
)
from hyperagents.runs._export import (
    EXPORT_COLUMNS,
    champion_of,
    csv_cell,
    csv_text,
    run_export,
    run_identity,
    run_info,
    variant_row,
)
from hyperagents.runs._hold import HeldRun, hold_run
from hyperagents.runs._interrupts import wait_awake
from hyperagents.runs._judge import RunJudge
from hyperagents.runs._launch import EngineLauncher, engine_command
from hyperagents.runs._level_drive import LevelDrive, level_changes
from hyperagents.runs._levels import (
    LEVELS,
    Level,
    LevelDriver,
    LevelPreset,
    apply_level,
    level_driver,
    level_preset,
    parse_level,
)
from hyperagents.runs._llm import PendingJournal, RunLLM, llm_call_spec
from hyperagents.runs._model_view import ModelFile, ModelView, model_view
from hyperagents.runs._owner import EngineState, engine_alive, engine_state, status_label
from hyperagents.runs._remote import RemoteCaller, check_remote_start
from hyperagents.runs._requests import (
    BUDGET_FIELDS,
    ReplayRequest,
    ResumeRequest,
    StartRequest,
    default_workers,
    merge_budgets,
    replay_name,
    replay_target,
)
from hyperagents.runs._resolve import MAX_ID, find_run, meta_donor, resolve_variant, seed_donor
from hyperagents.runs._review import REVIEW_KINDS, SEVERITIES, Review, parse_review, stored_reviews
from hyperagents.runs._run import STAGES, Job, Run
from hyperagents.runs._service import Drive, RunRef, RunService, Stopped, VariantRef
from hyperagents.runs._stages import resolve_subset, subset_defaults
from hyperagents.runs._stop import request_stop
from hyperagents.runs._task_check import SeedTrial, evaluate_seed
from hyperagents.runs._training import training_summary
from hyperagents.runs._try import TRY_INPUT_LIMIT, try_example, try_variant

__all__ = [
    "AUDIT_COLUMNS",
    "BUDGET_FIELDS",
    "ENGINE_COLUMNS",
    "EVENT_KINDS",
    "EXPORT_COLUMNS",
    "KIND_ALIASES",
    "LEVELS",
    "MAX_ID",
    "REVIEW_KINDS",
    "SELECTORS",
    "SEVERITIES",
    "STAGES",
    "TRY_INPUT_LIMIT",
    "Decision",
    "DiffLimits",
    "Drive",
    "EngineLauncher",
    "EngineState",
    "FileDiff",
    "HeldRun",
    "Job",
    "Level",
    "LevelDrive",
    "LevelDriver",
    "LevelPreset",
    "Mode",
    "ModelFile",
    "ModelView",
    "PendingJournal",
    "ProgramDiff",
    "RemoteCaller",
    "ReplayRequest",
    "ResumeRequest",
    "Review",
    "Run",
    "RunConfig",
    "RunJudge",
    "RunLLM",
    "RunRef",
    "RunService",
    "SeedTrial",
    "StartRequest",
    "Stopped",
    "VariantRef",
    "apply_level",
    "approve",
    "audit_rows",
    "ban",
    "canonical_kind",
    "champion_of",
    "check_kinds",
    "check_no_engine",
    "check_remote_start",
    "compare",
    "csv_cell",
    "csv_text",
    "decide",
    "default_workers",
    "delete_run",
    "derive_seed",
    "engine_alive",
    "engine_command",
    "engine_label",
    "engine_state",
    "evaluate_seed",
    "find_run",
    "hold_run",
    "hunk_header",
    "level_changes",
    "level_driver",
    "level_preset",
    "llm_call_spec",
    "merge_budgets",
    "meta_donor",
    "model_view",
    "own_sandbox",
    "parse_level",
    "parse_mode",
    "parse_review",
    "pin",
    "record_task",
    "reject",
    "replay_name",
    "replay_target",
    "request_stop",
    "resolve_subset",
    "resolve_variant",
    "run_engines",
    "run_export",
    "run_identity",
    "run_info",
    "sandbox_for",
    "seed_donor",
    "status_label",
    "stored_kinds",
    "stored_reviews",
    "subset_defaults",
    "training_summary",
    "try_example",
    "try_variant",
    "unified_text",
    "variant_row",
    "wait_awake",
    "with_training_device",
]
