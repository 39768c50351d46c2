"""Seed task agent of the ``summaries`` task: keep the lead sentence.

``solve(inputs)`` receives ``{"text": str, "max_words": int}`` and returns a summary: the
paragraph's sentences ranked by ``PARAMS["rank"]`` (``"lead"``: in order; ``"numbers"``: those
with digits or capitalised names first, then in order), the first ``PARAMS["sentences"]`` of
them in the paragraph's order, cut to ``max_words`` words. ``PARAM_SPACE`` declares the range of
each parameter for the meta agent that tunes them. Standalone: standard library only.
"""

from __future__ import annotations

import re
from typing import Any

PARAMS = {
    "sentences": 1,
    "rank": "lead",
}

PARAM_SPACE = {
    "sentences": {"type": "int", "low": 1, "high": 4, "feature": "text"},
    "rank": {"type": "choice", "choices": ["lead", "numbers"], "feature": "text"},
}


def _weight(sentence: str) -> int:
    digits = sum(ch.isdigit() for ch in sentence)
    names = len(re.findall(r"(?<!^)(?<![.!?] )\b[A-Z][a-z]+", sentence))
    return (digits > 0) * 2 + names


def solve(inputs: dict[str, Any]) -> str:
    """A summary of ``inputs["text"]`` in at most ``inputs["max_words"]`` words."""
    p: dict[str, Any] = PARAMS
    text = str(inputs.get("text", ""))
    limit = int(inputs.get("max_words", 30))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    order = list(range(len(sentences)))
    if p["rank"] == "numbers":
        order.sort(key=lambda k: -_weight(sentences[k]))
    chosen = sorted(order[: int(p["sentences"])])
    words = " ".join(sentences[k] for k in chosen).split()
    return " ".join(words[:limit])
