"""Running a program's trainer in the sandbox, and reading back the model it wrote.

The trainer is program code (``trainer.py``, entry point ``train``): it runs in the sandbox
under the training stage's own limits (time, memory, threads), in a workspace holding the
program, with the request of the weights contract::

    {"model_dir": "model" | None, "out_dir": "<a fresh folder>", "examples": [...],
     "seed": int, "threads": int, "device": "auto" | "cpu" | "cuda", "options": {...},
     "checkpoint_dir": "_checkpoints", "checkpoint_seconds": float,
     "resume_dir": "_resume" | None}

(paths relative to the workspace, the process's working directory). Each progress point it
reports comes back as a message.

**Checkpoints.** A trainer may, every ``checkpoint_seconds`` or so (0: never), write the
whole state it needs to go on (weights, optimiser, random generators, step, curve) into a new
folder under ``checkpoint_dir`` and then report a point naming it (``{"step", "loss",
"checkpoint": "<folder name>"}``): the engine reads that folder at once (flat, regular files
only, bounded) and keeps it. When a run killed mid-training does that training again with the
same inputs, the last checkpoint is given back in ``resume_dir`` and the trainer goes on from
its step, so the kill loses only the work since that checkpoint, and a trainer that resumes
exactly ends with the same model as one never interrupted.

Only what it wrote to ``out_dir`` is read back, bounded, and checked: a ``config.json``
holding a JSON object and at least one well-formed ``*.safetensors`` file. Whatever else
happens — a crash, a timeout, nothing written, garbage — is the candidate's failure, returned
with the reason; only a broken sandbox raises.
"""

from __future__ import annotations

import inspect
import math
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hyperagents.exceptions import ProgramError
from hyperagents.program import Program
from hyperagents.sandbox import (
    CHECKPOINT_DIR,
    CheckpointHook,
    InvalidMessage,
    Limits,
    Sandbox,
    SandboxResult,
    loads_bounded,
    workspace,
)
from hyperagents.weights._plan import MODEL_DIR

__all__ = [
    "OUT_DIR",
    "RESUME_DIR",
    "Device",
    "TrainingLimits",
    "TrainingOutcome",
    "check_model",
    "model_files",
    "run_trainer",
    "safetensors_problem",
    "with_model",
]

#: Where a trainer computes: ``auto`` (a GPU when its sandbox sees one), ``cpu`` or ``cuda``.
Device = Literal["auto", "cpu", "cuda"]

#: The folder (in the workspace) the trainer writes the new model to.
OUT_DIR = "_trained_model"
#: The folder (in the workspace) holding the checkpoint a resumed training goes on from.
RESUME_DIR = "_resume"
#: Workspace folders of the training stage's own (never taken from a program).
_STAGE_DIRS = (OUT_DIR, RESUME_DIR, CHECKPOINT_DIR)
#: Curve points kept with the outcome (an even thinning of longer curves).
MAX_CURVE = 200


@dataclass(frozen=True)
class TrainingLimits:
    """The training stage's own limits (a value object).

    Attributes:
        seconds: Wall-clock seconds the trainer may run.
        memory_mb: Its memory limit in MiB.
        threads: Threads its numeric libraries may use (torch's included).
        max_model_mb: The largest model it may write, in MiB (all files together).
        device: ``auto`` (the trainer uses a GPU when it sees one), ``cpu`` or ``cuda``.
        checkpoint_seconds: How often a trainer is asked to write a checkpoint (0: never).
    """

    seconds: float = 600.0
    memory_mb: int = 4096
    threads: int = 1
    max_model_mb: int = 512
    device: Device = "auto"
    checkpoint_seconds: float = 30.0

    def sandbox_limits(self) -> Limits:
        """The sandbox limits of a training run (CPU time for every thread)."""
        return Limits(
            wall_time=self.seconds,
            cpu_time=self.seconds * max(1, self.threads) + 5.0,
            memory_mb=self.memory_mb,
            max_file_size_mb=self.max_model_mb,
        )


@dataclass(frozen=True)
class TrainingOutcome:
    """What one training run produced.

    Attributes:
        ok: Whether it wrote a well-formed model.
        reason: Why not ("" when ok).
        model: The new model's files by name (to go under ``model/``).
        curve: Its loss curve (``{"step", "loss"}`` points, at most :data:`MAX_CURVE`).
        metrics: What it returned as metrics (finite numbers only).
        wall: Wall-clock seconds in the sandbox.
        cpu: CPU seconds.
        peak_memory_mb: Peak memory.
        log: The tail of what it printed.
    """

    ok: bool
    reason: str = ""
    model: Mapping[str, bytes] = field(default_factory=dict)
    curve: Sequence[Mapping[str, float]] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    wall: float = 0.0
    cpu: float = 0.0
    peak_memory_mb: float = 0.0
    log: str = ""


def run_trainer(
    program: Program,
    examples: Sequence[Mapping[str, Any]],
    *,
    sandbox: Sandbox,
    limits: TrainingLimits,
    seed: int,
    options: Mapping[str, Any],
    on_progress: Callable[[Mapping[str, float]], None] | None = None,
    resume: Mapping[str, bytes] | None = None,
    on_checkpoint: CheckpointHook | None = None,
) -> TrainingOutcome:
    """Run ``program``'s trainer on ``examples`` in the sandbox and read back its model.

    Args:
        program: The program (its ``trainer.py`` and current ``model/``).
        examples: ``{"inputs", "output"}`` pairs (no source, no ids).
        sandbox: Where it runs.
        limits: The training stage's limits.
        seed: Its seed.
        options: The plan's options, handed over as they are.
        on_progress: Called with each progress point it reported, in order.
        resume: The files of a checkpoint of this same training to go on from (None: start).
        on_checkpoint: Called with each checkpoint the trainer writes (its step and files),
            as it comes; a sandbox that cannot hand checkpoints over gets no checkpoint folder.

    Raises:
        SandboxError: The sandbox itself broke.
    """
    hooks = _hooks(sandbox, on_progress, on_checkpoint)
    request = {
        "action": "train",
        "module": "trainer",
        "function": "train",
        "train": _train_request(
            program, examples, limits, seed, options, hooks=hooks, resume=bool(resume)
        ),
    }
    with workspace(_given(program, resume)) as path:
        for folder in (OUT_DIR, CHECKPOINT_DIR):
            os.makedirs(os.path.join(path, folder), exist_ok=True)
        run = sandbox.run(path, request, limits=limits.sandbox_limits(), **hooks)
        base = _usage(run)
        if on_progress is not None and "on_message" not in hooks:  # it tells at the end only
            for point in base.curve:
                on_progress(point)
        if not run.ok:
            return replace(base, reason=f"trainer failed: {run.reason}")
        try:
            written = Program.from_directory(
                os.path.join(path, OUT_DIR), max_bytes=limits.max_model_mb * 1024 * 1024
            )
        except (ProgramError, OSError) as exc:
            return replace(base, reason=f"trainer's output unreadable: {exc}")
    problem = check_model(written)
    if problem is not None:
        return replace(base, reason=f"trainer wrote no usable model: {problem}")
    returned = run.result if isinstance(run.result, dict) else {}
    curve = _curve(returned.get("curve")) or base.curve
    metrics = _metrics(returned.get("metrics"))
    return replace(base, ok=True, model=dict(written), curve=curve, metrics=metrics)


def _usage(run: SandboxResult) -> TrainingOutcome:
    """A failed outcome holding what a training run used, printed and reported as progress
    (the outcome the rest fills in)."""
    points = [m["point"] for m in run.messages if m.get("type") == "progress"]
    return TrainingOutcome(
        False,
        curve=_curve(points),
        wall=run.wall,
        cpu=run.cpu,
        peak_memory_mb=run.peak_memory_mb,
        log=(run.stdout + run.stderr)[-4000:],
    )


def _given(program: Program, resume: Mapping[str, bytes] | None) -> Program:
    """What the trainer's workspace holds: the program without the stage's own folders, and
    the checkpoint it resumes from (under :data:`RESUME_DIR`)."""
    given = program.without(*[p for p in program if p.split("/", 1)[0] in _STAGE_DIRS])
    if not resume:
        return given
    return given.with_files({f"{RESUME_DIR}/{name}": data for name, data in resume.items()})


def _hooks(
    sandbox: Sandbox,
    on_progress: Callable[[Mapping[str, float]], None] | None,
    on_checkpoint: CheckpointHook | None,
) -> dict[str, Any]:
    """The keyword arguments of ``sandbox.run`` that hand progress points and checkpoints
    over as they come (only those the sandbox takes)."""
    takes = _run_parameters(sandbox)
    hooks: dict[str, Any] = {}
    if on_progress is not None and "on_message" in takes:
        hooks["on_message"] = lambda message: _forward(message, on_progress)
    if on_checkpoint is not None and "on_checkpoint" in takes:
        hooks["on_checkpoint"] = on_checkpoint
    return hooks


def _train_request(
    program: Program,
    examples: Sequence[Mapping[str, Any]],
    limits: TrainingLimits,
    seed: int,
    options: Mapping[str, Any],
    *,
    hooks: Mapping[str, Any],
    resume: bool,
) -> dict[str, Any]:
    """The trainer's ``request`` (paths relative to the workspace); it is asked for
    checkpoints only when the sandbox hands them over (``on_checkpoint`` in ``hooks``)."""
    checkpoints = "on_checkpoint" in hooks
    has_model = any(path.startswith(MODEL_DIR) for path in program)
    return {
        "model_dir": MODEL_DIR.rstrip("/") if has_model else None,
        "out_dir": OUT_DIR,
        "examples": [dict(e) for e in examples],
        "seed": int(seed),
        "threads": limits.threads,
        "device": limits.device,
        "options": dict(options),
        "checkpoint_dir": CHECKPOINT_DIR,
        "checkpoint_seconds": float(limits.checkpoint_seconds) if checkpoints else 0.0,
        "resume_dir": RESUME_DIR if resume else None,
    }


def check_model(files: Mapping[str, bytes]) -> str | None:
    """Why ``files`` (names relative to the model folder) are not a usable model (None: they
    are): ``config.json`` must hold a JSON object, and there must be at least one
    ``*.safetensors`` file, each well-formed (its header, and data of the size it declares)."""
    if "config.json" not in files:
        return "no config.json"
    try:
        config = loads_bounded(files["config.json"], max_depth=32, max_bytes=1 << 20)
    except InvalidMessage as exc:
        return f"config.json: {exc}"
    if not isinstance(config, dict):
        return "config.json is not a JSON object"
    tensors = sorted(name for name in files if name.endswith(".safetensors"))
    if not tensors:
        return "no *.safetensors file"
    for name in tensors:
        problem = safetensors_problem(files[name])
        if problem is not None:
            return f"{name}: {problem}"
    return None


def safetensors_problem(data: bytes) -> str | None:
    """Why ``data`` is not a well-formed safetensors file (None: it is). Read here, in the
    engine, without any library: an 8-byte little-endian header size, a JSON header naming
    each tensor's dtype, shape and byte range, and exactly the data those ranges cover."""
    if len(data) < 8:
        return "shorter than its header size"
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(len(data) - 8, 100 << 20):
        return "header larger than the file"
    try:
        header = loads_bounded(data[8 : 8 + size], max_depth=8, max_bytes=100 << 20)
    except InvalidMessage as exc:
        return f"header: {exc}"
    if not isinstance(header, dict):
        return "header is not a JSON object"
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and o >= 0 for o in offsets)
            or offsets[0] > offsets[1]
        ):
            return f"tensor {str(name)[:60]!r}: bad data offsets"
        end = max(end, offsets[1])
    if end != len(data) - 8 - size:
        return f"data of {len(data) - 8 - size} bytes where the header says {end}"
    return None


def _run_parameters(sandbox: Sandbox) -> frozenset[str]:
    """The parameters ``sandbox.run`` takes (``on_message`` and ``on_checkpoint`` are only
    taken by sandboxes that hand messages over as they come)."""
    try:
        return frozenset(inspect.signature(sandbox.run).parameters)
    except (TypeError, ValueError):
        return frozenset()


def _forward(
    message: Mapping[str, Any], on_progress: Callable[[Mapping[str, float]], None]
) -> None:
    """Hand a progress message's point on, when it is a well-formed one."""
    point = _point(message.get("point"))
    if point is not None:
        on_progress(point)


def _point(value: Any) -> dict[str, float] | None:
    """A curve point ``{"step": int, "loss": float}`` from what a trainer reported (None:
    not one)."""
    if not isinstance(value, dict):
        return None
    step, loss = value.get("step"), value.get("loss")
    if isinstance(step, bool) or not isinstance(step, int | float):
        return None
    if isinstance(loss, bool) or not isinstance(loss, int | float) or not math.isfinite(loss):
        return None
    return {"step": int(step), "loss": float(loss)}


def _curve(values: Any) -> list[dict[str, float]]:
    """The well-formed points of ``values``, thinned evenly to at most :data:`MAX_CURVE`
    (the last point always kept)."""
    if not isinstance(values, list):
        return []
    points = [p for p in (_point(v) for v in values) if p is not None]
    if len(points) <= MAX_CURVE:
        return points
    stride = len(points) / (MAX_CURVE - 1)
    thinned = [points[int(k * stride)] for k in range(MAX_CURVE - 1)]
    return [*thinned, points[-1]]


def _metrics(value: Any) -> dict[str, float]:
    """The finite numbers of a trainer's ``metrics`` (at most 50, names capped)."""
    if not isinstance(value, dict):
        return {}
    found: dict[str, float] = {}
    for name, number in list(value.items())[:50]:
        numeric = isinstance(number, int | float) and not isinstance(number, bool)
        if numeric and math.isfinite(number):
            found[str(name)[:80]] = float(number)
    return found


def model_files(program: Program) -> dict[str, bytes]:
    """The files of ``program``'s model, by name relative to its model folder."""
    return {p[len(MODEL_DIR) :]: program[p] for p in program if p.startswith(MODEL_DIR)}


def with_model(program: Program, model: Mapping[str, bytes]) -> Program:
    """``program`` with its model folder replaced by ``model`` (names relative to it)."""
    updates: dict[str, bytes | str | None] = {p: None for p in program if p.startswith(MODEL_DIR)}
    updates.update({MODEL_DIR + name: data for name, data in model.items()})
    return program.with_files(updates)
