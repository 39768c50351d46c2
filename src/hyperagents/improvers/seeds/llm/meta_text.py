"""Small text helpers of the LLM meta agent (capping, JSON in replies, the reply's summary)."""

from __future__ import annotations

import json
import re
from typing import Any

#: Largest ``meta_info`` (JSON bytes) the agent returns; the engine accepts 64 KB.
MAX_INFO_BYTES = 60_000


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (ending in ``...`` when cut)."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def truncate_middle(text: str, limit: int) -> str:
    """``text`` with its middle cut out (and the cut announced) if it is over ``limit``."""
    if len(text) <= limit:
        return text
    head = text[: limit * 2 // 3]
    tail = text[-(limit // 3) :]
    omitted = len(text) - len(head) - len(tail)
    return f"{head}\n[... {omitted} characters omitted ...]\n{tail}"


def dump(value: Any) -> str:
    """``value`` as text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def join_lines(lines: list[str]) -> str:
    """``lines`` joined, each ended by a newline."""
    return "".join(line + "\n" for line in lines)


def extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object found in ``text`` (code fences and prose around it are ignored)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def summary_line(reply: str) -> str:
    """The reply's ``SUMMARY:`` line, else its first line of prose."""
    for line in reply.splitlines():
        m = re.match(r"^\s*\**SUMMARY\**\s*:\s*(.+)$", line, re.IGNORECASE)
        if m:
            return m.group(1).strip()
    for line in reply.splitlines():
        text = line.strip()
        if text and not text.startswith(("<<<<<<<", "=======", ">>>>>>>", "```", "=== ")):
            return text
    return ""


def fit(info: dict[str, Any]) -> dict[str, Any]:
    """Keep ``info`` JSON-able and under the engine's size limit."""
    info = json.loads(json.dumps(info, default=str))
    if len(json.dumps(info)) > MAX_INFO_BYTES:
        info["files"] = info.get("files", [])[:50]
        info.pop("tools", None)
    return info
