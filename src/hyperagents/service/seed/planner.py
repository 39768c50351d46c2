"""The seed planning agent: diagnose where live failures concentrate and plan an improvement.

A program file like the meta agent (a meta file: the meta level may rewrite it), run in the
sandbox by the service: ``plan(request)`` gets the failing and passing live examples in the
order they were served, oldest first (inputs, the output served, the label or feedback,
whether it failed: never a held-back one) and returns a plan:

``{"diagnosis": {...}, "actions": [...], "success_criteria": [...], "budget": {...},
"scope": {...}}`` (``scope`` optional)

Actions: ``{"kind": "harness_edit", "focus": [...]}``, ``{"kind": "more_data", "source":
"teacher" | "people" | "self", ...}``, ``{"kind": "weight_update"}`` (only for a program that
carries a model). A criterion: ``{"metric": "score", "split_or_slice": "val" | "train" |
"live_train" | "held_back", "op": ">=" | ">" | "<=" | "<", "value": number | "served",
"margin": number, "gate": bool}`` ("served": the served champion's value on the same slice;
the target is the value plus the optional margin; ``"gate": false``: information, reported
but not required). ``scope``: ``{"since": EXAMPLE_ID, "own_data": "use" | "stale"}``: the
improvement uses the live examples served from that one on (the held-back slice too), and
with ``stale`` trains and selects on them alone (the task's own train and val out of the run).

**Concept drift.** For each output group, the failures of its judged examples, in serving
order, are cut where their rate rises most (a two-proportion z statistic). A group the labels
mostly confirmed before the cut and mostly reject after it (a rise of ``flip`` from at most a
half, ``shift_z`` standard errors wide, ``flip_group`` examples on each side) *flipped*: the
same answers, new labels. When answers flipped and the served val (the task's own data) rates
the agent ``stale_gap`` of the range above the live labels since the flip do, and a held-back
live slice will check the candidate, the task's own labels are stale: the plan's scope starts
at the flip with ``own_data: stale``, its val criterion is information only, it gates on the
fresh held-back slice and live train, and it asks for ``drift_growth`` times the generations
offered (a changed rule to relearn).

This default needs no language model: failures are grouped by the declared input features
(else the inputs' top-level keys with short text, boolean or integer values), by the output
served and by the label, and a group whose failure rate is well above the overall rate is a
concentration.

When the request says a model is configured and ``use_llm`` is set, the model is shown the
diagnosis and the rule-based actions and asked for a JSON object ``{"summary": "...",
"actions": [...]}``: its summary and actions replace the rules' (the criteria and the budget
stay the rules'). The reply is parsed strictly: not one JSON object, an unknown key, an action
of an unknown kind or source, a request id that was not shown, a weight update for a program
without a model: the rule-based plan stands, and the diagnosis says why
(``diagnosis["llm"] = {"used": false, "reason": ...}``). A model that fails or is out of budget
gives the same fallback. Nothing the model says can fail the plan.
"""

from __future__ import annotations

import json
import math
from typing import Any

try:  # the sandbox's bridge to the run's language model
    import llm
except ImportError:  # pragma: no cover - outside the sandbox
    llm = None

PARAMS = {
    "use_llm": 1,
    "min_group": 2,  # a group needs this many examples to count as a concentration
    "lift": 1.5,  # ... and a failure rate this many times the overall one
    "max_groups": 8,  # concentrations named in the diagnosis
    "few_labels": 10,  # fewer labelled failures than this: ask for more data
    "gain": 0.05,  # the improvement on the live train slice the plan asks for
    "replan_growth": 1.5,  # each re-plan asks for this much more budget
    "flip_group": 5,  # examples an output group needs on each side of a flip
    "flip": 0.4,  # ... its failure rate rising this much (from at most a half) at the flip
    "shift_z": 3.0,  # ... this many standard errors wide
    "stale_gap": 0.1,  # the served val this far (of the range) above the live score since
    "drift_growth": 2.0,  # a concept drift's plan asks for this much more budget (a rule to
    # relearn, from a champion far from it)
}


def _value_text(value: Any) -> str | None:
    """A short categorical form of a value (None: not a category)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 40:
        return value.strip().lower()
    return None


def _features(examples: list[dict[str, Any]], declared: Any) -> list[str]:
    """The features to group by: the declared ones, else categorical top-level keys."""
    if isinstance(declared, list) and declared:
        return [str(name) for name in declared][:20]
    keys: dict[str, int] = {}
    for example in examples:
        inputs = example.get("inputs")
        if isinstance(inputs, dict):
            for key, value in inputs.items():
                if _value_text(value) is not None:
                    keys[str(key)] = keys.get(str(key), 0) + 1
    return sorted(k for k, n in keys.items() if n >= max(1, len(examples) // 2))[:20]


def _group_keys(example: dict[str, Any], features: list[str]) -> list[str]:
    """The groups an example belongs to (``feature=value``, ``output=...``, ``label=...``)."""
    groups = []
    inputs = example.get("inputs")
    for name in features:
        value = inputs.get(name) if isinstance(inputs, dict) else None
        text = _value_text(value)
        if text is not None:
            groups.append(f"{name}={text}")
    for key in ("output", "label"):
        if key in example:
            text = _value_text(example.get(key))
            if text is not None:
                groups.append(f"{key}={text}")
    return groups


def _concentrations(examples: list[dict[str, Any]], features: list[str]) -> list[dict[str, Any]]:
    """Groups whose failure rate is well above the overall one, most failures first."""
    failed_total = sum(1 for e in examples if e.get("failed"))
    overall = failed_total / len(examples) if examples else 0.0
    counts: dict[str, list[int]] = {}
    for example in examples:
        for key in _group_keys(example, features):
            entry = counts.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += 1 if example.get("failed") else 0
    found: list[dict[str, Any]] = []
    for key, (n, failed) in counts.items():
        rate = failed / n
        if n >= PARAMS["min_group"] and failed and rate >= min(1.0, PARAMS["lift"] * overall):
            found.append({"group": key, "examples": n, "failures": failed, "rate": round(rate, 3)})
    found.sort(key=lambda g: (-int(g["failures"]), -float(g["rate"]), str(g["group"])))
    return found[: int(PARAMS["max_groups"])]


def _summary(diagnosis: dict[str, Any]) -> str:
    """One line about the diagnosis."""
    top = diagnosis["concentrations"][:3]
    where = ", ".join(f"{g['group']} ({g['failures']}/{g['examples']})" for g in top)
    text = f"{diagnosis['failures']} of {diagnosis['examples']} live examples failed"
    return text + (f"; failures concentrate in {where}" if where else "; no concentration found")


def _rise(fails: list[int], low: int) -> tuple[float, int, float, float] | None:
    """Where a 0/1 failure sequence's rate rises most: ``(z, cut, before, after)`` for the cut
    with the widest two-proportion z statistic, ``low`` values at least on each side (None:
    too short, or no rise)."""
    n, total, seen = len(fails), sum(fails), 0
    best: tuple[float, int, float, float] | None = None
    for cut in range(1, n):
        seen += fails[cut - 1]
        if cut < low or n - cut < low:
            continue
        rate = total / n
        spread = math.sqrt(rate * (1 - rate) * (1 / cut + 1 / (n - cut)))
        before, after = seen / cut, (total - seen) / (n - cut)
        z = (after - before) / spread if spread > 0 else 0.0
        if z > 0 and (best is None or z > best[0]):
            best = (z, cut, before, after)
    return best


def _later_label(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """The label most given to ``examples`` and its share (empty: no categorical label)."""
    counts: dict[str, int] = {}
    for example in examples:
        label = _value_text(example.get("label"))
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        return {}
    label, count = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return {"label": label, "label_share": round(count / len(examples), 3)}


def _flipped(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Output groups whose answers the labels mostly confirmed up to a point of the stream
    and mostly reject from it on (a rise of ``flip`` in the failure rate, ``shift_z``
    standard errors wide, ``flip_group`` examples at least on each side), most significant
    first, each with where it flipped (``index`` in ``examples``, ``since`` its id)."""
    where: dict[str, list[int]] = {}
    for k, example in enumerate(examples):
        output = _value_text(example.get("output"))
        if "failed" in example and output is not None:
            where.setdefault(output, []).append(k)
    found: list[dict[str, Any]] = []
    for output, places in sorted(where.items()):
        fails = [1 if examples[k].get("failed") else 0 for k in places]
        rise = _rise(fails, int(PARAMS["flip_group"]))
        if rise is None:
            continue
        z, cut, before, after = rise
        if z < float(PARAMS["shift_z"]) or before > 0.5 or after - before < float(PARAMS["flip"]):
            continue
        later = [examples[k] for k in places[cut:]]
        found.append(
            {
                "group": f"output={output}",
                "index": places[cut],
                "since": examples[places[cut]].get("id"),
                "z": round(z, 2),
                "before": {"examples": cut, "failure_rate": round(before, 3)},
                "after": {"examples": len(later), "failure_rate": round(after, 3)}
                | _later_label(later),
            }
        )
    found.sort(key=lambda g: -g["z"])
    return found[: int(PARAMS["max_groups"])]


def _rate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """How many of ``examples`` were judged, their failure rate and mean score."""
    judged = [e for e in examples if "failed" in e]
    scores = [e["score"] for e in judged if isinstance(e.get("score"), int | float)]
    rate = sum(1 for e in judged if e.get("failed")) / len(judged) if judged else 0.0
    found: dict[str, Any] = {"examples": len(judged), "failure_rate": round(rate, 3)}
    if scores:
        found["score"] = round(sum(scores) / len(scores), 4)
    return found


def _drift(request: dict[str, Any], examples: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Answers that flipped from right to wrong at a point of the stream (None: none), and
    whether that is concept drift: the served val (the task's own data) still rates the agent
    ``stale_gap`` of the range above the live labels since that point, so the old labels
    are stale (only with a held-back live slice to gate on instead: without one, val stays
    the gate and the drift is reported as a flip)."""
    flipped = _flipped(examples)
    if not flipped:
        return None
    at = int(flipped[0]["index"])
    for group in flipped:
        del group["index"]
    before, after = _rate(examples[:at]), _rate(examples[at:])
    val = (request.get("served") or {}).get("val")
    low, high = (request.get("task") or {}).get("score_range", [0.0, 1.0])
    stale = False
    if isinstance(val, int | float) and "score" in after and request.get("held_back"):
        stale = float(val) - after["score"] >= float(PARAMS["stale_gap"]) * (high - low)
    return {
        "kind": "concept" if stale else "flip",
        "since": flipped[0]["since"],
        "before": before,
        "after": after,
        "flipped": flipped,
    }


def _drift_text(drift: dict[str, Any], request: dict[str, Any]) -> str:
    """One sentence about answers that flipped (and whether the task's own data are stale)."""
    flips = ", ".join(
        f"{g['group']} ({g['before']['failure_rate']:.0%} -> {g['after']['failure_rate']:.0%}"
        + (f", now labelled {g['after']['label']}" if "label" in g["after"] else "")
        + ")"
        for g in drift["flipped"][:3]
    )
    text = f"since {drift['since']} the labels reject answers they confirmed before: {flips}"
    if drift["kind"] != "concept":
        return text
    val = (request.get("served") or {}).get("val")
    return (
        f"{text}; concept drift: the task's own train and val are stale (they rate the served "
        f"agent {val:.3g}, the live labels since then {drift['after']['score']:.3g}): train "
        "and gate on the live data since then"
    )


_KINDS = ("harness_edit", "more_data", "weight_update")
_SOURCES = ("teacher", "people", "self")


def _prompt(request: dict[str, Any], diagnosis: dict[str, Any], actions: list[Any]) -> str:
    """What the model is asked: the diagnosis, the rules' actions, the format."""
    unlabelled = [e["id"] for e in request.get("examples", []) if "label" not in e][:50]
    shown = {k: v for k, v in diagnosis.items() if k != "summary"}
    task = request.get("task") or {}
    return (
        f"You plan the improvement of a deployed agent for the task {task.get('name')!r}: "
        f"{task.get('description')}\n"
        f"Diagnosis of its live failures: {json.dumps(shown, sort_keys=True)}\n"
        f"Served scores: {json.dumps(request.get('served'), sort_keys=True)}\n"
        f"Unlabelled live requests: {json.dumps(unlabelled)}\n"
        f"A rule-based plan would take these actions: {json.dumps(actions)}\n"
        'Reply with one JSON object and nothing else: {"summary": "one sentence on where '
        'the agent fails", "actions": [...]}, each action {"kind": "harness_edit", "focus": '
        '[group, ...]}, {"kind": "more_data", "source": "teacher" | "people" | "self", '
        '"request_ids": [...], "focus": [...]} or {"kind": "weight_update"} (only when the '
        f"program carries a model: {bool(request.get('has_model'))})."
    )


def _reply_json(reply: str) -> Any:
    """The reply's JSON object (a ```json fence around it allowed).

    Raises:
        ValueError: Not one JSON value.
    """
    text = reply.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3].removeprefix("json").strip()
    return json.loads(text)


def _checked_action(raw: Any, request: dict[str, Any], shown: set[str]) -> dict[str, Any]:
    """One of the model's actions, checked.

    Raises:
        ValueError: Out of the format.
    """
    if not isinstance(raw, dict) or raw.get("kind") not in _KINDS:
        raise ValueError(f"an action of an unknown kind: {str(raw)[:100]}")
    if not set(raw) <= {"kind", "source", "request_ids", "focus"}:
        raise ValueError(f"unknown keys in an action: {sorted(set(raw))}")
    if raw["kind"] == "weight_update" and not request.get("has_model"):
        raise ValueError("a weight update for a program without a model")
    action: dict[str, Any] = {"kind": raw["kind"]}
    focus = raw.get("focus", [])
    if not isinstance(focus, list) or not all(isinstance(f, str) for f in focus):
        raise ValueError("focus must be a list of strings")
    if raw["kind"] != "weight_update":
        action["focus"] = focus[:10]
    if raw["kind"] == "more_data":
        ids = raw.get("request_ids", [])
        if raw.get("source") not in _SOURCES:
            raise ValueError(f"more data from an unknown source: {str(raw.get('source'))[:50]}")
        if not isinstance(ids, list) or not all(isinstance(i, str) and i in shown for i in ids):
            raise ValueError("request_ids must be ids of the examples shown")
        action.update(source=raw["source"], request_ids=ids[:100])
    return action


def _model_plan(
    request: dict[str, Any], diagnosis: dict[str, Any], actions: list[Any]
) -> tuple[str, list[dict[str, Any]]]:
    """The model's summary and actions.

    Raises:
        ValueError: The model failed, or its reply is out of the format.
    """
    assert llm is not None
    try:
        reply = llm.complete(_prompt(request, diagnosis, actions), max_tokens=800, purpose="plan")
    except Exception as exc:  # no model, a spent budget, a failed call
        raise ValueError(f"the model failed: {str(exc)[:200]}") from None
    try:
        data = _reply_json(str(reply))
    except ValueError:
        raise ValueError("the reply is not one JSON object") from None
    if not isinstance(data, dict) or set(data) != {"summary", "actions"}:
        raise ValueError("the reply must be an object with exactly summary and actions")
    summary, raw_actions = data["summary"], data["actions"]
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError("the summary must be a non-empty string")
    if not isinstance(raw_actions, list) or not raw_actions:
        raise ValueError("actions must be a non-empty list")
    shown = {str(e.get("id")) for e in request.get("examples", [])}
    return summary.strip()[:300], [_checked_action(a, request, shown) for a in raw_actions[:16]]


def _actions(request: dict[str, Any], diagnosis: dict[str, Any]) -> list[dict[str, Any]]:
    """What to do: a harness edit on the flipped groups of a concept drift and the
    concentrations, data where labels are few, and a weight update when the program carries
    a model."""
    drift = diagnosis.get("drift") or {}
    concept = drift.get("kind") == "concept"
    flipped = [g["group"] for g in drift.get("flipped", [])] if concept else []
    focus = list(dict.fromkeys(flipped + [g["group"] for g in diagnosis["concentrations"]]))[:3]
    actions: list[dict[str, Any]] = [{"kind": "harness_edit", "focus": focus}]
    unlabelled = [
        e["id"] for e in request.get("examples", []) if e.get("failed") and "label" not in e
    ]
    if unlabelled:
        actions.append({"kind": "more_data", "source": "people", "request_ids": unlabelled[:50]})
    if diagnosis["labelled_failures"] < PARAMS["few_labels"]:
        source = "teacher" if request.get("llm") else "self"
        actions.append({"kind": "more_data", "source": source, "focus": focus})
    if request.get("has_model"):
        actions.append({"kind": "weight_update"})
    return actions


def _criteria(request: dict[str, Any], *, stale: bool = False) -> list[dict[str, Any]]:
    """Hold val, gain on the live failures, and hold the held-back slice when there is one;
    with stale own data (concept drift), val is information, not a gate."""
    served = request.get("served") or {}
    val = {"metric": "score", "split_or_slice": "val", "op": ">=", "value": "served"}
    criteria: list[dict[str, Any]] = [{**val, "gate": False} if stale else val]
    live = served.get("live_train")
    if isinstance(live, int | float):
        high = float((request.get("task") or {}).get("score_range", [0.0, 1.0])[1])
        gain = min(float(PARAMS["gain"]), max(0.0, high - float(live)))
        criteria.append(
            {
                "metric": "score",
                "split_or_slice": "live_train",
                "op": ">=",
                "value": "served",
                "margin": round(gain, 6),
            }
        )
    if request.get("held_back"):
        criteria.append(
            {"metric": "score", "split_or_slice": "held_back", "op": ">=", "value": "served"}
        )
    return criteria


def _budget(request: dict[str, Any], *, concept: bool = False) -> dict[str, Any]:
    """The budget: the one offered, grown on each re-plan and for a concept drift."""
    offered = request.get("budget") or {}
    generations = int(offered.get("generations") or 4)
    attempt = int(request.get("attempt") or 0)
    grown = generations * float(PARAMS["replan_growth"]) ** attempt
    grown *= float(PARAMS["drift_growth"]) if concept else 1.0
    return {"generations": max(1, round(grown)), "max_seconds": offered.get("max_seconds")}


def plan(request: dict[str, Any]) -> dict[str, Any]:
    """A plan for the live failures in ``request`` (see the module docstring)."""
    examples = [e for e in request.get("examples", []) if isinstance(e, dict)]
    features = _features(examples, request.get("features"))
    failures = [e for e in examples if e.get("failed")]
    diagnosis: dict[str, Any] = {
        "examples": len(examples),
        "failures": len(failures),
        "labelled_failures": sum(1 for e in failures if "label" in e),
        "failure_rate": round(len(failures) / len(examples), 3) if examples else 0.0,
        "features": features,
        "concentrations": _concentrations(examples, features),
    }
    drift = _drift(request, examples)
    if drift is not None:
        diagnosis["drift"] = drift
    if request.get("failed_criteria"):
        diagnosis["unmet_before"] = request["failed_criteria"][:10]
    diagnosis["summary"] = _summary(diagnosis)
    if drift is not None:
        diagnosis["summary"] += "; " + _drift_text(drift, request)
    actions = _actions(request, diagnosis)
    if PARAMS["use_llm"] and request.get("llm") and llm is not None:
        try:
            diagnosis["summary"], actions = _model_plan(request, diagnosis, actions)
            diagnosis["llm"] = {"used": True}
        except ValueError as exc:  # the rule-based plan stands
            diagnosis["llm"] = {"used": False, "reason": str(exc)[:300]}
    concept = drift if drift is not None and drift["kind"] == "concept" else None
    found: dict[str, Any] = {
        "diagnosis": diagnosis,
        "actions": actions,
        "success_criteria": _criteria(request, stale=concept is not None),
        "budget": _budget(request, concept=concept is not None),
    }
    if concept is not None:  # train and select on the fresh live data; old labels inform
        found["scope"] = {"since": concept["since"], "own_data": "stale"}
    return found
