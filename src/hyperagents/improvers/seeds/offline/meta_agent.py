"""Offline meta agent: the default, LLM-free improver of a hyperagent program.

This file is copied into every seed hyperagent program as ``meta_agent.py``. The engine copies the
parent program into a fresh workspace and calls :func:`improve` there, in a sandboxed process; the
files edited in place become the child program, and the returned dict becomes its ``meta_info``.

What it edits
    * ``task_agent.py``: the top-level literal ``PARAMS = {...}`` (the task agent's declared
      parameters), within the search space declared by ``PARAM_SPACE = {...}``. Only the source
      span of the ``PARAMS`` literal is rewritten; every other byte of the file is kept.
    * ``meta_agent.py`` (this file, the workspace's copy): the literal ``META = {...}`` below, which
      holds the meta agent's own strategy state. Each call first adapts ``META`` from the success
      history found in the report and writes it back, so the child's meta agent starts from the
      adapted strategy (self-reference: in ``hyperagent`` mode improvements to the improver
      compound along a lineage; in ``frozen-meta`` mode the engine discards these edits).

Sections of this file
    the entry point (:func:`improve`); reading and rewriting top-level literals; the search space
    ``PARAM_SPACE`` declares; the history of earlier edits; the self-adaptation of ``META``; the
    operators that edit ``PARAMS``; the input features behind failures (the ``focus`` operator).

The module uses the standard library only and is deterministic given the workspace files and the
report (all randomness comes from ``random.Random(report["seed"])``).
"""

# Annotations are evaluated (no ``from __future__ import annotations``): the dataclasses below
# then work even where this file is run as a module missing from ``sys.modules``.
import ast
import json
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

META: dict[str, Any] = {
    "step_scale": 0.15,
    "step_growth": 1.5,
    "target_success": 0.2,
    "self_adapt_tau": 0.15,
    "n_mutations": 2.0,
    "n_mutations_lr": 0.3,
    "operator_weights": {
        "perturb": 0.3,
        "focus": 0.2,
        "follow": 0.2,
        "crossover": 0.2,
        "reset": 0.1,
    },
    "weight_lr": 0.5,
    "weight_floor": 0.05,
    "explore": 0.1,
    "explore_growth": 1.07,
    "explore_decay": 0.7,
    "context_weight": 3.0,
    "ema_lr": 0.2,
    "success_ema": 0.2,
    "successes": 0.0,
    "failures": 0.0,
    "stagnation": 0,
}


#: Largest ``meta_info`` (JSON bytes) this agent returns; the engine accepts 64 KB.
_MAX_INFO_BYTES = 60_000
#: How many evidence events are listed in ``meta_info`` (all of them are used).
_MAX_EVIDENCE = 20


def improve(workspace: str, report: dict[str, Any]) -> dict[str, Any]:
    """Adapt this meta agent's own strategy, then edit the task agent's parameters.

    Args:
        workspace: Directory holding the copy of the parent program; edited in place.
        report: The evaluation report of the parent (see the project's meta agent protocol).
            Missing or malformed parts are tolerated.

    Returns:
        A JSON-able dict (the child's ``meta_info``): the operator used, the parameter changes
        ``{name: [old, new]}``, the full new ``PARAMS``, the adapted ``META`` and how it was
        adapted. ``operator`` is ``"none"`` (and no file is changed) when no edit was possible.
    """
    report = report if isinstance(report, dict) else {}
    seed = report.get("seed", 0)
    rng = random.Random(seed if isinstance(seed, int) else str(seed))
    info: dict[str, Any] = {"agent": "offline-meta-agent", "mode": report.get("mode")}
    history = _History.from_report(report)

    # 1. The meta level: read and adapt this agent's own strategy state.
    meta_path = os.path.join(workspace, "meta_agent.py")
    meta_source = _read_text(meta_path)
    adapted, sigma = _adapt(meta_source, history, rng, info)

    # 2. The task level: read the declared parameters and search space.
    task_path = os.path.join(workspace, "task_agent.py")
    task_source = _read_text(task_path)
    declared = _declared(task_source, info)
    if declared is None:
        return _fit(info)
    params, space = declared

    # 3. Propose a child that differs from the parent (and preferably from the whole archive).
    current = {name: dim.clip(params[name]) for name, dim in space.items()}
    ctx = _Context(
        rng=rng,
        space=space,
        current=current,
        base={**params, **current},
        mutable=[name for name, dim in space.items() if dim.mutable],
        sigma=sigma,
        n_mutations=float(adapted["n_mutations"]),
        report=report,
        history=history,
    )
    explore = float(adapted["explore"]) * (1.0 - 0.5 * history.progress())
    proposal = _propose(ctx, adapted["operator_weights"], explore)
    if proposal is None:
        info.update(operator="none", reason="no parameter change found (space exhausted)")
        return _fit(info)
    new_params, operator, detail, explored = proposal

    # 4. Write both edits: the task agent's PARAMS and this agent's own META.
    full_params = {**params, **new_params}
    assert task_source is not None  # checked above through params
    _write_text(task_path, _rewrite_literal(task_source, "PARAMS", full_params))
    info["meta_self_edited"] = _write_meta(meta_path, meta_source, adapted)
    changes = {
        name: [params.get(name), value]
        for name, value in full_params.items()
        if name in params and params[name] != value
    }
    info.update(operator=operator, explored=explored, sigma=adapted["step_scale"])
    info.update(n_changed=len(changes), changes=changes, detail=detail)
    info.update(params=full_params, meta=adapted)
    return _fit(info)


def _declared(
    task_source: str | None, info: dict[str, Any]
) -> "tuple[dict[Any, Any], dict[str, _Dim]] | None":
    """The task agent's ``PARAMS`` and the search space its ``PARAM_SPACE`` declares; None
    (with the reason in ``info``) when it declares nothing this agent can change."""
    params = _read_literal(task_source, "PARAMS") if task_source else None
    space_raw = _read_literal(task_source, "PARAM_SPACE") if task_source else None
    if not isinstance(params, dict) or not isinstance(space_raw, dict):
        info.update(operator="none", reason="task_agent.py declares no PARAMS/PARAM_SPACE literals")
        return None
    space = _build_space(space_raw, params)
    if not any(dim.mutable for dim in space.values()):
        info.update(operator="none", reason="no mutable parameter in PARAM_SPACE")
        return None
    return params, space


def _adapt(
    meta_source: str | None, history: "_History", rng: random.Random, info: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """Adapt ``META`` (read from ``meta_source``) to the evidence in ``history`` and mutate its
    step size; record how in ``info``.

    Returns:
        The adapted ``META`` (the child's) and the step size of this edit (``sigma``).
    """
    meta_state = _sanitize_meta(_read_literal(meta_source, "META") if meta_source else None)
    events = history.events(float(meta_state["context_weight"]))
    adapted, adaptation = _adapt_meta(meta_state, events)
    tau = float(adapted["self_adapt_tau"])
    sigma = _clamp_limit("step_scale", adapted["step_scale"] * math.exp(tau * rng.gauss(0.0, 1.0)))
    adapted["step_scale"] = _round_sig(sigma)
    adaptation["step_scale"].append(adapted["step_scale"])
    info["adaptation"] = adaptation
    info["evidence"] = [e.to_json() for e in events[:_MAX_EVIDENCE]]
    return adapted, sigma


def _write_meta(meta_path: str, meta_source: str | None, adapted: dict[str, Any]) -> bool:
    """Write the adapted ``META`` into this agent's own source; whether it could be."""
    if meta_source is not None and _read_literal(meta_source, "META") is not None:
        _write_text(meta_path, _rewrite_literal(meta_source, "META", adapted))
        return True
    return False


def _fit(info: dict[str, Any]) -> dict[str, Any]:
    """Keep ``info`` JSON-able and under the size limit (dropping the bulkiest parts first)."""
    info = json.loads(json.dumps(info, default=str))
    for key in ("evidence", "detail", "adaptation", "params"):
        if len(json.dumps(info)) <= _MAX_INFO_BYTES:
            break
        info.pop(key, None)
    return info


# ---------------------------------------------------------------------------------------------
# Reading and rewriting top-level literals in Python source (``PARAMS``, ``META``).
#
# Only the source span of a literal is rewritten; every other byte of the file is kept, so a
# child's diff shows exactly the values that changed.
# ---------------------------------------------------------------------------------------------
def _read_text(path: str) -> str | None:
    """Return the UTF-8 text of ``path``, or ``None`` if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, byte for byte (no newline translation)."""
    with open(path, "wb") as handle:
        handle.write(text.encode("utf-8"))


def _find_literal(source: str, name: str) -> ast.expr | None:
    """Return the value node of the last top-level ``name = <literal>`` assignment, if any."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    found: ast.expr | None = None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                found = node.value if len(node.targets) == 1 else None
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
        ):
            found = node.value
    return found


def _read_literal(source: str | None, name: str) -> Any:
    """Return the value of the top-level literal ``name`` in ``source`` (``None`` if absent)."""
    if source is None:
        return None
    node = _find_literal(source, name)
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _rewrite_literal(source: str, name: str, value: Any) -> str:
    """Replace exactly the source span of the literal assigned to ``name`` with ``value``.

    The new literal is formatted one key per line (``ruff format`` style); everything outside the
    span is kept byte for byte. Offsets from :mod:`ast` are UTF-8 byte offsets, so the splice is
    done on bytes.
    """
    node = _find_literal(source, name)
    if node is None or node.end_lineno is None or node.end_col_offset is None:
        return source
    data = source.encode("utf-8")
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    begin = starts[node.lineno - 1] + node.col_offset
    end = starts[node.end_lineno - 1] + node.end_col_offset
    line_start = starts[node.lineno - 1]
    line_bytes = data[line_start:begin]
    indent = len(line_bytes) - len(line_bytes.lstrip(b" \t"))
    text = _format_literal(value, indent)
    return (data[:begin] + text.encode("utf-8") + data[end:]).decode("utf-8")


def _round_sig(value: float, digits: int = 6) -> float:
    """Round ``value`` to ``digits`` significant digits (keeps diffs readable)."""
    if not math.isfinite(value) or value == 0.0:
        return 0.0 if not math.isfinite(value) else value
    return float(f"{value:.{digits}g}")


def _format_literal(value: Any, indent: int = 0) -> str:
    """Format ``value`` as a Python literal; non-empty dicts get one key per line."""
    if isinstance(value, dict) and value:
        pad = " " * (indent + 4)
        lines = [
            f"{pad}{_format_literal(key)}: {_format_literal(item, indent + 4)},"
            for key, item in value.items()
        ]
        return "{\n" + "\n".join(lines) + "\n" + " " * indent + "}"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        return repr(_round_sig(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_format_literal(item, indent) for item in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_format_literal(item, indent) for item in value)
        return "(" + inner + ("," if len(value) == 1 else "") + ")"
    return repr(value)


# ---------------------------------------------------------------------------------------------
# The task agent's search space: the parameters ``PARAM_SPACE`` declares for ``PARAMS``.
#
# Each parameter is a float or int between bounds (optionally in log space), a bool, or a choice
# among values; operators move in unit coordinates (``to_unit``/``from_unit``) and every value is
# coerced back into the space (``clip``).
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dim:
    """One declared parameter: its type, bounds or choices, and the input features it acts on.

    Attributes:
        name: The parameter's name in ``PARAMS``.
        kind: ``float``, ``int``, ``bool`` or ``choice``.
        features: Input features the parameter acts on (``PARAM_SPACE``'s ``feature``).
        low: Lower bound (numeric kinds).
        high: Upper bound (numeric kinds).
        log: Whether steps are taken in log space (``scale: log``, positive bounds).
        choices: The values of a ``choice`` parameter.
    """

    name: str
    kind: str
    features: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: list[Any] = field(default_factory=list)

    @property
    def numeric(self) -> bool:
        """Whether the parameter is a float or an int."""
        return self.kind in ("float", "int")

    @property
    def mutable(self) -> bool:
        """Whether the parameter can take more than one value."""
        if self.kind == "bool":
            return True
        if self.kind == "choice":
            return len(self.choices) > 1
        if self.kind == "int":
            return math.floor(self.high) - math.ceil(self.low) >= 1
        return self.high > self.low

    def clip(self, value: Any) -> Any:
        """Return ``value`` coerced into the space (clipped, rounded, or the first choice)."""
        if self.kind == "bool":
            return bool(value)
        if self.kind == "choice":
            return value if value in self.choices else self.choices[0]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = self.from_unit(0.5) if self.mutable else self.low
        if not math.isfinite(number):
            number = self.low
        if self.kind == "int":
            low, high = math.ceil(self.low), math.floor(self.high)
            return int(min(max(round(number), low), high))
        rounded = _round_sig(min(max(number, self.low), self.high))
        return min(max(rounded, self.low), self.high)

    def to_unit(self, value: Any) -> float:
        """Map a numeric value to ``[0, 1]`` (in log space for ``scale: log``)."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return 0.5
        if not math.isfinite(number) or self.high <= self.low:
            return 0.5
        if self.log:
            number = max(number, self.low)
            span = math.log(self.high) - math.log(self.low)
            return min(max((math.log(number) - math.log(self.low)) / span, 0.0), 1.0)
        return min(max((number - self.low) / (self.high - self.low), 0.0), 1.0)

    def from_unit(self, unit: float) -> Any:
        """Map a unit coordinate back to a value of the space (clipped and rounded)."""
        unit = min(max(unit, 0.0), 1.0)
        if self.log:
            raw = math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        else:
            raw = self.low + unit * (self.high - self.low)
        return self.clip(raw)


def _build_space(raw: dict[Any, Any], params: dict[Any, Any]) -> dict[str, _Dim]:
    """Parse ``PARAM_SPACE`` defensively; keep the parameters present in both literals."""
    space: dict[str, _Dim] = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or name not in params or not isinstance(spec, dict):
            continue
        dim = _dim(name, spec, params[name])
        if dim is not None:
            space[name] = dim
    return space


def _dim(name: str, spec: dict[Any, Any], value: Any) -> _Dim | None:
    """The parameter ``name`` declared by ``spec`` (its kind guessed from ``value`` if the spec
    does not say it), or None if its choices or bounds are unusable."""
    kind = spec.get("type")
    if kind not in ("float", "int", "bool", "choice"):
        if isinstance(spec.get("choices"), list | tuple):
            kind = "choice"
        elif isinstance(value, bool):
            kind = "bool"
        elif isinstance(value, int):
            kind = "int"
        else:
            kind = "float"
    feature = spec.get("feature", ())
    if isinstance(feature, str):
        features: tuple[str, ...] = (feature,)
    elif isinstance(feature, list | tuple):
        features = tuple(str(item) for item in feature)
    else:
        features = ()
    if kind == "choice":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            return None
        return _Dim(name=name, kind=str(kind), features=features, choices=list(choices))
    if kind in ("float", "int"):
        low, high = _as_float(spec.get("low")), _as_float(spec.get("high"))
        if low is None or high is None or high < low:
            return None
        log = spec.get("scale") == "log" and low > 0.0
        return _Dim(name=name, kind=str(kind), features=features, low=low, high=high, log=log)
    return _Dim(name=name, kind=str(kind), features=features)


def _as_float(value: Any) -> float | None:
    """Return ``value`` as a finite float, or ``None``."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------------------------------
# The history of earlier edits, read from the report: outcomes, credit, lineage.
#
# An edit's outcome compares the child's scores with its parent's (``val`` and ``train``, else
# ``train_subset``), relative to the task's score range: a success, a failure (a failed or pruned
# child too) or a tie (no measurable change, typically an inert parameter).
# ---------------------------------------------------------------------------------------------
#: Variant states that mean the edit failed outright (the child never got a comparable score).
_FAILED_STATES = frozenset({"invalid", "failed", "error", "crashed", "timeout", "rejected"})
#: Variant states that mean the child was evaluated on the cheap subset only and did not pass.
_PRUNED_STATES = frozenset({"pruned"})
#: Relative score change (by the task's score range) below which two scores count as equal.
_TIE_EPS = 1e-9


@dataclass
class _Event:
    """The outcome of one earlier edit, used as evidence for adapting ``META``.

    Attributes:
        variant_id: The variant the edit produced.
        outcome: ``"success"``, ``"failure"`` or ``"tie"``.
        operator: The operator that made the edit (None if unknown).
        delta: The relative score change.
        n_changed: How many parameters the edit changed.
        weight: The event's weight as evidence (at most 1).
        lineage: Whether the edit produced the parent (not a sibling or a child of it).
    """

    variant_id: Any
    outcome: str
    operator: str | None
    delta: float | None
    n_changed: int
    weight: float
    lineage: bool

    def to_json(self) -> dict[str, Any]:
        """A compact JSON-able record."""
        return {
            "variant": self.variant_id,
            "outcome": self.outcome,
            "operator": self.operator,
            "delta": None if self.delta is None else _round_sig(self.delta),
            "weight": _round_sig(self.weight),
            "lineage": self.lineage,
        }


@dataclass
class _History:
    """Read-only view of the report's archive and parent, tolerant of missing keys.

    Attributes:
        report: The report.
        span: The width of the task's score range (1 if unknown).
        variants: The archive's entries by variant id.
        parent: The parent's entry (the report's, completed from the archive).
        parent_id: The parent's variant id (None if unknown).
    """

    report: dict[str, Any]
    span: float
    variants: dict[Any, dict[str, Any]]
    parent: dict[str, Any]
    parent_id: Any

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> "_History":
        """The history ``report`` tells."""
        task = report.get("task") if isinstance(report.get("task"), dict) else {}
        span = None
        score_range = task.get("score_range") if isinstance(task, dict) else None
        if isinstance(score_range, list | tuple) and len(score_range) == 2:
            low, high = _as_float(score_range[0]), _as_float(score_range[1])
            if low is not None and high is not None and high > low:
                span = high - low
        archive = report.get("archive")
        variants: dict[Any, dict[str, Any]] = {}
        if isinstance(archive, list):
            for entry in archive:
                if isinstance(entry, dict) and "variant_id" in entry:
                    variants[entry["variant_id"]] = entry
        raw = report.get("parent") if isinstance(report.get("parent"), dict) else {}
        parent: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        pid = parent.get("variant_id")
        if pid in variants:
            merged = dict(variants[pid])
            merged.update({k: v for k, v in parent.items() if v is not None})
            parent = merged
        return cls(report=report, span=span or 1.0, variants=variants, parent=parent, parent_id=pid)

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _scores(entry: dict[str, Any]) -> dict[str, float]:
        raw = entry.get("scores")
        if not isinstance(raw, dict):
            return {}
        out = {}
        for key, value in raw.items():
            number = _as_float(value)
            if number is not None:
                out[str(key)] = number
        return out

    @staticmethod
    def meta_info(entry: dict[str, Any]) -> dict[str, Any]:
        """The entry's ``meta_info`` dict (empty if missing)."""
        info = entry.get("meta_info")
        return info if isinstance(info, dict) else {}

    def quality(self, entry: dict[str, Any]) -> float | None:
        """Mean of the entry's ``val`` and ``train`` scores (``None`` if it has neither)."""
        scores = self._scores(entry)
        values = [scores[key] for key in ("val", "train") if key in scores]
        return sum(values) / len(values) if values else None

    def delta(self, child: dict[str, Any], parent: dict[str, Any]) -> float | None:
        """Score change from ``parent`` to ``child`` relative to the score range.

        The mean difference over the splits both have among ``val`` and ``train``; the
        ``train_subset`` difference if they share neither; ``None`` if not comparable.
        """
        cs, ps = self._scores(child), self._scores(parent)
        common: list[str] = [key for key in ("val", "train") if key in cs and key in ps]
        if not common and "train_subset" in cs and "train_subset" in ps:
            common = ["train_subset"]
        if not common:
            return None
        return sum(cs[key] - ps[key] for key in common) / len(common) / self.span

    def outcome(self, child: dict[str, Any], parent: dict[str, Any]) -> tuple[str, float] | None:
        """Classify the edit that produced ``child`` (``None`` if not finished or unknown)."""
        state = str(child.get("state", "complete")).lower()
        if state in _FAILED_STATES:
            return "failure", -1.0
        delta = self.delta(child, parent)
        if state in _PRUNED_STATES:
            return "failure", delta if delta is not None else -1.0
        if delta is None:
            return None
        if delta > _TIE_EPS:
            return "success", delta
        if delta < -_TIE_EPS:
            return "failure", delta
        return "tie", 0.0

    def _event(self, child: dict[str, Any], weight: float, lineage: bool) -> _Event | None:
        parent = self.variants.get(child.get("parent_id"))
        if child.get("variant_id") == self.parent_id and parent is None:
            return None
        result = self.outcome(child, parent or {})
        if result is None:
            return None
        info = self.meta_info(child)
        operator = info.get("operator")
        changes = info.get("changes")
        return _Event(
            variant_id=child.get("variant_id"),
            outcome=result[0],
            operator=operator if isinstance(operator, str) else None,
            delta=result[1],
            n_changed=len(changes) if isinstance(changes, dict) else 0,
            weight=weight,
            lineage=lineage,
        )

    # -- evidence -----------------------------------------------------------------------------
    def events(self, context_weight: float) -> list[_Event]:
        """Outcome events: the parent's own creation, then its children and later siblings.

        The events of children and later siblings share a total weight of ``context_weight``
        (each at most 1).
        """
        events: list[_Event] = []
        if self.parent_id is not None and self.parent.get("parent_id") is not None:
            own = self._event(self.parent, 1.0, lineage=True)
            if own is not None and own.operator not in (None, "none"):
                events.append(own)
        context: list[dict[str, Any]] = []
        grand_id = self.parent.get("parent_id")
        for vid in sorted(self.variants, key=_sort_key):
            entry = self.variants[vid]
            if vid == self.parent_id:
                continue
            pid = entry.get("parent_id")
            child_of_parent = self.parent_id is not None and pid == self.parent_id
            later_sibling = (
                grand_id is not None
                and pid == grand_id
                and _sort_key(vid) > _sort_key(self.parent_id)
            )
            if child_of_parent or later_sibling:
                context.append(entry)
        found = [e for e in (self._event(c, 1.0, lineage=False) for c in context) if e is not None]
        found = [e for e in found if e.operator != "none"]
        if found:
            weight = min(1.0, context_weight / len(found))
            for event in found:
                event.weight = weight
            events.extend(found)
        return events

    def improving_edits(self) -> list[tuple[dict[str, Any], float]]:
        """Archive members whose edit beat their parent, with the relative improvement."""
        out = []
        for vid in sorted(self.variants, key=_sort_key):
            entry = self.variants[vid]
            parent = self.variants.get(entry.get("parent_id"))
            changes = self.meta_info(entry).get("changes")
            if parent is None or not isinstance(changes, dict) or not changes:
                continue
            result = self.outcome(entry, parent)
            if result is not None and result[0] == "success":
                out.append((entry, result[1]))
        return out

    def param_credit(self) -> dict[str, float]:
        """Per-parameter sampling weight learned from the outcomes of earlier edits.

        Each finished edit shares one unit among the parameters it changed. A parameter's weight
        is ``(1 + 2 * successes + effects) / (1 + 2 * ties)``: edits where it had a measurable
        effect (success or failure) raise it, edits where changing it changed nothing lower it.
        Unknown parameters weigh 1.
        """
        good: dict[str, float] = {}
        effect: dict[str, float] = {}
        inert: dict[str, float] = {}
        for vid in sorted(self.variants, key=_sort_key):
            entry = self.variants[vid]
            parent = self.variants.get(entry.get("parent_id"))
            changes = self.meta_info(entry).get("changes")
            if parent is None or not isinstance(changes, dict) or not changes:
                continue
            state = str(entry.get("state", "complete")).lower()
            if state in _FAILED_STATES:
                continue
            result = self.outcome(entry, parent)
            if result is None:
                continue
            share = 1.0 / len(changes)
            for name in changes:
                key = str(name)
                if result[0] == "tie":
                    inert[key] = inert.get(key, 0.0) + share
                else:
                    effect[key] = effect.get(key, 0.0) + share
                    if result[0] == "success":
                        good[key] = good.get(key, 0.0) + share
        names = set(good) | set(effect) | set(inert)
        return {
            name: (1.0 + 2.0 * good.get(name, 0.0) + effect.get(name, 0.0))
            / (1.0 + 2.0 * inert.get(name, 0.0))
            for name in names
        }

    def lineage(self) -> set[Any]:
        """Variant ids of the parent and its ancestors."""
        seen: set[Any] = set()
        vid = self.parent_id
        while vid is not None and vid not in seen:
            seen.add(vid)
            entry = self.variants.get(vid)
            vid = entry.get("parent_id") if entry else None
        return seen

    def generation(self) -> int:
        """The child's generation number (0 if unknown)."""
        value = self.report.get("generation")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def progress(self) -> float:
        """Fraction of the run done, from ``generation`` and ``generations_left`` (0 if unknown)."""
        left = self.report.get("generations_left")
        gen = self.generation()
        if not isinstance(left, int) or isinstance(left, bool) or left < 0 or gen + left <= 0:
            return 0.0
        return gen / (gen + left)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Sort ids of mixed types deterministically (numbers first, then by string)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


# ---------------------------------------------------------------------------------------------
# How the offline meta agent adapts its own strategy, ``META``, from the outcomes of edits.
#
# Evidence is a list of outcome events (see the history section): the edit that produced the parent
# (did the parent beat *its* parent?) with weight 1, plus the outcomes of the parent's existing
# children and of its later siblings, with a total weight of at most ``META["context_weight"]``.
# All multiplicative updates are clamped to the ranges in ``_LIMITS``.
#
# * ``step_scale`` (relative step size, in units of each parameter's range): the per-event
#   1/5th success rule, ``step *= growth`` on a success and ``step *= growth ** (-p / (1 - p))``
#   on a failure, with ``p = target_success``; a tie (no measurable change, typically an inert
#   parameter) leaves it unchanged. The step actually used for the edit is then mutated
#   log-normally (``step * exp(tau * N(0, 1))``, self-adaptive ES, in ``_adapt``) and that
#   mutated value is what the child inherits.
# * ``operator_weights``: a Hedge update on the operator that produced the event,
#   ``w *= exp(lr * (reward - p))`` with reward 1 for a success and 0 otherwise, then normalised
#   with a floor so that no operator dies.
# * ``explore`` (probability of a random-reset move): multiplied by ``explore_decay`` on a success
#   and by ``explore_growth`` on a failure or tie (stagnation raises exploration).
# * ``n_mutations`` (expected number of parameters changed): moves towards the number of
#   parameters changed by successful edits.
# * counters (``successes``, ``failures``, ``stagnation``) and ``success_ema`` make the history
#   self-describing.
# ---------------------------------------------------------------------------------------------
#: Fallback value and valid range of each numeric ``META`` key: ``key: (default, low, high)``.
_LIMITS: dict[str, tuple[float, float, float]] = {
    "step_scale": (0.15, 0.01, 0.5),
    "step_growth": (1.5, 1.0, 3.0),
    "target_success": (0.2, 0.01, 0.5),
    "self_adapt_tau": (0.15, 0.0, 1.0),
    "n_mutations": (2.0, 1.0, 64.0),
    "n_mutations_lr": (0.3, 0.0, 1.0),
    "weight_lr": (0.5, 0.0, 5.0),
    "weight_floor": (0.05, 0.0, 0.19),
    "explore": (0.1, 0.02, 0.5),
    "explore_growth": (1.07, 1.0, 2.0),
    "explore_decay": (0.7, 0.1, 1.0),
    "context_weight": (3.0, 0.0, 100.0),
    "ema_lr": (0.2, 0.0, 1.0),
    "success_ema": (0.2, 0.0, 1.0),
    "successes": (0.0, 0.0, 1e12),
    "failures": (0.0, 0.0, 1e12),
    "stagnation": (0.0, 0.0, 1e12),
}


def _clamp_limit(key: str, value: Any) -> float:
    """Clamp ``value`` to the valid range of ``META[key]`` (its default if not a number)."""
    default, low, high = _LIMITS[key]
    number = _as_float(value)
    if number is None:
        number = default
    return min(max(number, low), high)


def _sanitize_meta(raw: Any) -> dict[str, Any]:
    """Return a complete, valid ``META`` from whatever the source held (extra keys are kept)."""
    meta: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    for key in _LIMITS:
        meta[key] = _clamp_limit(key, meta.get(key))
    meta["stagnation"] = int(meta["stagnation"])
    raw_weights = meta.get("operator_weights")
    weights: dict[str, float] = {}
    for op in OPERATORS:
        value = raw_weights.get(op) if isinstance(raw_weights, dict) else None
        number = _as_float(value)
        weights[op] = max(number, 0.0) if number is not None else 1.0 / len(OPERATORS)
    meta["operator_weights"] = _normalise_weights(weights, float(meta["weight_floor"]))
    return meta


def _normalise_weights(weights: dict[str, float], floor: float) -> dict[str, float]:
    """Normalise to sum 1 with every weight at least ``floor`` (rounded for readability)."""
    total = sum(weights.values())
    if total <= 0.0 or not math.isfinite(total):
        probs = {op: 1.0 / len(weights) for op in weights}
    else:
        probs = {op: w / total for op, w in weights.items()}
    floor = min(floor, 1.0 / len(probs))
    # Raise small weights to the floor and take the mass from the others, proportionally.
    low = {op for op, p in probs.items() if p < floor}
    rest = sum(p for op, p in probs.items() if op not in low)
    budget = 1.0 - floor * len(low)
    out = {}
    for op, p in probs.items():
        out[op] = floor if op in low else (p / rest * budget if rest > 0 else floor)
    return {op: _round_sig(value, 4) for op, value in out.items()}


def _adapt_meta(
    meta: dict[str, Any], events: list[_Event]
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Apply the adaptation rules (module docstring) for ``events``; return the new ``META``.

    Returns:
        The adapted ``META`` and a record ``{key: [before, after]}`` of what changed.
    """
    new = dict(meta)
    weights = dict(meta["operator_weights"])
    p = float(meta["target_success"])
    log_up = math.log(float(meta["step_growth"]))
    log_down = log_up * p / (1.0 - p)
    lr = float(meta["weight_lr"])
    step = float(meta["step_scale"])
    explore = float(meta["explore"])
    n_mut = float(meta["n_mutations"])
    ema = float(meta["success_ema"])
    for event in events:
        w = event.weight
        success = event.outcome == "success"
        if success:
            step *= math.exp(log_up * w)
            explore *= float(meta["explore_decay"]) ** w
            new["successes"] = float(new["successes"]) + w
            if event.n_changed > 0:
                n_mut += float(meta["n_mutations_lr"]) * w * (event.n_changed - n_mut)
        elif event.outcome == "tie":
            explore *= float(meta["explore_growth"]) ** w
        else:
            step *= math.exp(-log_down * w)
            explore *= float(meta["explore_growth"]) ** w
            new["failures"] = float(new["failures"]) + w
        if event.lineage:
            new["stagnation"] = 0 if success else int(new["stagnation"]) + 1
        ema += float(meta["ema_lr"]) * w * ((1.0 if success else 0.0) - ema)
        if event.operator in weights and event.outcome != "tie":
            reward = 1.0 if success else 0.0
            weights[event.operator] *= math.exp(lr * w * (reward - p))
    new["step_scale"] = _round_sig(_clamp_limit("step_scale", step))
    new["explore"] = _round_sig(_clamp_limit("explore", explore))
    new["n_mutations"] = _round_sig(_clamp_limit("n_mutations", n_mut))
    new["success_ema"] = _round_sig(_clamp_limit("success_ema", ema))
    new["successes"] = _round_sig(float(new["successes"]))
    new["failures"] = _round_sig(float(new["failures"]))
    new["operator_weights"] = _normalise_weights(weights, float(meta["weight_floor"]))
    record = {
        key: [meta[key], new[key]]
        for key in ("step_scale", "explore", "n_mutations", "success_ema", "operator_weights")
    }
    return new, record


# ---------------------------------------------------------------------------------------------
# The operators that edit the task agent's parameters, and how one is chosen for an edit.
#
# Operators (generic, feedback-driven; no labels, no task knowledge): ``perturb`` (Gaussian
# steps), ``focus`` (perturb the parameters tagged with the input feature most over-represented
# among low-scoring train instances, see the input features section), ``follow`` (re-apply a recent
# improving edit's direction: pattern search), ``crossover`` (take values from another good
# archive member) and ``reset`` (resample one parameter uniformly).
#
# Which parameters an operator changes is also learned, from the archive: a parameter's chance
# of being picked grows with the improvements it took part in and with the edits in which it had
# a measurable effect, and shrinks with the edits in which changing it changed nothing (a tie).
# ---------------------------------------------------------------------------------------------
#: How many candidate edits are tried before giving up on producing a different child.
_ATTEMPTS = 12


@dataclass
class _Context:
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

    rng: random.Random
    space: dict[str, _Dim]
    current: dict[str, Any]
    base: dict[str, Any]
    mutable: list[str]
    sigma: float
    n_mutations: float
    report: dict[str, Any]
    history: _History
    credit: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.credit = self.history.param_credit()

    def count(self) -> int:
        """How many parameters to change: ``n_mutations`` rounded stochastically, at least 1."""
        whole = math.floor(self.n_mutations)
        k = whole + (1 if self.rng.random() < self.n_mutations - whole else 0)
        return max(1, min(k, len(self.mutable)))


_Result = tuple[dict[str, Any], dict[str, Any]] | None


def _step(ctx: _Context, name: str, scale: float = 1.0) -> Any:
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


def _pick(ctx: _Context, names: list[str], k: int) -> list[str]:
    """Sample ``k`` distinct names, weighted by the parameters' credit (see ``_History``)."""
    pool = list(names)
    picked: list[str] = []
    while pool and len(picked) < k:
        weights = [ctx.credit.get(name, 1.0) for name in pool]
        choice = ctx.rng.choices(pool, weights=weights)[0]
        pool.remove(choice)
        picked.append(choice)
    return picked


def _op_perturb(ctx: _Context) -> _Result:
    """Gaussian steps on ``n_mutations`` parameters, picked by credit."""
    names = _pick(ctx, ctx.mutable, ctx.count())
    new = dict(ctx.current)
    for name in names:
        new[name] = _step(ctx, name)
    return new, {"targets": sorted(names)}


def _op_reset(ctx: _Context) -> _Result:
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


def _op_focus(ctx: _Context) -> _Result:
    """Perturb the parameters tagged with a feature over-represented among failures."""
    tagged: dict[str, list[str]] = {}
    for name in ctx.mutable:
        for feature in ctx.space[name].features:
            tagged.setdefault(feature, []).append(name)
    if not tagged:
        return None
    ranked, n_low = _feature_effects(ctx.report, ctx.history.span)
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


def _op_follow(ctx: _Context) -> _Result:
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
        changes = _History.meta_info(entry).get("changes")
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
            return new, {"source": entry.get("variant_id"), "alpha": _round_sig(alpha, 4)}
    return None


def _op_crossover(ctx: _Context) -> _Result:
    """Take the values of a random subset of parameters from another good archive member."""
    donors = []
    for vid, entry in ctx.history.variants.items():
        if vid == ctx.history.parent_id:
            continue
        state = str(entry.get("state", "complete")).lower()
        params = _History.meta_info(entry).get("params")
        quality = ctx.history.quality(entry)
        if state in _FAILED_STATES | _PRUNED_STATES or not isinstance(params, dict):
            continue
        if quality is None:
            continue
        values = {n: ctx.space[n].clip(v) for n, v in params.items() if n in ctx.space}
        differing = sorted(n for n, v in values.items() if v != ctx.current.get(n))
        if differing:
            donors.append((quality, _sort_key(vid), vid, values, differing))
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
_OPERATORS: dict[str, Callable[[_Context], _Result]] = {
    "perturb": _op_perturb,
    "focus": _op_focus,
    "follow": _op_follow,
    "crossover": _op_crossover,
    "reset": _op_reset,
}


#: The operators' names, in a fixed order (the order of ``operator_weights`` in ``META``).
OPERATORS: tuple[str, ...] = tuple(_OPERATORS)


def _known_signatures(history: _History) -> set[str]:
    """Canonical JSON of every archive member's parameters (to avoid proposing duplicates)."""
    signatures = set()
    for entry in history.variants.values():
        params = _History.meta_info(entry).get("params")
        if isinstance(params, dict):
            signatures.add(json.dumps(params, sort_keys=True, default=str))
    return signatures


def _propose(
    ctx: _Context, weights: dict[str, float], explore: float
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


# ---------------------------------------------------------------------------------------------
# Which input features the low-scoring train instances have in common (the ``focus`` operator).
#
# Only inputs, scores and feedback of train instances are used: no labels, no task knowledge.
# ---------------------------------------------------------------------------------------------
def _flatten(inputs: Any) -> dict[str, Any]:
    """Scalar features of one instance's inputs (nested dicts one level deep, ``a.b``)."""
    out: dict[str, Any] = {}
    if not isinstance(inputs, dict):
        if isinstance(inputs, str | int | float | bool):
            out["inputs"] = inputs
        return out
    for key, value in inputs.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                if isinstance(inner, str | int | float | bool) or inner is None:
                    out[f"{key}.{sub}"] = inner
        elif isinstance(value, str | int | float | bool) or value is None:
            out[str(key)] = value
    return out


def _feature_effects(report: dict[str, Any], span: float) -> tuple[list[dict[str, Any]], int]:
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
        score = _as_float(result.get("score"))
        features = by_id.get(str(result.get("id")))
        if score is None or features is None:
            continue
        rows.append((features, score, str(result.get("feedback") or "").lower()))
    if len(rows) < 4:
        return [], 0
    mean = sum(score for _, score, _ in rows) / len(rows)
    if max(s for _, s, _ in rows) - min(s for _, s, _ in rows) <= _TIE_EPS * span:
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
            ranked.append({"feature": name, "effect": _round_sig(effect, 4), **extra})
    ranked.sort(key=lambda item: (-item["effect"], item["feature"]))
    return ranked, len(low)


def _effect(values: list[Any], low_values: list[Any]) -> tuple[float, dict[str, Any]]:
    """Effect size of one feature (see :func:`_feature_effects`)."""
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
            extra = {"category": json.loads(category), "ratio": _round_sig(p_low / p_all, 4)}
    return best, extra
