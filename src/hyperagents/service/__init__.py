"""Services: a run's champion answering live requests (``hyperagents serve``).

:class:`Serving` answers requests in the run's sandbox, kept warm, and records every request,
its answer or error, latency and cost in storage; :func:`create_service_app` puts an HTTP API
in front of it (the dashboard's token and host rules); :func:`serve` runs both until
interrupted. Other components steer a service through storage: its routing
(:meth:`~hyperagents.storages.BaseStorage.set_service_routing`: a candidate in shadow, or under
A/B testing with a share of the traffic, routed by :func:`routed_to_candidate`), its log
(:meth:`~hyperagents.storages.BaseStorage.add_service_event`) and its requests with their
feedback (:meth:`~hyperagents.storages.BaseStorage.list_service_requests`);
:func:`attach_feedback` is how a label or a score is given.

The service's decision logic: monitor, drift, degradation detection, trigger, A/B test and
the simulated drifting stream (pure functions and small state machines; no storage, no HTTP);
and the improvement of a serving champion with live data, planned by a planning agent.

* :class:`Observation`: what a served request becomes for the monitor.
* :class:`Monitor`: rolling quality, latency, errors and cost, input drift
  (:class:`DriftMonitor`) and degradation alarms (:class:`Detector`), with a dashboard summary.
* :class:`Trigger`: when to improve (evidence, cool-down, frequency, budget, overrides).
* :class:`SequentialTest`: shadow then A/B on live feedback; promote, roll back or continue.
* :func:`simulated_stream`: ``support`` requests whose mix or routing rule changes at a known
  point.
* :func:`start_improvement`: a run that improves the serving champion (its program as the seed)
  with live examples (:class:`LiveExample`, :class:`LiveTask`) added to train; its outcome
  (:func:`improvement_outcome`) against the served champion.
* :func:`run_planner`, :func:`check_criteria`, :func:`improve_with_plans`: the planning agent (a
  program file, ``planner.py``), its bounded plans, their success criteria and re-planning.
* :class:`PlanJournal`, :func:`improvement_spend`, :func:`planning_usage`: the planning calls,
  durable in the service's log (or the served run's) as they are made, and what they
  (orphaned ones included) cost; :func:`reattach_orphans`, :func:`offer_orphans`,
  :func:`abandon_calls`: orphaned calls attached to the run that carries their plan out, or
  given up with a reason.
"""

from __future__ import annotations

from hyperagents.service._app import PAGE_LIMIT, create_service_app
from hyperagents.service._autopilot import Autopilot
from hyperagents.service._detect import Detector, DetectorSettings, Goal, average_run_length
from hyperagents.service._drift import (
    DriftMonitor,
    DriftSettings,
    FeatureDrift,
    InputFeature,
    declared_features,
    input_features,
    ks_2samp,
    psi_categorical,
    psi_numeric,
    unseen_rate,
)
from hyperagents.service._improve import (
    IMPROVEMENT_ATTR,
    ImprovementBudget,
    ImprovementOutcome,
    base_task_of,
    improvement_outcome,
    plan_levers,
    start_improvement,
)
from hyperagents.service._live import (
    LIVE_ID_PREFIX,
    LIVE_TASK_SPEC,
    MAX_EXAMPLE_BYTES,
    MAX_KIND_BYTES,
    MAX_LIVE_EXAMPLES,
    TRAIN_ONLY_SOURCES,
    LiveExample,
    LiveSplit,
    LiveTask,
    inputs_key,
    live_task_options,
    split_live,
    split_since,
)
from hyperagents.service._monitor import Monitor, MonitorSettings
from hyperagents.service._more_data import (
    DATA_EVENT,
    DEFAULT_QUORUM,
    WANTED_EVENT,
    DataOutcome,
    Voter,
    act_on_data,
    lineage_voters,
    self_votes,
    wanted_ids,
    wanted_labels,
)
from hyperagents.service._observations import Observation
from hyperagents.service._orphans import (
    abandon_calls,
    abandon_unclaimed,
    offer_orphans,
    reattach_orphans,
)
from hyperagents.service._plan_calls import (
    PLAN_ABANDONED_EVENT,
    PLAN_CALL_EVENT,
    PLAN_ID_ATTR,
    PLAN_RUN_EVENT,
    ImprovementSpend,
    JournalState,
    PlanJournal,
    PlanLog,
    WaitingCall,
    WaitingCalls,
    improvement_spend,
    log_plan_run,
    planning_usage,
    read_journal,
)
from hyperagents.service._planner import (
    ACTION_KINDS,
    CRITERION_OPS,
    DATA_SOURCES,
    OWN_DATA,
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
from hyperagents.service._planning import RUN_LLM, PlanSettings, PlanStep, improve_with_plans
from hyperagents.service._records import (
    attach_feedback,
    find_service,
    parse_label,
    request_json,
    service_for_run,
)
from hyperagents.service._sequential import (
    Arm,
    Interval,
    Phase,
    SequentialSettings,
    SequentialTest,
    Verdict,
    assign_arm,
    confidence_halfwidth,
)
from hyperagents.service._serve import SERVICE_TOKEN_ENV_VAR, check_service_binding, serve
from hyperagents.service._serving import (
    MODEL_COOLDOWN,
    RUN_MODEL,
    SHADOW_BACKLOG,
    Admitted,
    Answer,
    Serving,
    routed_to_candidate,
)
from hyperagents.service._settings import parse_settings
from hyperagents.service._steering import (
    COMMAND_EVENT,
    STATE_EVENT,
    AutopilotSettings,
    Improvement,
    Improver,
    Stage,
    decide_candidate,
    plan_improver,
    post_override,
    request_quality,
    route_beside,
    route_candidate,
    shadow_quality,
)
from hyperagents.service._stream import StreamRequest, StreamSettings, simulated_stream
from hyperagents.service._trigger import Override, Trigger, TriggerDecision, TriggerPolicy

__all__ = [
    "ACTION_KINDS",
    "COMMAND_EVENT",
    "CRITERION_OPS",
    "DATA_EVENT",
    "DATA_SOURCES",
    "DEFAULT_QUORUM",
    "IMPROVEMENT_ATTR",
    "LIVE_ID_PREFIX",
    "LIVE_TASK_SPEC",
    "MAX_EXAMPLE_BYTES",
    "MAX_KIND_BYTES",
    "MAX_LIVE_EXAMPLES",
    "MODEL_COOLDOWN",
    "OWN_DATA",
    "PAGE_LIMIT",
    "PLANNER_FILE",
    "PLAN_ABANDONED_EVENT",
    "PLAN_CALL_EVENT",
    "PLAN_ID_ATTR",
    "PLAN_RUN_EVENT",
    "RUN_LLM",
    "RUN_MODEL",
    "SERVICE_TOKEN_ENV_VAR",
    "SHADOW_BACKLOG",
    "SLICES",
    "STATE_EVENT",
    "TRAIN_ONLY_SOURCES",
    "WANTED_EVENT",
    "Admitted",
    "Answer",
    "Arm",
    "Autopilot",
    "AutopilotSettings",
    "CriteriaCheck",
    "DataOutcome",
    "Detector",
    "DetectorSettings",
    "DriftMonitor",
    "DriftSettings",
    "FeatureDrift",
    "Goal",
    "Improvement",
    "ImprovementBudget",
    "ImprovementOutcome",
    "ImprovementSpend",
    "Improver",
    "InputFeature",
    "Interval",
    "JournalState",
    "LiveExample",
    "LiveSplit",
    "LiveTask",
    "Monitor",
    "MonitorSettings",
    "Observation",
    "Override",
    "Phase",
    "PlanJournal",
    "PlanLimits",
    "PlanLog",
    "PlanRecord",
    "PlanSettings",
    "PlanStep",
    "SequentialSettings",
    "SequentialTest",
    "Serving",
    "Stage",
    "StreamRequest",
    "StreamSettings",
    "Trigger",
    "TriggerDecision",
    "TriggerPolicy",
    "Verdict",
    "Voter",
    "WaitingCall",
    "WaitingCalls",
    "abandon_calls",
    "abandon_unclaimed",
    "act_on_data",
    "assign_arm",
    "attach_feedback",
    "average_run_length",
    "base_task_of",
    "check_criteria",
    "check_service_binding",
    "confidence_halfwidth",
    "create_service_app",
    "decide_candidate",
    "declared_features",
    "fallback_plan",
    "find_service",
    "improve_with_plans",
    "improvement_outcome",
    "improvement_spend",
    "input_features",
    "inputs_key",
    "ks_2samp",
    "lineage_voters",
    "live_task_options",
    "log_plan_run",
    "offer_orphans",
    "parse_label",
    "parse_plan",
    "parse_settings",
    "plan_improver",
    "plan_levers",
    "planner_program",
    "planner_request",
    "planning_usage",
    "post_override",
    "psi_categorical",
    "psi_numeric",
    "read_journal",
    "reattach_orphans",
    "replan_request",
    "request_json",
    "request_quality",
    "route_beside",
    "route_candidate",
    "routed_to_candidate",
    "run_planner",
    "seed_planner",
    "self_votes",
    "serve",
    "service_for_run",
    "shadow_quality",
    "simulated_stream",
    "split_live",
    "split_since",
    "start_improvement",
    "unseen_rate",
    "wanted_ids",
    "wanted_labels",
]
