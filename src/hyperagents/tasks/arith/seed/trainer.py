"""Trainer of the ``arith`` agent's model: ``train(request, progress)`` (the weights contract).

``request`` holds ``model_dir`` (the current model's folder, or None: train from scratch),
``out_dir`` (where the new ``config.json`` and ``model.safetensors`` go), ``examples``
(``{"inputs": {"a": "123", "b": "45"}, "output": "168"}``), ``seed``, ``threads``, ``device``
and ``options``:

* ``steps``: optimiser steps (default 2000 from scratch, 1000 when continuing: with
  ``pos = "abacus"`` 2000 steps learn 1..3 digits and the next place about half the time,
  the measured start of self-improvement in benchmarks/RESULTS.md, issue 17);
* ``batch_size`` (128), ``lr`` (3e-3; a linear warm-up over ``warmup`` steps, 200, then a
  cosine decay to a tenth), ``weight_decay`` (0.1), ``max_digits`` (0: no limit; otherwise
  examples with a longer operand are left out), ``log_every`` (50: a point of the curve, and
  a call of ``progress``, every so many steps);
* ``place_offset`` (1; models with ``pos = "abacus"`` only): each example's digit places are
  shifted by a random offset in ``0..place_offset`` (drawn per example and step), so the model
  also learns the places up to ``place_offset`` beyond its longest example, which is how far
  it answers problems longer than it was trained on (``arith_model``'s docstring);
* a new model's architecture: ``d_model``, ``n_layers``, ``n_heads``, ``d_ff``, ``pos``
  (``"abacus"``, ``"nope"`` or ``"rope"``; :class:`arith_model.ModelConfig`); a model that
  continues keeps its own.

Every ``checkpoint_seconds`` the whole state (model, optimiser, the batches' generator, torch's,
the step and the curve) is written as a checkpoint (``train_state.Checkpoints``); a training
given one in ``resume_dir`` goes on from its step and ends with the same model.

An example whose inputs are not two digit strings, or whose output is not a digit string, is
skipped and counted. Training is AdamW on the answer tokens only (the loss of
the prompt is not learnt), deterministic on the CPU for a given seed. It returns the loss curve
and metrics (examples used and skipped, steps, final loss, seconds).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from arith_model import (
    PAD,
    AdderModel,
    ModelConfig,
    encode_answer,
    encode_prompt,
    load_model,
    save_model,
)
from train_state import Checkpoints, restore_rng, rng_state

DEFAULTS: dict[str, Any] = {
    "batch_size": 128,
    "lr": 3e-3,
    "warmup": 200,
    "weight_decay": 0.1,
    "max_digits": 0,
    "log_every": 50,
    "place_offset": 1,
}
#: Steps when no ``steps`` option is given: training from scratch, and continuing.
SCRATCH_STEPS = 2000
CONTINUE_STEPS = 1000


def _is_number(text: Any) -> bool:
    return isinstance(text, str) and 0 < len(text) <= 100 and text.isascii() and text.isdigit()


def _sequences(examples: Sequence[Any], max_digits: int) -> tuple[list[tuple[list[int], int]], int]:
    """The token sequences (with the prompt's length) of the usable examples, and how many
    were skipped."""
    kept: list[tuple[list[int], int]] = []
    skipped = 0
    for example in examples:
        inputs = example.get("inputs") if isinstance(example, dict) else None
        output = example.get("output") if isinstance(example, dict) else None
        a = inputs.get("a") if isinstance(inputs, dict) else None
        b = inputs.get("b") if isinstance(inputs, dict) else None
        if not (_is_number(a) and _is_number(b) and _is_number(output)):
            skipped += 1
            continue
        assert isinstance(a, str) and isinstance(b, str) and isinstance(output, str)
        if max_digits and max(len(a), len(b)) > max_digits:
            continue
        prompt = encode_prompt(a, b)
        kept.append((prompt + encode_answer(output), len(prompt)))
    return kept, skipped


def _batch(rows: Sequence[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of a batch, padded on the right; the targets of prompt and padding
    positions are ignored (-100)."""
    width = max(len(seq) for seq, _ in rows)
    inputs = torch.full((len(rows), width - 1), PAD, dtype=torch.long)
    targets = torch.full((len(rows), width - 1), -100, dtype=torch.long)
    for row, (seq, prompt_len) in enumerate(rows):
        tokens = torch.tensor(seq, dtype=torch.long)
        inputs[row, : len(seq) - 1] = tokens[:-1]
        targets[row, prompt_len - 1 : len(seq) - 1] = tokens[prompt_len:]
    return inputs, targets


def _rate(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def _step(
    model: AdderModel,
    optimiser: torch.optim.Optimizer,
    rows: Sequence[tuple[list[int], int]],
    offsets: Sequence[int],
    device: str,
) -> float:
    """One optimiser step on the batch ``rows`` (each row's places shifted by its offset);
    its loss."""
    inputs, targets = _batch(rows)
    shift = torch.tensor(offsets, dtype=torch.long, device=device) if offsets else None
    logits = model(inputs.to(device), shift)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.to(device).flatten())
    optimiser.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimiser.step()
    return float(loss.item())


def _model(request: dict[str, Any], options: dict[str, Any], device: str) -> AdderModel:
    if request.get("model_dir"):
        return load_model(str(request["model_dir"]), device)
    arch = {
        k: options[k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "pos") if k in options
    }
    return AdderModel(ModelConfig(**arch)).to(device)


def train(
    request: dict[str, Any], progress: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Train the model on ``request["examples"]`` and save it in ``request["out_dir"]``.

    Raises:
        ValueError: No usable example, or an option of the wrong kind.
    """
    started = time.perf_counter()
    options = {**DEFAULTS, **dict(request.get("options") or {})}
    seed = int(request.get("seed", 0))
    torch.set_num_threads(max(1, int(request.get("threads", 1))))
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    wants_gpu = request.get("device") in ("auto", "cuda")
    device = "cuda" if wants_gpu and torch.cuda.is_available() else "cpu"
    rows, skipped = _sequences(request.get("examples") or [], int(options["max_digits"]))
    if not rows:
        raise ValueError(f"no usable training example ({skipped} malformed)")
    model = _model(request, options, device)
    default_steps = CONTINUE_STEPS if request.get("model_dir") else SCRATCH_STEPS
    steps = int(options.get("steps", default_steps))
    batch_size, lr = int(options["batch_size"]), float(options["lr"])
    max_offset = int(options["place_offset"]) if model.config.pos == "abacus" else 0
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=float(options["weight_decay"])
    )
    rng = random.Random(seed)
    checkpoints = Checkpoints(request, progress)
    first, curve, loss_value = 0, [], float("nan")
    saved = checkpoints.resume()
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        restore_rng(rng, saved["rng"])
        first, curve, loss_value = int(saved["step"]), list(saved["curve"]), float(saved["loss"])
    model.train()
    for step in range(first, steps):
        for group in optimiser.param_groups:
            group["lr"] = _rate(step, steps, lr, int(options["warmup"]))
        chosen = [rows[rng.randrange(len(rows))] for _ in range(batch_size)]
        offsets = [rng.randint(0, max_offset) for _ in chosen] if max_offset else []
        loss_value = _step(model, optimiser, chosen, offsets, device)
        if step == 0 or (step + 1) % int(options["log_every"]) == 0 or step == steps - 1:
            point = {"step": step + 1, "loss": round(loss_value, 6)}
            curve.append(point)
            if progress is not None:
                progress(point)
        done = {"step": step + 1, "loss": loss_value, "curve": curve}
        checkpoints.maybe_save(
            step + 1,
            loss_value,
            lambda done=done: {
                **done,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "rng": rng_state(rng),
            },
        )
    save_model(model, str(request["out_dir"]))
    metrics = {
        "examples": float(len(rows)),
        "skipped": float(skipped),
        "steps": float(steps),
        "final_loss": loss_value,
        "seconds": time.perf_counter() - started,
    }
    return {"curve": curve, "metrics": metrics}
