"""Weights: the training stage's parts — the meta agent's plan and the run's levers, the
sources of training data (the agent's own verified outputs, the task's examples, a teacher,
people), the store of people's labels, running a program's trainer in the sandbox, and
exporting a program's LoRA-tuned model as a GGUF file for llama.cpp (``--llm local:FILE``).

The engine's training step (:mod:`hyperagents.runs`) puts them together: after the meta agent
made a child that plans a weight update, it collects the data (never val or test data),
trains in the sandbox under the stage's own limits, and puts the new model in the child's
``model/`` folder, recording every example with its source.
"""

from __future__ import annotations

from hyperagents.weights._data import (
    DataGuard,
    Example,
    accepted_outputs,
    people_examples,
    task_examples,
    teacher_examples,
    unverified_outputs,
    verified,
    voted_outputs,
)
from hyperagents.weights._gguf import (
    GGUF_TENSOR_TYPES,
    LORA_FORMAT,
    GgufExport,
    export_gguf,
    hf_to_gguf_rows,
)
from hyperagents.weights._labels import LABEL_EVENT, MAX_LABEL_BYTES, labels, post_label
from hyperagents.weights._plan import (
    MODEL_DIR,
    PLAN_FILE,
    SOURCES,
    TEACHER_ENTRY,
    TEACHER_FILE,
    TRAINER_ENTRY,
    TRAINER_FILE,
    Lever,
    TrainingPlan,
    entry_points_of,
    parse_levers,
)
from hyperagents.weights._trainer import (
    OUT_DIR,
    Device,
    TrainingLimits,
    TrainingOutcome,
    check_model,
    model_files,
    run_trainer,
    safetensors_problem,
    with_model,
)

__all__ = [
    "GGUF_TENSOR_TYPES",
    "LABEL_EVENT",
    "LORA_FORMAT",
    "MAX_LABEL_BYTES",
    "MODEL_DIR",
    "OUT_DIR",
    "PLAN_FILE",
    "SOURCES",
    "TEACHER_ENTRY",
    "TEACHER_FILE",
    "TRAINER_ENTRY",
    "TRAINER_FILE",
    "DataGuard",
    "Device",
    "Example",
    "GgufExport",
    "Lever",
    "TrainingLimits",
    "TrainingOutcome",
    "TrainingPlan",
    "accepted_outputs",
    "check_model",
    "entry_points_of",
    "export_gguf",
    "hf_to_gguf_rows",
    "labels",
    "model_files",
    "parse_levers",
    "people_examples",
    "post_label",
    "run_trainer",
    "safetensors_problem",
    "task_examples",
    "teacher_examples",
    "unverified_outputs",
    "verified",
    "voted_outputs",
    "with_model",
]
