"""Validation and staged evaluation of programs."""

from __future__ import annotations

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
    "StageResult",
    "ValidationResult",
    "evaluate_stage",
    "solve_in_sandbox",
    "validate_and_evaluate",
    "validate_program",
    "workspace",
]
