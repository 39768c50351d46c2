"""The reviewer step: the model reviews the applied change and answers with structured feedback.

The feedback (``issue_type``, ``severity``, ``suggested_fix``, ``confidence``) is stored as
``meta_info["review"]``; the next proposal in the lineage shows it to the model.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from meta_settings import Model
from meta_text import cap, extract_json, truncate_middle
from meta_workspace import Workspace

SEVERITIES = ("none", "low", "medium", "high", "critical")
_KEYS = ("issue_type", "severity", "suggested_fix", "confidence")


def change_diff(files: Workspace) -> str:
    """The unified diff of the edits (at most 20,000 characters)."""
    chunks: list[str] = []
    for rel in files.changed():
        old = files.originals.get(rel) or ""
        new = files.overlay.get(rel, "")
        chunks.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a/{rel}",
                tofile=f"b/{rel}",
            )
        )
    return truncate_middle("".join(chunks), 20000)


def review_change(model: Model, files: Workspace, report: dict[str, Any]) -> dict[str, Any] | None:
    """Ask the model to review the edits; its feedback, or None if the reply has none.

    Raises:
        llm.LLMError: The model call failed.
    """
    task = report.get("task") if isinstance(report.get("task"), dict) else {}
    assert isinstance(task, dict)
    prompt = (
        f"You review a change to a program that solves the task `{task.get('name', '?')}`: "
        f"{cap(str(task.get('description', '')), 1000)}\n\nThe change (unified diff):\n"
        f"{change_diff(files)}\n\nLook for bugs, regressions, overfitting to specific instances "
        "and broken files. Answer with ONE JSON object only:\n"
        '{"issue_type": "bug|regression|overfitting|style|none", "severity": '
        '"none|low|medium|high|critical", "suggested_fix": "...", "confidence": 0.0-1.0}'
    )
    reply = model.ask([{"role": "user", "content": prompt}], "meta:review")
    return parse_review(reply)


def parse_review(text: str) -> dict[str, Any] | None:
    """The reviewer's structured feedback from ``text`` (JSON, or ``key: value`` lines)."""
    data = extract_json(text)
    if data is None:
        data = {}
        for key in _KEYS:
            pattern = rf"[\"']?{key}[\"']?\s*[:=]\s*[\"']?([^\n\"']+)"
            m = re.search(pattern, text, re.IGNORECASE)
            if m:
                data[key] = m.group(1).strip().rstrip(",")
    if not any(k in data for k in _KEYS):
        return None
    severity = str(data.get("severity", "")).strip().lower()
    return {
        "issue_type": cap(str(data.get("issue_type") or "unknown").strip(), 100),
        "severity": severity if severity in SEVERITIES else (severity[:40] or "unknown"),
        "suggested_fix": cap(str(data.get("suggested_fix") or "").strip(), 1000),
        "confidence": confidence(data.get("confidence")),
    }


def confidence(value: Any) -> float | None:
    """A confidence in [0, 1] from a number, a percentage or a word (None if none of them)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        pct = text.endswith("%")
        m = re.match(r"^-?\d+(\.\d+)?", text.rstrip("%").strip())
        if not m:
            return {"low": 0.25, "medium": 0.5, "high": 0.85}.get(text.lower())
        number = float(m.group(0))
        value = number / 100 if pct else number
    if not isinstance(value, (int, float)):
        return None
    number = float(value)
    if number > 1.0:
        number = number / 100.0
    return round(min(1.0, max(0.0, number)), 4)
