"""The service: serve a champion, watch it, and improve it in place.

This part: live examples as training data of an improvement run (:mod:`._live`), the run
that improves the serving champion (:mod:`._improve`) and the planner (:mod:`._planner`).
"""

from __future__ import annotations

from hyperagents.service._improve import (
    IMPROVEMENT_ATTR,
    ImprovementBudget,
    ImprovementOutcome,
    PlanSettings,
    PlanStep,
    base_task_of,
    improve_with_plans,
    improvement_outcome,
    plan_levers,
    start_improvement,
)
from hyperagents.service._live import (
    LIVE_ID_PREFIX,
    LIVE_TASK_SPEC,
    MAX_EXAMPLE_BYTES,
    MAX_LIVE_EXAMPLES,
    LiveExample,
    LiveSplit,
    LiveTask,
    inputs_key,
    live_task_options,
    split_live,
)
from hyperagents.service._planner import (
    ACTION_KINDS,
    CRITERION_OPS,
    DATA_SOURCES,
    PLANNER_FILE,
    SLICES,
    CriteriaCheck,
    PlanLimits,
    PlanRecord,
    check_criteria,
    fallback_plan,
    parse_plan,
    planner_program,
    planner_request,
    replan_request,
    run_planner,
    seed_planner,
)

__all__ = [
    "ACTION_KINDS",
    "CRITERION_OPS",
    "DATA_SOURCES",
    "IMPROVEMENT_ATTR",
    "LIVE_ID_PREFIX",
    "LIVE_TASK_SPEC",
    "MAX_EXAMPLE_BYTES",
    "MAX_LIVE_EXAMPLES",
    "PLANNER_FILE",
    "SLICES",
    "CriteriaCheck",
    "ImprovementBudget",
    "ImprovementOutcome",
    "LiveExample",
    "LiveSplit",
    "LiveTask",
    "PlanLimits",
    "PlanRecord",
    "PlanSettings",
    "PlanStep",
    "base_task_of",
    "check_criteria",
    "fallback_plan",
    "improve_with_plans",
    "improvement_outcome",
    "inputs_key",
    "live_task_options",
    "parse_plan",
    "plan_levers",
    "planner_program",
    "planner_request",
    "replan_request",
    "run_planner",
    "seed_planner",
    "split_live",
    "start_improvement",
]
