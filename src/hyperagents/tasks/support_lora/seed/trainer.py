"""Trainer of the ``support-lora`` agent's model: ``train(request, progress)`` (weights contract).

``request`` holds ``model_dir`` (the current model folder: its ``config.json`` names the base,
and the adapter when there is one), ``out_dir`` (where the new ``config.json``,
``adapter_config.json`` and ``adapter_model.safetensors`` go), ``examples``
(``{"inputs": {"message": ..., "channel": ...}, "output": "billing"}``), ``seed``, ``threads``,
``device`` and ``options``:

* ``epochs`` (3): passes over the examples (``steps``, when given, wins: optimiser steps);
* ``batch_size`` (8), ``lr`` (1e-3, constant), ``log_every`` (5 steps: a point of the curve);
* a new adapter's ``r`` (8), ``alpha`` (16), ``dropout`` (0.05) and ``target_modules``
  (``["q_proj", "v_proj"]``); an adapter that continues keeps its own.

The base stays frozen; only the LoRA matrices train. The loss is on the answer only: the
tokens of the assistant's turn (the team's name and the end of the turn) after the chat
template's prompt. An example whose message is not a string or whose output is not a team's
name is skipped and counted. Training is AdamW, deterministic on the CPU for a given seed
(seeded initialisation, order and dropout; deterministic algorithms). Without ``model_dir``
the base is the one ``routing_model.DEFAULT_BASE`` names. Every ``checkpoint_seconds`` the
adapter's trainable weights, the optimiser, the order's and torch's generators, the step, the
queue of examples and the curve are written as a checkpoint (``train_state.Checkpoints``); a
training given one in ``resume_dir`` goes on from its step and ends with the same adapter.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from routing_model import DEFAULT_BASE, FORMAT, TEAMS, load_base, messages, read_config
from train_state import Checkpoints, restore_rng, rng_state

DEFAULTS: dict[str, Any] = {
    "epochs": 3,
    "steps": 0,
    "batch_size": 8,
    "lr": 1e-3,
    "log_every": 5,
    "r": 8,
    "alpha": 16,
    "dropout": 0.05,
    "target_modules": ["q_proj", "v_proj"],
}
ADAPTER = {"config": "adapter_config.json", "weights": "adapter_model.safetensors"}


def usable(examples: Sequence[Any]) -> tuple[list[tuple[str, str]], int]:
    """The ``(message, team)`` pairs of the usable examples, and how many were skipped."""
    kept: list[tuple[str, str]] = []
    for example in examples:
        inputs = example.get("inputs") if isinstance(example, dict) else None
        output = example.get("output") if isinstance(example, dict) else None
        message = inputs.get("message") if isinstance(inputs, dict) else None
        team = output.strip().lower() if isinstance(output, str) else None
        if isinstance(message, str) and team is not None and team in TEAMS:
            kept.append((message, team))
    return kept, len(examples) - len(kept)


def encode(tokenizer: Any, message: str, team: str) -> tuple[list[int], list[int]]:
    """Token ids of the chat with its answer, and labels: -100 (no loss) on the prompt."""

    def ids(chat: list[dict[str, str]], prompt: bool) -> list[int]:
        out = tokenizer.apply_chat_template(chat, add_generation_prompt=prompt)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    prompt = ids(messages(message), True)
    full = ids(messages(message, team), False)
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template's prompt is not a prefix of the answered chat")
    return full, [-100] * len(prompt) + full[len(prompt) :]


def batch(rows: Sequence[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask and labels of a batch."""
    width = max(len(ids) for ids, _ in rows)
    ids = [r[0] + [pad] * (width - len(r[0])) for r in rows]
    labels = [r[1] + [-100] * (width - len(r[1])) for r in rows]
    mask = [[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows]
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def peft_model(
    base: Any, model_dir: str | None, config: dict[str, Any], opts: dict[str, Any]
) -> Any:
    """The base with a trainable adapter: the current one when there is one, else a new one."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if model_dir is not None and config.get("adapter") is not None:
        return PeftModel.from_pretrained(base, model_dir, is_trainable=True)
    lora = LoraConfig(
        r=int(opts["r"]),
        lora_alpha=int(opts["alpha"]),
        lora_dropout=float(opts["dropout"]),
        target_modules=list(opts["target_modules"]),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora)


def save(model: Any, out_dir: Path, config: dict[str, Any], model_dir: str | None) -> None:
    """The adapter (safetensors) and a config naming it; a base folder inside the model
    folder is copied along (the new model folder replaces the old one as a whole)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # peft's model card: not part of a model
    stable(out_dir / ADAPTER["config"], config["base"])
    base = config["base"]
    if "path" in base and model_dir is not None:
        shutil.copytree(Path(model_dir) / base["path"], out_dir / base["path"], dirs_exist_ok=True)
    new = {"format": FORMAT, "base": base, "adapter": dict(ADAPTER)}
    (out_dir / "config.json").write_text(json.dumps(new, indent=2) + "\n", encoding="utf-8")


def stable(path: Path, base: dict[str, Any]) -> None:
    """peft's adapter config made the same on every machine and in every process: the base
    named as the config names it (not this machine's path), the target modules sorted."""
    adapter = json.loads(path.read_text(encoding="utf-8"))
    adapter["base_model_name_or_path"] = "/".join(str(v) for _, v in sorted(base.items()))
    if isinstance(adapter.get("target_modules"), list):
        adapter["target_modules"] = sorted(adapter["target_modules"])
    path.write_text(json.dumps(adapter, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _step(
    model: Any,
    optimiser: torch.optim.Optimizer,
    rows: Sequence[tuple[list[int], list[int]]],
    tokenizer: Any,
    device: str,
) -> float:
    """One optimiser step on the batch ``rows``; its loss."""
    inputs = {k: v.to(device) for k, v in batch(rows, tokenizer.eos_token_id).items()}
    loss = model(**inputs).loss
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def _setup(request: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Options over the defaults; threads, seeds and determinism set; the device."""
    opts = {**DEFAULTS, **dict(request.get("options") or {})}
    torch.set_num_threads(max(1, int(request.get("threads") or 1)))
    torch.manual_seed(int(request.get("seed", 0)))
    torch.use_deterministic_algorithms(True)
    cuda = request.get("device") in ("auto", "cuda") and torch.cuda.is_available()
    return opts, "cuda" if cuda else "cpu"


def train(
    request: dict[str, Any], progress: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Train (or continue) the LoRA adapter on the examples; write the model to ``out_dir``."""
    start = time.perf_counter()
    opts, device = _setup(request)
    model_dir = request.get("model_dir")
    config = read_config(model_dir) if model_dir else {"base": dict(DEFAULT_BASE), "adapter": None}
    base, tokenizer = load_base(model_dir or ".", config)
    model = peft_model(base, model_dir, config, opts).to(device)
    pairs, skipped = usable(request.get("examples") or [])
    rows = [encode(tokenizer, message, team) for message, team in pairs]
    size = max(1, int(opts["batch_size"]))
    per_epoch = max(1, -(-len(rows) // size))
    steps = int(opts["steps"]) or int(opts["epochs"]) * per_epoch if rows else 0
    order = random.Random(int(request.get("seed", 0)))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=float(opts["lr"]), weight_decay=0.0)
    checkpoints = Checkpoints(request, progress)
    first, curve, queue, loss_value = 0, [], [], float("nan")
    saved = checkpoints.resume()
    if saved is not None:
        model.load_state_dict(saved["adapter"], strict=False)
        optimiser.load_state_dict(saved["optimiser"])
        restore_rng(order, saved["rng"])
        first, curve, queue = int(saved["step"]), list(saved["curve"]), list(saved["queue"])
        loss_value = float(saved["loss"])
    model.train()
    for step in range(first + 1, steps + 1):
        if len(queue) < size:
            queue += order.sample(range(len(rows)), len(rows))
        chosen, queue = queue[:size], queue[size:]
        loss_value = _step(model, optimiser, [rows[i] for i in chosen], tokenizer, device)
        if step % max(1, int(opts["log_every"])) == 0 or step == steps:
            curve.append({"step": step, "loss": loss_value})
            if progress is not None:
                progress({"step": step, "loss": loss_value})
        done = {"step": step, "loss": loss_value, "curve": curve, "queue": queue}
        checkpoints.maybe_save(
            step,
            loss_value,
            lambda done=done: {
                **done,
                "adapter": {
                    n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad
                },
                "optimiser": optimiser.state_dict(),
                "rng": rng_state(order),
            },
        )
    model.eval()
    save(model.to("cpu"), Path(request["out_dir"]), config, model_dir)
    metrics = {
        "examples": float(len(rows)),
        "skipped": float(skipped),
        "steps": float(steps),
        "final_loss": loss_value,
        "trainable_parameters": float(sum(p.numel() for p in trainable)),
        "seconds": time.perf_counter() - start,
    }
    return {"curve": curve, "metrics": metrics}
