"""The ``tool_loop`` proposal: one JSON tool call per reply, for at most ``max_steps`` replies.

Tools: ``view`` (a file with line numbers), ``create`` (write a whole file), ``str_replace``
(replace text that occurs exactly once), ``run_sample`` (run the program's ``task_agent.solve``
on a few train inputs in a subprocess, see meta_sample.py) and ``done``.
"""

from __future__ import annotations

from typing import Any

from meta_edits import closest_lines
from meta_sample import run_sample
from meta_settings import Model, ProposalError, Settings
from meta_text import extract_json, truncate_middle
from meta_workspace import Workspace


def propose_tool_loop(
    model: Model,
    messages: list[dict[str, str]],
    files: Workspace,
    report: dict[str, Any],
    settings: Settings,
) -> tuple[str, dict[str, Any]]:
    """Let the model work with tools on ``files``; the summary and extra meta info.

    Raises:
        ProposalError: More replies without a tool call than ``settings.retries`` allows.
    """
    retries = settings.retries
    steps = 0
    tools_used: list[str] = []
    while steps < settings.max_steps:
        steps += 1
        reply = model.ask(messages, "meta:tool")
        messages.append({"role": "assistant", "content": reply})
        call = extract_json(reply)
        tool = call.get("tool") if call else None
        if not isinstance(tool, str):
            if retries <= 0:
                raise ProposalError("malformed reply: no JSON tool call")
            retries -= 1
            observation = (
                'Error: reply with exactly one JSON object such as {"tool": "view", "path": '
                '"task_agent.py"} or {"tool": "done", "summary": "..."}.'
            )
            messages.append({"role": "user", "content": observation})
            continue
        assert call is not None
        tools_used.append(tool)
        if tool == "done":
            summary = call.get("summary")
            return str(summary or ""), {"steps": steps, "tools": tools_used}
        observation = run_tool(call, tool, files, report, settings)
        observation = truncate_middle(observation, settings.max_observation_chars)
        left = settings.max_steps - steps
        messages.append({"role": "user", "content": f"{observation}\n[{left} steps left]"})
    extra = {"steps": steps, "tools": tools_used, "stopped": "step cap"}
    return "step cap reached", extra


def run_tool(
    call: dict[str, Any],
    tool: str,
    files: Workspace,
    report: dict[str, Any],
    settings: Settings,
) -> str:
    """Carry out one tool call; what the model is told (errors included)."""
    if tool == "run_sample":
        n = call.get("n", settings.sample_size)
        n = n if isinstance(n, int) and not isinstance(n, bool) else settings.sample_size
        files.flush()
        return run_sample(files.root, report, max(1, min(n, 10)), settings)
    if tool not in ("view", "create", "str_replace"):
        return f"Error: unknown tool `{tool}`; use view, create, str_replace, run_sample or done."
    rel = files.safe(call.get("path"))
    if rel is None:
        return f"Error: rejected path `{call.get('path')}` (must be relative, inside the program)."
    if tool == "view":
        content = files.read(rel)
        if content is None:
            return f"Error: no such text file `{rel}`."
        numbered = "\n".join(f"{k:>5}| {line}" for k, line in enumerate(content.splitlines(), 1))
        return f"{rel}:\n{numbered}"
    if tool == "create":
        content = call.get("content")
        if not isinstance(content, str):
            return "Error: create needs a string `content`."
        files.write(rel, content)
        return f"Wrote {rel} ({len(content)} characters)."
    old, new = call.get("old"), call.get("new")
    if not isinstance(old, str) or not isinstance(new, str) or not old:
        return "Error: str_replace needs non-empty string `old` and string `new`."
    content = files.read(rel)
    if content is None:
        return f"Error: no such text file `{rel}`."
    count = content.count(old)
    if count != 1:
        hint = closest_lines(content, old) if count == 0 else "Add context to make it unique."
        return f"Error: `old` occurs {count} times in {rel}; it must occur exactly once. {hint}"
    files.write(rel, content.replace(old, new, 1))
    return f"Replaced 1 occurrence in {rel}."
