"""The operators that edit the task agent's parameters, and how one is chosen for an edit.

Operators (generic, feedback-driven; no labels, no task knowledge): ``perturb`` (Gaussian
steps), ``focus`` (perturb the parameters tagged with the input feature most over-represented
among low-scoring train instances, see meta_features.py), ``follow`` (re-apply a recent
improving edit's direction: pattern search), ``crossover`` (take values from another good
archive member) and ``reset`` (resample one parameter uniformly).

Which parameters an operator changes is also learned, from the archive: a parameter's chance
of being picked grows with the improvements it took part in and with the edits in which it had
a measurable effect, and shrinks with the edits in which changing it changed nothing (a tie).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

from meta_features import feature_effects
from meta_history import FAILED_STATES, PRUNED_STATES, History, sort_key
from meta_source import round_sig
from meta_space import Dim

#: How many candidate edits are tried before giving up on producing a different child.
_ATTEMPTS = 12


# Plain classes rather than dataclasses: every sandboxed process imports this module afresh,
# and creating a dataclass costs about half a millisecond of CPU.
class Context:
    """Everything an operator needs.

    Attributes:
        rng: The only source of randomness.
        space: The declared parameters.
        current: The parent's parameter values, coerced into the space.
        base: The parent's ``PARAMS`` (undeclared keys too) with ``current`` over them.
        mutable: Names of the parameters that can change.
        sigma: The step size of this edit (in units of each parameter's range).
        n_mutations: Expected number of parameters changed.
        report: The parent's evaluation report.
        history: The archive's history of edits.
        credit: Per-parameter sampling weight learned from that history.
    """

    def __init__(
        self,
        rng: random.Random,
        space: dict[str, Dim],
        current: dict[str, Any],
        base: dict[str, Any],
        mutable: list[str],
        sigma: float,
        n_mutations: float,
        report: dict[str, Any],
        history: History,
    ) -> None:
        self.rng = rng
        self.space = space
        self.current = current
        self.base = base
        self.mutable = mutable
        self.sigma = sigma
        self.n_mutations = n_mutations
        self.report = report
        self.history = history
        self.credit: dict[str, float] = history.param_credit()

    def count(self) -> int:
        """How many parameters to change: ``n_mutations`` rounded stochastically, at least 1."""
        whole = math.floor(self.n_mutations)
        k = whole + (1 if self.rng.random() < self.n_mutations - whole else 0)
        return max(1, min(k, len(self.mutable)))


Result = tuple[dict[str, Any], dict[str, Any]] | None


def _step(ctx: Context, name: str, scale: float = 1.0) -> Any:
    """Return a Gaussian-perturbed value of parameter ``name`` (a flip/switch for bool/choice)."""
    dim, value = ctx.space[name], ctx.current[name]
    if dim.kind == "bool":
        return not value
    if dim.kind == "choice":
        others = [c for c in dim.choices if c != value]
        return ctx.rng.choice(others) if others else value
    unit = dim.to_unit(value)
    delta = ctx.rng.gauss(0.0, ctx.sigma * scale)
    new = dim.from_unit(_reflect(unit + delta))
    if dim.kind == "int" and new == value:  # too small a step for an int: move by one
        lo, hi = math.ceil(dim.low), math.floor(dim.high)
        new = value + (1 if delta >= 0 else -1)
        if new < lo or new > hi:
            new = value - (1 if delta >= 0 else -1)
    return dim.clip(new)


def _reflect(unit: float) -> float:
    """Fold a unit coordinate back into ``[0, 1]`` by reflection at the bounds."""
    unit = unit % 2.0
    return 2.0 - unit if unit > 1.0 else unit


def _pick(ctx: Context, names: list[str], k: int) -> list[str]:
    """Sample ``k`` distinct names, weighted by the parameters' credit (see ``History``)."""
    pool = list(names)
    picked: list[str] = []
    while pool and len(picked) < k:
        weights = [ctx.credit.get(name, 1.0) for name in pool]
        choice = ctx.rng.choices(pool, weights=weights)[0]
        pool.remove(choice)
        picked.append(choice)
    return picked


def _op_perturb(ctx: Context) -> Result:
    """Gaussian steps on ``n_mutations`` parameters, picked by credit."""
    names = _pick(ctx, ctx.mutable, ctx.count())
    new = dict(ctx.current)
    for name in names:
        new[name] = _step(ctx, name)
    return new, {"targets": sorted(names)}


def _op_reset(ctx: Context) -> Result:
    """Resample one parameter uniformly over its space (a different value)."""
    name = ctx.rng.choice(ctx.mutable)
    dim, value = ctx.space[name], ctx.current[name]
    new = dict(ctx.current)
    if dim.kind == "bool":
        new[name] = not value
    elif dim.kind == "choice":
        new[name] = ctx.rng.choice([c for c in dim.choices if c != value])
    elif dim.kind == "int":
        values = [v for v in range(math.ceil(dim.low), math.floor(dim.high) + 1) if v != value]
        if dim.log:
            new[name] = dim.from_unit(ctx.rng.random())
            if new[name] == value:
                new[name] = ctx.rng.choice(values)
        else:
            new[name] = ctx.rng.choice(values)
    else:
        new[name] = dim.from_unit(ctx.rng.random())
    return new, {"targets": [name]}


def _op_focus(ctx: Context) -> Result:
    """Perturb the parameters tagged with a feature over-represented among failures."""
    tagged: dict[str, list[str]] = {}
    for name in ctx.mutable:
        for feature in ctx.space[name].features:
            tagged.setdefault(feature, []).append(name)
    if not tagged:
        return None
    ranked, n_low = feature_effects(ctx.report, ctx.history.span)
    candidates = [item for item in ranked if item["feature"] in tagged][:3]
    if not candidates:
        return None
    total = sum(float(item["effect"]) for item in candidates)
    pick = ctx.rng.random() * total
    chosen = candidates[-1]
    for item in candidates:
        pick -= float(item["effect"])
        if pick <= 0.0:
            chosen = item
            break
    names = tagged[chosen["feature"]]
    targets = _pick(ctx, names, ctx.count())
    new = dict(ctx.current)
    for name in targets:
        new[name] = _step(ctx, name)
    detail = {"feature": chosen, "low_scoring": n_low, "targets": sorted(targets)}
    detail["ranking"] = [item["feature"] for item in ranked[:5]]
    return new, detail


def _op_follow(ctx: Context) -> Result:
    """Re-apply the direction of a recent improving edit (pattern search)."""
    edits = ctx.history.improving_edits()
    if not edits:
        return None
    now = ctx.history.generation()
    lineage = ctx.history.lineage()
    weighted = []
    for entry, delta in edits:
        generation = entry.get("generation")
        age = max(now - generation, 0) if isinstance(generation, int) else 0
        weight = delta * (0.9**age) * (3.0 if entry.get("variant_id") in lineage else 1.0)
        weighted.append((entry, weight))
    order = list(range(len(weighted)))
    ctx.rng.shuffle(order)
    alpha = ctx.rng.uniform(0.5, 1.5)
    while order:
        total = sum(weighted[i][1] for i in order)
        pick, chosen = ctx.rng.random() * total, order[-1]
        for i in order:
            pick -= weighted[i][1]
            if pick <= 0.0:
                chosen = i
                break
        order.remove(chosen)
        entry = weighted[chosen][0]
        new = dict(ctx.current)
        changes = History.meta_info(entry).get("changes")
        for name, pair in changes.items() if isinstance(changes, dict) else ():
            if name not in ctx.space or not isinstance(pair, list | tuple) or len(pair) != 2:
                continue
            dim = ctx.space[name]
            if dim.numeric:
                direction = dim.to_unit(pair[1]) - dim.to_unit(pair[0])
                new[name] = dim.from_unit(dim.to_unit(ctx.current[name]) + alpha * direction)
            elif pair[1] != ctx.current[name]:
                new[name] = dim.clip(pair[1])
        if new != ctx.current:
            return new, {"source": entry.get("variant_id"), "alpha": round_sig(alpha, 4)}
    return None


def _op_crossover(ctx: Context) -> Result:
    """Take the values of a random subset of parameters from another good archive member."""
    donors = []
    for vid, entry in ctx.history.variants.items():
        if vid == ctx.history.parent_id:
            continue
        state = str(entry.get("state", "complete")).lower()
        params = History.meta_info(entry).get("params")
        quality = ctx.history.quality(entry)
        if state in FAILED_STATES | PRUNED_STATES or not isinstance(params, dict):
            continue
        if quality is None:
            continue
        values = {n: ctx.space[n].clip(v) for n, v in params.items() if n in ctx.space}
        differing = sorted(n for n, v in values.items() if v != ctx.current.get(n))
        if differing:
            donors.append((quality, sort_key(vid), vid, values, differing))
    if not donors:
        return None
    donors.sort(key=lambda d: (-d[0], d[1]))
    top = donors[:5]
    ranks = [1.0 / (i + 1) for i in range(len(top))]
    _, _, vid, values, differing = ctx.rng.choices(top, weights=ranks)[0]
    taken = [name for name in differing if ctx.rng.random() < 0.5]
    if not taken:
        taken = [ctx.rng.choice(differing)]
    new = dict(ctx.current)
    for name in taken:
        new[name] = values[name]
    return new, {"donor": vid, "taken": taken}


#: The operators this agent knows, by name; ``operator_weights`` is restricted to these.
_OPERATORS: dict[str, Callable[[Context], Result]] = {
    "perturb": _op_perturb,
    "focus": _op_focus,
    "follow": _op_follow,
    "crossover": _op_crossover,
    "reset": _op_reset,
}


#: The operators' names, in a fixed order (the order of ``operator_weights`` in ``META``).
OPERATORS: tuple[str, ...] = tuple(_OPERATORS)


def _known_signatures(history: History) -> set[str]:
    """Canonical JSON of every archive member's parameters (to avoid proposing duplicates)."""
    signatures = set()
    for entry in history.variants.values():
        params = History.meta_info(entry).get("params")
        if isinstance(params, dict):
            signatures.add(json.dumps(params, sort_keys=True, default=str))
    return signatures


def propose(
    ctx: Context, weights: dict[str, float], explore: float
) -> tuple[dict[str, Any], str, dict[str, Any], bool] | None:
    """Draw operators until one yields parameters that differ from the parent's.

    The first attempt draws the operator from ``weights`` (a reset with probability
    ``explore``); an inapplicable operator falls back to ``perturb``. A proposal that duplicates
    an archive member is retried; after half the attempts duplicates are accepted, and the last
    attempts use ``reset``, which always changes something when a parameter is mutable.

    Returns:
        ``(new_params, operator, detail, explored)``, or ``None`` if nothing different was found.
    """
    known = _known_signatures(ctx.history)
    ops = [op for op in OPERATORS if weights.get(op, 0.0) > 0.0] or ["perturb"]
    fallback = None
    for attempt in range(_ATTEMPTS):
        explored = ctx.rng.random() < explore or attempt >= _ATTEMPTS - 3
        requested = (
            "reset" if explored else ctx.rng.choices(ops, weights=[weights[op] for op in ops])[0]
        )
        result = _OPERATORS[requested](ctx)
        operator = requested
        if result is None:
            operator = "perturb"
            result = _op_perturb(ctx)
        if result is None:
            continue
        new, detail = result
        new = {name: ctx.space[name].clip(value) for name, value in new.items()}
        if new == ctx.current:
            continue
        if requested != operator:
            detail = {**detail, "fallback_from": requested}
        if attempt:
            detail = {**detail, "attempt": attempt}
        candidate = (new, operator, detail, explored)
        signature = json.dumps({**ctx.base, **new}, sort_keys=True, default=str)
        if signature not in known:
            return candidate
        if fallback is None:
            fallback = candidate
        if attempt >= _ATTEMPTS // 2:
            return fallback
    return fallback


def op_restart(ctx: Context) -> Result:
    """Resample about half of the parameters (at least one) uniformly over the space: the
    ``restart`` mechanism (see meta_portfolio.py)."""
    names = [name for name in ctx.mutable if ctx.rng.random() < 0.5]
    if not names:
        names = [ctx.rng.choice(ctx.mutable)]
    new = dict(ctx.current)
    for name in names:
        dim = ctx.space[name]
        if dim.kind == "bool":
            new[name] = ctx.rng.random() < 0.5
        elif dim.kind == "choice":
            new[name] = ctx.rng.choice(dim.choices)
        else:
            new[name] = dim.from_unit(ctx.rng.random())
    return new, {"targets": sorted(names)}


def propose_with(
    ctx: Context, name: str, operator: Callable[[Context], Result]
) -> tuple[dict[str, Any], str, dict[str, Any], bool] | None:
    """A proposal of one mechanism's ``operator`` that differs from the parent and from the
    archive's members (three tries); None if it has none (the caller falls back)."""
    known = _known_signatures(ctx.history)
    for _ in range(3):
        result = operator(ctx)
        if result is None:
            return None
        new = {key: ctx.space[key].clip(value) for key, value in result[0].items()}
        signature = json.dumps({**ctx.base, **new}, sort_keys=True, default=str)
        if new != ctx.current and signature not in known:
            return new, name, result[1], False
    return None
