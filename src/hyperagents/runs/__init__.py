"""Runs: create, load and drive self-improvement experiments."""

from __future__ import annotations

from hyperagents.runs._config import SELECTORS, Mode, RunConfig, parse_mode
from hyperagents.runs._context import derive_seed
from hyperagents.runs._decide import approve, ban, pin, reject
from hyperagents.runs._delete import check_no_engine, delete_run
from hyperagents.runs._run import STAGES, Job, Run
from hyperagents.runs._stop import request_stop

__all__ = [
    "SELECTORS",
    "STAGES",
    "Job",
    "Mode",
    "Run",
    "RunConfig",
    "approve",
    "ban",
    "check_no_engine",
    "delete_run",
    "derive_seed",
    "parse_mode",
    "pin",
    "reject",
    "request_stop",
]
