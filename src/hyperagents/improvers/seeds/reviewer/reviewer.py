"""The default reviewer: reads a run's whole history after a child's benchmark and says what
went wrong, how badly, what to do next, and the pattern behind it.

The engine runs :func:`review` in the sandbox after each child's evaluation, in a copy of the
child's program (a meta file: the meta level may edit it like any other). ``history`` holds:

* ``task``: name, description, score range;
* ``variant``: the child reviewed: its generation, parent, state, reason, scores, the change
  that made it (files with lines added and removed, the meta agent's operator and summary), its
  train instances that did not reach the top score (``failed``) and their feedback;
* ``history``: every earlier variant the run had settled, oldest first, in the same form;
* ``reviews``: every earlier review, oldest first (``generation`` and the review);
* ``llm``: whether the run has a language model (then ``llm.complete`` answers).

It returns ``{"issue_type", "severity", "fix_suggestion", "confidence", "pattern_detected"}``
(and ``source``: ``rules`` or ``llm``). Offline (the default) the diagnosis comes from rules over
the history: a broken child, a regression after a kind of edit that regressed before, the same
instances failing generation after generation, a plateau of the best score, an issue that
earlier reviews keep raising. With a model, the model is asked for the review, with the rules'
diagnosis as evidence; a reply that is not a valid review falls back to the rules.

Standard library only; deterministic given ``history`` (the model's replies aside).
"""

from __future__ import annotations

import json
from typing import Any

SEVERITIES = ("none", "low", "medium", "high", "critical")
KEYS = ("issue_type", "severity", "fix_suggestion", "confidence", "pattern_detected")
#: Generations without a new best score that count as a plateau.
PLATEAU = 4
#: Earlier variants an instance must fail in (of the last ``WINDOW``) to count as persistent.
PERSISTENT = 3
WINDOW = 5


def review(workspace: str, history: dict[str, Any]) -> dict[str, Any]:
    """Review the child ``history["variant"]`` against the run's history (see the module)."""
    history = history if isinstance(history, dict) else {}
    found = diagnose(history)
    if history.get("llm"):
        try:
            return _ask_model(history, found)
        except Exception as exc:  # the model is optional: the rules still answer
            found["source"] = f"rules (model failed: {type(exc).__name__}: {str(exc)[:120]})"
    return found


def _main(scores: Any) -> float | None:
    """The variant's main score: val, else train, else the train subset."""
    if not isinstance(scores, dict):
        return None
    for stage in ("val", "train", "train_subset"):
        value = scores.get(stage)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _kind(entry: dict[str, Any]) -> str:
    """The kind of edit that made a variant: its operator, else the files it changed."""
    change = entry.get("change") if isinstance(entry.get("change"), dict) else {}
    assert isinstance(change, dict)
    operator = change.get("operator")
    if isinstance(operator, str) and operator:
        return operator
    files = change.get("files")
    names = sorted(files)[:3] if isinstance(files, dict) else []
    return "edit of " + (", ".join(names) or "nothing")


def _regressed(entry: dict[str, Any], by_generation: dict[Any, dict[str, Any]]) -> float | None:
    """How far a variant fell below its parent (None: it did not, or it is not known)."""
    parent = by_generation.get(entry.get("parent"))
    own, base = _main(entry.get("scores")), _main(parent.get("scores")) if parent else None
    if own is None or base is None or own >= base:
        return None
    return base - own


def diagnose(history: dict[str, Any]) -> dict[str, Any]:
    """The rules' review of ``history["variant"]`` (see the module docstring)."""
    child = history.get("variant") if isinstance(history.get("variant"), dict) else {}
    assert isinstance(child, dict)
    earlier = [e for e in history.get("history") or [] if isinstance(e, dict)]
    reviews = [r for r in history.get("reviews") or [] if isinstance(r, dict)]
    task = history.get("task") if isinstance(history.get("task"), dict) else {}
    assert isinstance(task, dict)
    low, high = (task.get("score_range") or [0.0, 1.0])[:2]
    span = float(high) - float(low) or 1.0
    by_generation = {e.get("generation"): e for e in [*earlier, child]}
    patterns: list[str] = []
    issue, severity, fix, evidence = "none", "none", "keep going: the change did no harm", 0

    state = str(child.get("state", ""))
    if state in ("failed", "invalid"):
        recent = [e for e in earlier[-WINDOW:] if e.get("state") in ("failed", "invalid")]
        issue, severity, evidence = "broken_change", "high", 1 + len(recent)
        fix = (
            f"the change broke the program ({str(child.get('reason', ''))[:200]}); make a "
            "smaller edit that keeps the entry points working"
        )
        if len(recent) >= 2:
            severity = "critical"
            patterns.append(f"{len(recent) + 1} of the last {WINDOW + 1} children broke")
    drop = _regressed(child, by_generation)
    if drop is not None and issue == "none":
        kind = _kind(child)
        before = [e for e in earlier if _kind(e) == kind and _regressed(e, by_generation)]
        share = drop / span
        severity = "high" if share > 0.1 else ("medium" if share > 0.03 else "low")
        issue, evidence = "regression", 1 + len(before)
        fix = (
            f"the {kind} edit lowered the score by {drop:.4g}; undo its direction or change "
            "another part of the program"
        )
        if len(before) >= 1:
            patterns.append(f"regressions after {kind} edits ({len(before) + 1} times)")
    persistent = _persistent_failures(child, earlier)
    if persistent:
        shown = ", ".join(persistent[:5])
        patterns.append(f"instances {shown} fail in most recent variants")
        if issue == "none":
            issue, severity, evidence = "persistent_failures", "medium", len(persistent)
            fix = (
                f"the same instances keep failing ({shown}): read their feedback and handle "
                "what they have in common"
            )
    flat = _plateau(earlier, child)
    if flat >= PLATEAU:
        patterns.append(f"no new best score for {flat} generations")
        if issue in ("none", "persistent_failures"):
            issue, severity = "plateau", "medium" if flat < 2 * PLATEAU else "high"
            evidence += flat
            fix = "small edits stopped paying off: try a bolder or structural change"
    repeated = [r for r in reviews[-3:] if r.get("issue_type") == issue and issue != "none"]
    if len(repeated) >= 2:
        patterns.append(f"{issue} raised in {len(repeated) + 1} reviews in a row")
        severity = SEVERITIES[min(len(SEVERITIES) - 1, SEVERITIES.index(severity) + 1)]
    if issue == "none" and (own := _main(child.get("scores"))) is not None:
        fix = f"the change helped or did no harm (score {own:.4g}): build on it"
    return {
        "issue_type": issue,
        "severity": severity,
        "fix_suggestion": fix,
        "confidence": round(min(0.95, 0.5 + 0.1 * evidence), 2),
        "pattern_detected": "; ".join(patterns) or None,
        "source": "rules",
    }


def _persistent_failures(child: dict[str, Any], earlier: list[dict[str, Any]]) -> list[str]:
    """The child's failed instances that also failed in at least ``PERSISTENT`` of the last
    ``WINDOW`` earlier variants that were evaluated."""
    failed = [str(i) for i in child.get("failed") or []]
    window = [e for e in earlier if isinstance(e.get("failed"), list)][-WINDOW:]
    counts = {i: sum(1 for e in window if i in {str(x) for x in e["failed"]}) for i in failed}
    return sorted(i for i, n in counts.items() if n >= PERSISTENT)


def _plateau(earlier: list[dict[str, Any]], child: dict[str, Any]) -> int:
    """Generations since the best main score last rose (the child included)."""
    best: float | None = None
    since = 0
    for entry in [*earlier, child]:
        value = _main(entry.get("scores")) if entry.get("state") == "complete" else None
        if value is not None and (best is None or value > best + 1e-12):
            best, since = value, 0
        else:
            since += 1
    return since


def _ask_model(history: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """The model's review, with the rules' diagnosis as evidence.

    Raises:
        ValueError: The reply holds no valid review.
        llm.LLMError: The model call failed.
    """
    import llm

    earlier = history.get("history") or []
    lines = [
        f"- generation {e.get('generation')} (parent {e.get('parent')}, {e.get('state')}): "
        f"scores {json.dumps(e.get('scores'), sort_keys=True)}; edit {_kind(e)}"
        for e in earlier[-40:]
        if isinstance(e, dict)
    ]
    reviews = [json.dumps(r, sort_keys=True)[:300] for r in (history.get("reviews") or [])[-10:]]
    child = history.get("variant") or {}
    prompt = (
        "You review a self-improving program after its latest change was benchmarked.\n"
        f"Task: {json.dumps(history.get('task'), sort_keys=True)[:1500]}\n"
        "Earlier variants:\n"
        + ("\n".join(lines) or "none")
        + "\nEarlier reviews:\n"
        + ("\n".join(reviews) or "none")
        + f"\nThe variant reviewed:\n{json.dumps(child, sort_keys=True)[:4000]}\n"
        f"Rule-based diagnosis: {json.dumps(found, sort_keys=True)}\n"
        'Answer with ONE JSON object only: {"issue_type": "...", "severity": '
        '"none|low|medium|high|critical", "fix_suggestion": "...", "confidence": 0.0-1.0, '
        '"pattern_detected": "..." or null}'
    )
    reply = str(llm.complete(prompt, temperature=0.0, max_tokens=600, purpose="review"))
    start = reply.find("{")
    value, _ = json.JSONDecoder().raw_decode(reply[start:]) if start >= 0 else (None, 0)
    if not isinstance(value, dict) or any(key not in value for key in KEYS):
        raise ValueError("the reply holds no review object")
    if value.get("severity") not in SEVERITIES:
        raise ValueError(f"unknown severity {value.get('severity')!r}")
    return {**{key: value[key] for key in KEYS}, "source": "llm"}
