"""Seed task agent of the ``support`` task: route a customer request to one team.

``solve(inputs)`` receives ``{"message": ..., "channel": ...}`` and returns one of the teams
named in ``kb.md`` (billing, refund, shipping, account, technical, cancellation).

It asks the run's language model (``llm.complete``, answered by the engine; the sandbox has no
network), giving it the routing guide ``kb.md`` and the message, and takes the first team name
in the reply. When no model is configured, the call fails or the reply names no team, it falls
back to keyword rules: each team scores the number of its keywords in the message plus its
``PARAMS`` bias, and the best score wins (ties: the order of ``TEAMS``).

Deliberately simple: the prompt has no examples, the reply parsing is naive and the keyword
lists ignore the routing rules of ``kb.md``. Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import llm

TEAMS = ("billing", "refund", "shipping", "account", "technical", "cancellation")

KEYWORDS = {
    "billing": ("charge", "invoice", "bill", "payment"),
    "refund": ("refund", "money back"),
    "shipping": ("package", "tracking", "delivery", "ship"),
    "account": ("password", "log in", "login", "account"),
    "technical": ("crash", "error", "slow", "sync"),
    "cancellation": ("cancel", "renew"),
}

PARAMS = {
    "use_llm": 1,
    "max_tokens": 8,
    "bias_billing": 0.0,
    "bias_refund": 0.0,
    "bias_shipping": 0.0,
    "bias_account": 0.0,
    "bias_technical": 0.0,
    "bias_cancellation": 0.0,
}

PARAM_SPACE = {
    "use_llm": {"type": "int", "low": 0, "high": 1},
    "bias_billing": {"type": "float", "low": -2.0, "high": 2.0},
    "bias_refund": {"type": "float", "low": -2.0, "high": 2.0},
    "bias_shipping": {"type": "float", "low": -2.0, "high": 2.0},
    "bias_account": {"type": "float", "low": -2.0, "high": 2.0},
    "bias_technical": {"type": "float", "low": -2.0, "high": 2.0},
    "bias_cancellation": {"type": "float", "low": -2.0, "high": 2.0},
}

_GUIDE: list[str] = []


def guide() -> str:
    """The routing guide shipped with the program (read once)."""
    if not _GUIDE:
        _GUIDE.append(Path(__file__).with_name("kb.md").read_text(encoding="utf-8"))
    return _GUIDE[0]


def ask_model(message: str) -> str | None:
    """The team the language model names, or None."""
    prompt = [
        {"role": "system", "content": guide()},
        {"role": "user", "content": f"Customer request: {message}\nTeam:"},
    ]
    try:
        reply: str = llm.complete(
            prompt, temperature=0.0, max_tokens=int(PARAMS["max_tokens"]), purpose="route"
        )
    except llm.LLMError:
        return None
    words: list[str] = re.findall(r"[a-z]+", reply.lower())
    for word in words:
        if word in TEAMS:
            return word
    return None


def keyword_team(message: str) -> str:
    """The team whose keywords (plus bias) score highest."""
    text = message.lower()
    best, best_score = TEAMS[0], float("-inf")
    for team in TEAMS:
        score = sum(1 for word in KEYWORDS[team] if word in text) + float(PARAMS[f"bias_{team}"])
        if score > best_score:
            best, best_score = team, score
    return best


def solve(inputs: dict[str, Any]) -> str:
    message = str(inputs.get("message", ""))
    if PARAMS["use_llm"]:
        team = ask_model(message)
        if team is not None:
            return team
    return keyword_team(message)
