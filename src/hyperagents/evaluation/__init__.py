"""Validation and staged evaluation of programs."""

from __future__ import annotations

from hyperagents.evaluation._evaluator import (
    StageResult,
    ValidationResult,
    evaluate_stage,
    solve_in_sandbox,
    validate_program,
    workspace,
)

__all__ = [
    "StageResult",
    "ValidationResult",
    "evaluate_stage",
    "solve_in_sandbox",
    "validate_program",
    "workspace",
]
