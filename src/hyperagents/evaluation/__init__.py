"""Validation and staged evaluation of programs; the baseline arms (random search, Optuna)."""

from __future__ import annotations

from hyperagents.evaluation._baselines import (
    BASELINES,
    TASK_AGENT,
    BaselineImprover,
    BaselineTrial,
    check_baseline,
    propose,
)
from hyperagents.evaluation._evaluator import (
    StageResult,
    ValidationResult,
    evaluate_stage,
    solve_in_sandbox,
    validate_and_evaluate,
    validate_program,
)

# Workspaces belong to the sandbox (import them from hyperagents.sandbox); this name stays for
# callers that still import it from here.
from hyperagents.sandbox import workspace

__all__ = [
    "BASELINES",
    "TASK_AGENT",
    "BaselineImprover",
    "BaselineTrial",
    "StageResult",
    "ValidationResult",
    "check_baseline",
    "evaluate_stage",
    "propose",
    "solve_in_sandbox",
    "validate_and_evaluate",
    "validate_program",
    "workspace",
]
