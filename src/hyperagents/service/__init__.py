"""The service's decision logic: monitor, drift, degradation detection, trigger, A/B test and
the simulated drifting stream (pure functions and small state machines; no storage, no HTTP).

* :class:`Observation`: what a served request becomes for the monitor.
* :class:`Monitor`: rolling quality, latency, errors and cost, input drift
  (:class:`DriftMonitor`) and degradation alarms (:class:`Detector`), with a dashboard summary.
* :class:`Trigger`: when to improve (evidence, cool-down, frequency, budget, overrides).
* :class:`SequentialTest`: shadow then A/B on live feedback; promote, roll back or continue.
* :func:`simulated_stream`: ``support`` requests whose mix or routing rule changes at a known
  point.
"""

from __future__ import annotations

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
from hyperagents.service._monitor import Monitor, MonitorSettings
from hyperagents.service._observations import Observation
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
from hyperagents.service._settings import parse_settings
from hyperagents.service._stream import StreamRequest, StreamSettings, simulated_stream
from hyperagents.service._trigger import Override, Trigger, TriggerDecision, TriggerPolicy

__all__ = [
    "Arm",
    "Detector",
    "DetectorSettings",
    "DriftMonitor",
    "DriftSettings",
    "FeatureDrift",
    "Goal",
    "InputFeature",
    "Interval",
    "Monitor",
    "MonitorSettings",
    "Observation",
    "Override",
    "Phase",
    "SequentialSettings",
    "SequentialTest",
    "StreamRequest",
    "StreamSettings",
    "Trigger",
    "TriggerDecision",
    "TriggerPolicy",
    "Verdict",
    "assign_arm",
    "average_run_length",
    "confidence_halfwidth",
    "declared_features",
    "input_features",
    "ks_2samp",
    "parse_settings",
    "psi_categorical",
    "psi_numeric",
    "simulated_stream",
    "unseen_rate",
]
