"""LLM meta agent: a seed hyperagent improver that asks the run's language model for edits.

The engine copies the parent program into a fresh workspace and calls :func:`improve` there, in a
sandboxed process; the files left in the workspace become the child program and the returned dict
becomes its ``meta_info``. The model is reached through the sandbox's ``llm`` module
(``llm.complete(...)``, answered by the engine's gateway; ``llm.LLMError`` on failure).

The model may edit **any** file of the program, this agent's own included. The agent is this file
and its sibling modules, every top-level ``meta_*.py`` file of the program (the engine counts them
all as meta code), each small enough to be shown to the model whole:

* ``meta_agent.py``: ``CONFIG`` (the agent's strategy, meant to be edited) and :func:`improve`.
* ``meta_settings.py``: ``CONFIG`` checked into typed settings; the model client; the errors.
* ``meta_workspace.py``: the program's files, with edits kept in memory until a proposal works.
* ``meta_prompt.py`` and ``meta_report.py``: the prompt (code, evaluation, archive, reviewer
  feedback, generations left, instructions for the edit format).
* ``meta_edits.py`` and ``meta_propose.py``: SEARCH/REPLACE blocks and whole-file rewrites
  (parsing, tolerant matching, the propose-and-repair loops).
* ``meta_tools.py`` and ``meta_sample.py``: the tool loop (``view``, ``create``, ``str_replace``,
  ``run_sample``, ``done``).
* ``meta_review.py``: the reviewer step; ``meta_text.py``: small text helpers.

Edits are written only when a proposal succeeds, so a failure (malformed replies beyond the retry
budget, ``llm.LLMError``, anything unexpected) returns ``{"operator": "llm", "applied": 0,
"error": ...}`` and leaves the workspace unchanged. With ``CONFIG["review"]`` the model then
reviews the applied diff; its feedback is stored as ``meta_info["review"]`` and the next proposal
in the lineage receives it.

Standard library only (plus ``llm`` at call time); deterministic given the model's replies.
"""

from __future__ import annotations

import importlib
from typing import Any

from meta_prompt import SYSTEM, build_prompt
from meta_propose import propose_search_replace, propose_whole_file
from meta_review import review_change
from meta_settings import Model, ProposalError, Settings, SettingsError
from meta_text import cap, fit
from meta_tools import propose_tool_loop
from meta_workspace import Workspace

CONFIG: dict[str, Any] = {
    # How edits are proposed: "search_replace", "whole_file" or "tool_loop" (see PROPOSERS).
    "format": "search_replace",
    # Ask the model to review the applied change; the next proposal in the lineage sees it.
    "review": True,
    # Sampling temperature and reply length limit of every model call (0: the gateway's).
    "temperature": 0.2,
    "max_tokens": 4096,
    # Malformed replies answered with a diagnostic before the proposal fails.
    "retries": 2,
    # Rounds in which SEARCH/REPLACE blocks that did not match are sent back to be fixed.
    "repair_rounds": 2,
    # Model calls the tool loop may make.
    "max_steps": 12,
    # A longer file is shown with its middle cut out; more files than max_files are not shown.
    "max_file_chars": 8000,
    "max_files": 40,
    # The whole prompt; the program's files get what the other sections leave.
    "max_prompt_chars": 120000,
    # Lowest-scoring train instances shown, and the characters shown of each field.
    "max_instances": 6,
    "max_field_chars": 600,
    # Most recent archive entries shown.
    "max_archive": 20,
    # Characters of a tool's answer shown to the model.
    "max_observation_chars": 6000,
    # run_sample: train inputs run by default, and its time limit in seconds.
    "sample_size": 3,
    "sample_timeout": 20,
}

#: Edit format -> the function that gets a proposal from the model and applies it in memory.
PROPOSERS: dict[str, Any] = {
    "search_replace": propose_search_replace,
    "whole_file": propose_whole_file,
    "tool_loop": propose_tool_loop,
}


def improve(workspace: str, report: dict[str, Any]) -> dict[str, Any]:
    """Ask the language model to improve the program in ``workspace``; apply its edits.

    Args:
        workspace: Directory holding the copy of the parent program; edited in place.
        report: The parent's evaluation report (missing or malformed parts are tolerated).

    Returns:
        The child's ``meta_info``: ``operator`` (``"llm:<format>"``), ``applied`` (edits made),
        ``files`` (changed paths), ``summary``, ``review`` (dict or None) and ``rounds`` (model
        calls); or ``{"operator": "llm", "applied": 0, "error": ...}`` with nothing changed.
    """
    report = report if isinstance(report, dict) else {}
    try:
        settings = Settings.parse(CONFIG, formats=tuple(PROPOSERS))
    except SettingsError as exc:
        return failure(f"CONFIG: {exc}", 0)
    files = Workspace(workspace)
    try:
        llm = importlib.import_module("llm")
    except ImportError as exc:
        return failure(f"no llm module: {exc}", 0)
    model = Model(llm, settings)
    llm_error: type[BaseException] = getattr(llm, "LLMError", Exception)
    try:
        prompt = build_prompt(workspace, report, settings)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        propose = PROPOSERS[settings.format]
        summary, extra = propose(model, messages, files, report, settings)
        files.flush()
    except llm_error as exc:
        files.restore()
        return failure(f"LLMError: {exc}", model.calls)
    except ProposalError as exc:
        files.restore()
        return failure(str(exc), model.calls)
    except Exception as exc:  # the engine must always get a meta_info back
        files.restore()
        return failure(f"{type(exc).__name__}: {exc}", model.calls)

    info: dict[str, Any] = {
        "operator": f"llm:{settings.format}",
        "applied": files.edits,
        "files": files.changed(),
        "summary": cap(summary, 500),
        "review": None,
        "rounds": model.calls,
    }
    info.update(extra)
    if settings.review and files.changed():
        try:
            review = review_change(model, files, report)
            info["review"] = review
            if review is None:
                info["review_error"] = "unparsable review reply"
        except Exception as exc:  # a failed review never undoes the proposal
            info["review_error"] = cap(f"{type(exc).__name__}: {exc}", 300)
        info["rounds"] = model.calls
    return fit(info)


def failure(error: str, calls: int) -> dict[str, Any]:
    """The ``meta_info`` of a proposal that changed nothing."""
    return {"operator": "llm", "applied": 0, "error": cap(error, 2000), "rounds": calls}
