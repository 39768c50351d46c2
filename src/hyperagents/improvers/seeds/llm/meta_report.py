"""What the LLM meta agent's prompt shows of the report: the evaluation and the archive.

Scores of the ``test`` split never reach the prompt (only ``train``, ``val`` and
``train_subset`` are shown), and neither does anything in a result but its id, score, output
and feedback.
"""

from __future__ import annotations

import json
from typing import Any

from meta_settings import Settings
from meta_text import cap, dump

#: Evaluation stages whose scores are shown, in order of preference for "the" score.
SHOWN_STAGES = ("train", "val", "train_subset")


def evaluation_section(report: dict[str, Any], settings: Settings) -> str:
    """The parent's scores and its lowest-scoring train instances with their feedback."""
    evaluation = report.get("evaluation") if isinstance(report.get("evaluation"), dict) else {}
    assert isinstance(evaluation, dict)
    parent = report.get("parent") if isinstance(report.get("parent"), dict) else {}
    assert isinstance(parent, dict)
    lines = ["## Evaluation of the current program"]
    lines.append(f"Scores: {shown_scores(parent.get('scores'))}")
    if evaluation.get("score") is not None:
        lines.append(f"Stage {evaluation.get('stage')}: mean score {evaluation.get('score')}")
    results = [r for r in evaluation.get("results") or [] if isinstance(r, dict)]
    inputs: dict[str, Any] = {}
    for item in report.get("train_inputs") or []:
        if isinstance(item, dict) and "id" in item:
            inputs[str(item["id"])] = item.get("inputs")

    def key(r: dict[str, Any]) -> tuple[float, str]:
        score = r.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            return (float(score), str(r.get("id")))
        return (float("-inf"), str(r.get("id")))

    worst = sorted(results, key=key)[: settings.max_instances]
    if worst:
        lines.append(f"Lowest-scoring instances ({len(worst)} of {len(results)}):")
    limit = settings.max_field_chars
    for r in worst:
        lines.append(f"- instance {r.get('id')}: score {r.get('score')}")
        rid = str(r.get("id"))
        if rid in inputs:
            lines.append(f"  inputs: {cap(dump(inputs[rid]), limit)}")
        lines.append(f"  output: {cap(dump(r.get('output')), limit)}")
        lines.append(f"  feedback: {cap(str(r.get('feedback') or ''), limit)}")
    if not results:
        lines.append("No per-instance results are available.")
    return "\n".join(lines)


def archive_section(report: dict[str, Any], settings: Settings) -> str:
    """The most recent variants: scores, operator, whether each beat its parent, and why."""
    archive = [v for v in report.get("archive") or [] if isinstance(v, dict)]
    lines = ["## Archive (what was tried so far)"]
    if not archive:
        lines.append("Nothing yet: this is the first change.")
        return "\n".join(lines)
    by_id = {v.get("variant_id"): v for v in archive}
    for v in archive[-settings.max_archive :]:
        info = v.get("meta_info") if isinstance(v.get("meta_info"), dict) else {}
        assert isinstance(info, dict)
        own = main_score(v.get("scores"))
        parent = by_id.get(v.get("parent_id"))
        base = main_score(parent.get("scores")) if parent else None
        if own is None or base is None:
            verdict = "unknown"
        else:
            verdict = "yes" if own > base else ("tie" if own == base else "no")
        what = info.get("summary") or info.get("reason") or info.get("error") or ""
        line = (
            f"- variant {v.get('variant_id')} (generation {v.get('generation')}, parent "
            f"{v.get('parent_id')}, {v.get('state')}): scores {shown_scores(v.get('scores'))}; "
            f"operator {info.get('operator', '?')}; improved on parent: {verdict}"
        )
        if what:
            line += f"; {cap(str(what), 200)}"
        lines.append(line)
    return "\n".join(lines)


def shown_scores(scores: Any) -> str:
    """The scores of the shown stages, as JSON (``none`` if there are none)."""
    if not isinstance(scores, dict):
        return "none"
    shown = {k: v for k, v in scores.items() if k in SHOWN_STAGES}
    return json.dumps(shown, sort_keys=True, default=str) if shown else "none"


def main_score(scores: Any) -> float | None:
    """The score of the first shown stage that has one."""
    if not isinstance(scores, dict):
        return None
    for stage in SHOWN_STAGES:
        value = scores.get(stage)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def reviews_section(report: dict[str, Any]) -> str:
    """The latest reviews of the run's reviewer (``report["reviews"]``, runs with a reviewer:
    it read the whole history after each benchmark); empty when there are none."""
    reviews = [r for r in report.get("reviews") or [] if isinstance(r, dict)]
    if not reviews:
        return ""
    lines = ["## Latest reviews (after each child's benchmark, from the whole history)"]
    for r in reviews:
        lines.append(
            f"- generation {r.get('generation')}: {r.get('severity')} {r.get('issue_type')} "
            f"(confidence {r.get('confidence')}): {cap(str(r.get('fix_suggestion')), 500)}"
            + (
                f"; pattern: {cap(str(r['pattern_detected']), 300)}"
                if r.get("pattern_detected")
                else ""
            )
        )
    lines.append("Act on the latest review first; a pattern says what keeps going wrong.")
    return "\n".join(lines)
