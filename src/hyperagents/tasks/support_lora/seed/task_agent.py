"""Task agent of the ``support-lora`` task: route a request with the program's own model.

``solve(inputs)`` receives ``{"message": ..., "channel": ...}`` and returns the team the model
names. The model is the one in ``model/`` beside this file (``routing_model.py`` reads its
config): the base causal LM with the LoRA adapter merged into its weights, loaded once per
process on the first request. Its greedy reply is read strictly (``routing_model.parse_reply``:
exactly a team's name); a reply that names no team is returned as it is, cut to 80 characters,
and scores 0: there is no keyword fallback, so the score is the model's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from routing_model import load_for_serving, parse_reply, reply

PARAMS = {"max_new_tokens": 8}

_LOADED: list[Any] = []


def model() -> tuple[Any, Any]:
    """The served model and its tokenizer (loaded on the first call)."""
    if not _LOADED:  # torch's threads: the sandbox's limit (OMP_NUM_THREADS)
        _LOADED.extend(load_for_serving(Path(__file__).with_name("model")))
    return _LOADED[0], _LOADED[1]


def solve(inputs: dict[str, Any]) -> str:
    message = str(inputs.get("message", ""))
    served, tokenizer = model()
    text = reply(served, tokenizer, message, max_new_tokens=int(PARAMS["max_new_tokens"]))
    team: str | None = parse_reply(text)
    return team if team is not None else str(text).strip()[:80]
