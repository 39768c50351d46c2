"""The ``search_replace`` and ``whole_file`` proposals: ask, parse, apply in memory, repair.

A malformed reply is answered with a diagnostic, at most ``retries`` times. A SEARCH/REPLACE
block that does not match is sent back with the closest lines of its file, for at most
``repair_rounds`` rounds. Paths must stay inside the workspace (no absolute paths, no ``..``).
"""

from __future__ import annotations

from typing import Any

from meta_edits import apply_search_replace, closest_lines, parse_search_replace, parse_whole_file
from meta_settings import Model, ProposalError, Settings
from meta_text import cap, summary_line
from meta_workspace import Workspace


def propose_search_replace(
    model: Model,
    messages: list[dict[str, str]],
    files: Workspace,
    report: dict[str, Any],
    settings: Settings,
) -> tuple[str, dict[str, Any]]:
    """Apply the model's SEARCH/REPLACE blocks to ``files``; the summary and extra meta info.

    Raises:
        ProposalError: No usable reply within the retries, or no block could be applied.
    """
    retries = settings.retries
    summary = ""
    unapplied: list[str] = []
    repair_used = 0
    while True:
        reply = model.ask(messages, "meta:propose")
        messages.append({"role": "assistant", "content": reply})
        blocks, problems = parse_search_replace(reply)
        if not summary:
            summary = summary_line(reply)
        if not blocks:
            if retries <= 0:
                detail = "; ".join(problems[:3]) or "no SEARCH/REPLACE block found"
                raise ProposalError(f"malformed reply: {detail}")
            retries -= 1
            messages.append({"role": "user", "content": _malformed(problems)})
            continue
        unapplied = [p for p in (apply_block(files, *block) for block in blocks) if p]
        if not unapplied or repair_used >= settings.repair_rounds:
            break
        repair_used += 1
        messages.append(
            {
                "role": "user",
                "content": "Some SEARCH/REPLACE blocks could not be applied:\n\n"
                + "\n\n".join(unapplied)
                + "\n\nThe other blocks were applied; do not send them again. Reply with "
                "corrected SEARCH/REPLACE blocks for the failed ones only, copying the SEARCH "
                "lines exactly from the current file.",
            }
        )
    if not files.changed():
        raise ProposalError(
            "no edit could be applied: " + cap(" | ".join(unapplied) or "empty edits", 1500)
        )
    extra: dict[str, Any] = {"repair_rounds": repair_used}
    if unapplied:
        extra["unapplied"] = len(unapplied)
    return summary, extra


def _malformed(problems: list[str]) -> str:
    detail = "\n".join(f"- {p}" for p in problems[:5]) or "- no SEARCH/REPLACE block was found"
    return (
        "Your reply could not be used:\n" + detail + "\nReply again with a SUMMARY line and "
        "SEARCH/REPLACE blocks in exactly this form:\n<<<<<<< SEARCH path\n...\n=======\n...\n"
        ">>>>>>> REPLACE"
    )


def apply_block(files: Workspace, path: str, search: str, replace: str) -> str | None:
    """Apply one block to the in-memory files; a diagnostic string if it cannot be applied."""
    rel = files.safe(path)
    if rel is None:
        return f"Block for `{path}`: rejected path (must be relative, inside the program)."
    content = files.read(rel)
    if not search.strip():
        if content is None or not content.strip():
            files.write(rel, replace)
            return None
        return (
            f"Block for `{rel}`: the SEARCH part is empty but the file exists; give the lines "
            "to replace."
        )
    if content is None:
        return f"Block for `{rel}`: no such file (use an empty SEARCH part to create it)."
    new = apply_search_replace(content, search, replace)
    if new is None:
        return (
            f"Block for `{rel}` did not match. Its SEARCH part was:\n{cap(search, 1500)}\n"
            + closest_lines(content, search)
        )
    files.write(rel, new)
    return None


def propose_whole_file(
    model: Model,
    messages: list[dict[str, str]],
    files: Workspace,
    report: dict[str, Any],
    settings: Settings,
) -> tuple[str, dict[str, Any]]:
    """Write the files the model rewrote into ``files``; the summary and extra meta info.

    Raises:
        ProposalError: No usable reply within the retries, or nothing changed.
    """
    retries = settings.retries
    while True:
        reply = model.ask(messages, "meta:propose")
        messages.append({"role": "assistant", "content": reply})
        sections, problems = parse_whole_file(reply)
        rejected = [p for p, _ in sections if files.safe(p) is None]
        valid = [(files.safe(p), c) for p, c in sections if files.safe(p) is not None]
        if valid:
            for rel, content in valid:
                assert rel is not None
                if files.read(rel) != content:
                    files.write(rel, content)
            extra: dict[str, Any] = {"rejected_paths": rejected} if rejected else {}
            if not files.changed():
                raise ProposalError("the rewritten files are identical to the current ones")
            return summary_line(reply), extra
        detail = problems + [
            f"rejected path `{p}` (must be relative, inside the program)" for p in rejected
        ]
        if retries <= 0:
            raise ProposalError(
                "malformed reply: " + ("; ".join(detail[:3]) or "no `=== FILE: path ===` section")
            )
        retries -= 1
        lines = "\n".join(f"- {d}" for d in detail[:5]) or "- no `=== FILE: path ===` section"
        messages.append(
            {
                "role": "user",
                "content": "Your reply could not be used:\n" + lines + "\nReply again with a "
                "SUMMARY line and full files as `=== FILE: path ===` ... `=== END FILE ===`.",
            }
        )
