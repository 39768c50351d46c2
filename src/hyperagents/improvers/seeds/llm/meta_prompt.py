"""The LLM meta agent's prompt: the program's code, its evaluation, the archive, instructions."""

from __future__ import annotations

import json
import os
from typing import Any

from meta_report import archive_section, evaluation_section, reviews_section
from meta_settings import Settings
from meta_text import cap, truncate_middle
from meta_workspace import workspace_files

SYSTEM = (
    "You are the meta agent of a self-improving program. You read the program's code and its "
    "evaluation, and you propose edits that raise its score on unseen instances of the task. "
    "You may edit any file of the program, including your own: meta_agent.py and its meta_*.py "
    "modules (the procedure that produces future edits, yourself); the CONFIG literal in "
    "meta_agent.py sets your edit format and limits. Prefer general improvements over special "
    "cases for the instances shown; never hard-code answers."
)


def build_prompt(workspace: str, report: dict[str, Any], settings: Settings) -> str:
    """The user message of a proposal: task, budget, code, evaluation, archive, reviewer
    feedback and instructions, at most ``settings.max_prompt_chars`` characters (the code
    gets what the other sections leave)."""
    task = report.get("task") if isinstance(report.get("task"), dict) else {}
    assert isinstance(task, dict)
    left = report.get("generations_left")
    head = [
        "## Task\n"
        f"Name: {task.get('name', '?')}\n"
        f"Description: {cap(str(task.get('description', '')), 2000)}\n"
        f"Score range: {task.get('score_range', '?')} (higher is better)",
        f"## Budget\nThis is generation {report.get('generation', '?')}; generations left: "
        f"{left if left is not None else 'unknown'}. With few generations left, prefer safe, "
        "incremental changes; with many, bolder ideas are affordable.",
    ]
    tail = [evaluation_section(report, settings), archive_section(report, settings)]
    for section in (_parent_review(report), reviews_section(report)):
        if section:
            tail.append(section)
    model = model_section(workspace)
    if model:
        tail.append(model)
    tail.append(instructions(settings.format))
    room = settings.max_prompt_chars - sum(len(part) + 2 for part in head + tail)
    parts = [*head, code_section(workspace, settings, room), *tail]
    return cap("\n\n".join(parts), settings.max_prompt_chars)


def code_section(workspace: str, settings: Settings, room: int) -> str:
    """The program's files (each cut to ``settings.max_file_chars``) in ``room`` characters;
    files that do not fit are named."""
    lines = ["## Program files"]
    used = len(lines[0]) + 500  # kept for the line naming the files left out
    left_out: list[str] = []
    for rel, text in workspace_files(workspace, settings.max_files):
        shown = truncate_middle(text, settings.max_file_chars)
        block = f"--- {rel} ---\n{shown}\n--- end of {rel} ---"
        if used + len(block) + 1 > room:
            left_out.append(rel)
            continue
        lines.append(block)
        used += len(block) + 1
    if left_out:
        lines.append(cap("Not shown (the prompt is full): " + ", ".join(left_out), 400))
    return "\n".join(lines)


#: The program's trainer and the file through which a meta agent asks for a weight update.
TRAINER_FILE = "trainer.py"
PLAN_FILE = "training_plan.json"


def model_section(workspace: str) -> str:
    """How to ask for a weight update, where the program carries a model (has a trainer.py);
    empty otherwise."""
    if not os.path.isfile(os.path.join(workspace, TRAINER_FILE)):
        return ""
    return (
        "## Model\n"
        "This program carries a model: its weights are the files under model/ (binary, not "
        f"shown), trained by {TRAINER_FILE}'s train(request, progress). Besides editing code "
        f"(the harness), you may ask the engine to train the model: create {PLAN_FILE} holding "
        'a JSON object such as {"lever": "weights", "sources": ["self", "task"], "options": '
        '{}}. "lever" is "weights" (train only), "both" (train and keep your code edits) or '
        '"harness" (the default without the file). "sources" picks the training data: "self" '
        "(the current program's own outputs on train inputs that the task's verifier accepts), "
        '"task" (the task\'s own training examples), "teacher" (a teacher model or a '
        'teacher.py defining label(inputs)), "people" (labels posted by people). "options" '
        f"is passed to train() as request['options']. Never write files under model/ yourself; "
        "the engine discards such edits. The run's levers may reduce your choice."
    )


def _parent_review(report: dict[str, Any]) -> str:
    parent = report.get("parent") if isinstance(report.get("parent"), dict) else {}
    assert isinstance(parent, dict)
    meta_info = parent.get("meta_info") if isinstance(parent.get("meta_info"), dict) else {}
    assert isinstance(meta_info, dict)
    review = meta_info.get("review")
    if not isinstance(review, dict) or not review:
        return ""
    return (
        "## Reviewer feedback on the change that produced this program\n"
        + json.dumps(review, sort_keys=True, default=str)[:2000]
        + "\nTake it into account: fix the issue if it is real."
    )


def instructions(fmt: str) -> str:
    """What the model is asked to do, and how to write its edits in format ``fmt``."""
    head = (
        "## Instructions\n"
        "Study the failing instances and their feedback, find the cause in the code, and improve "
        "the program. Any file may be edited, created or rewritten, your own meta_agent.py and "
        "meta_*.py modules included (name a new module of yours meta_*.py). Keep the program "
        "runnable: task_agent.py must keep its solve(inputs) function.\n"
    )
    if fmt == "whole_file":
        return head + (
            "Start your reply with one line `SUMMARY: <what you change and why>`. Then give the "
            "complete new content of every file you change or create, each as:\n"
            "=== FILE: relative/path.py ===\n<full file content>\n=== END FILE ===\n"
            "Paths are relative to the program root; no absolute paths and no `..`."
        )
    if fmt == "tool_loop":
        return head + (
            "Work with tools. Reply with exactly ONE JSON object per message, one of:\n"
            '{"tool": "view", "path": "task_agent.py"}\n'
            '{"tool": "create", "path": "helpers.py", "content": "..."}  (create or overwrite)\n'
            '{"tool": "str_replace", "path": "task_agent.py", "old": "...", "new": "..."}  '
            "(old must occur exactly once)\n"
            '{"tool": "run_sample", "n": 2}  (runs solve on n train inputs; shows outputs or '
            "errors, not scores; llm.complete fails there)\n"
            '{"tool": "done", "summary": "what you changed and why"}\n'
            "Paths are relative to the program root. Finish with done."
        )
    return head + (
        "Start your reply with one line `SUMMARY: <what you change and why>`. Then give edits "
        "as SEARCH/REPLACE blocks:\n"
        "<<<<<<< SEARCH relative/path.py\n<exact lines of the current file>\n=======\n"
        "<replacement lines>\n>>>>>>> REPLACE\n"
        "The SEARCH part must copy existing lines exactly (enough of them to be unique); an "
        "empty SEARCH part creates a new file. Paths are relative to the program root."
    )
