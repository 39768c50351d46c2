"""Which input features the low-scoring train instances have in common (the ``focus`` operator).

Only inputs, scores and feedback of train instances are used: no labels, no task knowledge.
"""

from __future__ import annotations

import json
import math
from typing import Any

from meta_history import TIE_EPS
from meta_source import round_sig
from meta_space import as_float


def _flatten(inputs: Any) -> dict[str, Any]:
    """Scalar features of one instance's inputs: scalars by key, nested dicts one level deep
    (``a.b``), and a list by its length (``a``) and, if it holds numbers, ``a.mean``, ``a.min``
    and ``a.max`` (so a ``feature`` tag may name a list input)."""
    out: dict[str, Any] = {}
    if not isinstance(inputs, dict):
        if isinstance(inputs, str | int | float | bool):
            out["inputs"] = inputs
        elif isinstance(inputs, list | tuple):
            out.update(_list_features("inputs", inputs))
        return out
    for key, value in inputs.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                if isinstance(inner, str | int | float | bool) or inner is None:
                    out[f"{key}.{sub}"] = inner
        elif isinstance(value, list | tuple):
            out.update(_list_features(str(key), value))
        elif isinstance(value, str | int | float | bool) or value is None:
            out[str(key)] = value
    return out


def _list_features(key: str, values: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
    """A list input as features: its length, and the mean, min and max of its numbers."""
    out: dict[str, Any] = {key: len(values)}
    numbers = [as_float(v) for v in values]
    finite = [n for n in numbers if n is not None]
    if finite and len(finite) == len(values):
        out[f"{key}.mean"] = round_sig(sum(finite) / len(finite))
        out[f"{key}.min"] = min(finite)
        out[f"{key}.max"] = max(finite)
    return out


def feature_effects(report: dict[str, Any], span: float) -> tuple[list[dict[str, Any]], int]:
    """Rank input features by how differently they are distributed among low-scoring instances.

    Low-scoring instances are those scoring below the mean train score. Numeric features use the
    standardized mean difference ``|mean_low - mean_all| / std_all``; categorical and bool features
    use the standardized difference of the most over-represented category's indicator (and report
    its frequency ratio). A feature named in the feedback of low-scoring instances gets a bonus.

    Returns:
        The features sorted by decreasing effect, and the number of low-scoring instances.
    """
    evaluation = report.get("evaluation")
    results = evaluation.get("results") if isinstance(evaluation, dict) else None
    inputs = report.get("train_inputs")
    if not isinstance(results, list) or not isinstance(inputs, list):
        return [], 0
    by_id = {
        str(item.get("id")): _flatten(item.get("inputs"))
        for item in inputs
        if isinstance(item, dict) and "id" in item
    }
    rows: list[tuple[dict[str, Any], float, str]] = []
    for result in results:
        if not isinstance(result, dict):
            continue
        score = as_float(result.get("score"))
        features = by_id.get(str(result.get("id")))
        if score is None or features is None:
            continue
        rows.append((features, score, str(result.get("feedback") or "").lower()))
    if len(rows) < 4:
        return [], 0
    mean = sum(score for _, score, _ in rows) / len(rows)
    if max(s for _, s, _ in rows) - min(s for _, s, _ in rows) <= TIE_EPS * span:
        return [], 0
    low = [row for row in rows if row[1] < mean]
    if not low:
        return [], 0
    names = sorted({name for features, _, _ in rows for name in features})
    ranked: list[dict[str, Any]] = []
    for name in names:
        values = [features.get(name) for features, _, _ in rows]
        low_values = [features.get(name) for features, _, _ in low]
        effect, extra = _effect(values, low_values)
        mentioned = sum(1 for _, _, text in low if name.lower() in text) / len(low)
        effect += mentioned
        if effect > 0.0:
            ranked.append({"feature": name, "effect": round_sig(effect, 4), **extra})
    ranked.sort(key=lambda item: (-item["effect"], item["feature"]))
    return ranked, len(low)


def _effect(values: list[Any], low_values: list[Any]) -> tuple[float, dict[str, Any]]:
    """Effect size of one feature (see :func:`feature_effects`)."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(values):
        low_numbers = [float(v) for v in low_values if isinstance(v, int | float)]
        mean_all = sum(numbers) / len(numbers)
        var = sum((v - mean_all) ** 2 for v in numbers) / len(numbers)
        if var <= 0.0 or not low_numbers:
            return 0.0, {}
        mean_low = sum(low_numbers) / len(low_numbers)
        return abs(mean_low - mean_all) / math.sqrt(var), {"direction": mean_low - mean_all}
    best, extra = 0.0, {}
    categories = sorted({json.dumps(v, default=str) for v in values})
    for category in categories:
        p_all = sum(1 for v in values if json.dumps(v, default=str) == category) / len(values)
        hits = sum(1 for v in low_values if json.dumps(v, default=str) == category)
        p_low = hits / max(len(low_values), 1)
        if p_all <= 0.0 or p_all >= 1.0 or p_low <= p_all:
            continue
        effect = (p_low - p_all) / math.sqrt(p_all * (1.0 - p_all))
        if effect > best:
            best = effect
            extra = {"category": json.loads(category), "ratio": round_sig(p_low / p_all, 4)}
    return best, extra
