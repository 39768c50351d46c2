"""The history of earlier edits, read from the report: outcomes, credit, lineage.

An edit's outcome compares the child's scores with its parent's (``val`` and ``train``, else
``train_subset``), relative to the task's score range: a success, a failure (a failed or pruned
child too) or a tie (no measurable change, typically an inert parameter).
"""

from __future__ import annotations

from typing import Any

from meta_source import round_sig
from meta_space import as_float

#: Variant states that mean the edit failed outright (the child never got a comparable score).
FAILED_STATES = frozenset({"invalid", "failed", "error", "crashed", "timeout", "rejected"})
#: Variant states that mean the child was evaluated on the cheap subset only and did not pass.
PRUNED_STATES = frozenset({"pruned"})
#: Relative score change (by the task's score range) below which two scores count as equal.
TIE_EPS = 1e-9


# Plain classes rather than dataclasses: every sandboxed process imports this module afresh,
# and creating a dataclass costs about half a millisecond of CPU.
class Event:
    """The outcome of one earlier edit, used as evidence for adapting ``META``.

    Attributes:
        variant_id: The variant the edit produced.
        outcome: ``"success"``, ``"failure"`` or ``"tie"``.
        operator: The operator that made the edit (None if unknown).
        delta: The relative score change.
        n_changed: How many parameters the edit changed.
        weight: The event's weight as evidence (at most 1).
        lineage: Whether the edit produced the parent (not a sibling or a child of it).
        kind: The kind of a structural edit (``meta_info["structure"]["kind"]``), else None.
    """

    __slots__ = (
        "delta",
        "kind",
        "lineage",
        "n_changed",
        "operator",
        "outcome",
        "variant_id",
        "weight",
    )

    def __init__(
        self,
        variant_id: Any,
        outcome: str,
        operator: str | None,
        delta: float | None,
        n_changed: int,
        weight: float,
        lineage: bool,
        kind: str | None = None,
    ) -> None:
        self.variant_id = variant_id
        self.outcome = outcome
        self.operator = operator
        self.delta = delta
        self.n_changed = n_changed
        self.weight = weight
        self.lineage = lineage
        self.kind = kind

    def to_json(self) -> dict[str, Any]:
        """A compact JSON-able record."""
        return {
            "variant": self.variant_id,
            "outcome": self.outcome,
            "operator": self.operator,
            "delta": None if self.delta is None else round_sig(self.delta),
            "weight": round_sig(self.weight),
            "lineage": self.lineage,
        }


class History:
    """Read-only view of the report's archive and parent, tolerant of missing keys.

    Attributes:
        report: The report.
        span: The width of the task's score range (1 if unknown).
        variants: The archive's entries by variant id.
        parent: The parent's entry (the report's, completed from the archive).
        parent_id: The parent's variant id (None if unknown).
    """

    def __init__(
        self,
        report: dict[str, Any],
        span: float,
        variants: dict[Any, dict[str, Any]],
        parent: dict[str, Any],
        parent_id: Any,
    ) -> None:
        self.report = report
        self.span = span
        self.variants = variants
        self.parent = parent
        self.parent_id = parent_id

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> History:
        """The history ``report`` tells."""
        task = report.get("task") if isinstance(report.get("task"), dict) else {}
        span = None
        score_range = task.get("score_range") if isinstance(task, dict) else None
        if isinstance(score_range, list | tuple) and len(score_range) == 2:
            low, high = as_float(score_range[0]), as_float(score_range[1])
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
            number = as_float(value)
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
        if state in FAILED_STATES:
            return "failure", -1.0
        delta = self.delta(child, parent)
        if state in PRUNED_STATES:
            return "failure", delta if delta is not None else -1.0
        if delta is None:
            return None
        if delta > TIE_EPS:
            return "success", delta
        if delta < -TIE_EPS:
            return "failure", delta
        return "tie", 0.0

    def _event(self, child: dict[str, Any], weight: float, lineage: bool) -> Event | None:
        parent = self.variants.get(child.get("parent_id"))
        if child.get("variant_id") == self.parent_id and parent is None:
            return None
        result = self.outcome(child, parent or {})
        if result is None:
            return None
        info = self.meta_info(child)
        operator = info.get("operator")
        changes = info.get("changes")
        structure = info.get("structure")
        kind = structure.get("kind") if isinstance(structure, dict) else None
        return Event(
            variant_id=child.get("variant_id"),
            outcome=result[0],
            operator=operator if isinstance(operator, str) else None,
            delta=result[1],
            n_changed=len(changes) if isinstance(changes, dict) else 0,
            weight=weight,
            lineage=lineage,
            kind=kind if isinstance(kind, str) else None,
        )

    # -- evidence -----------------------------------------------------------------------------
    def events(self, context_weight: float) -> list[Event]:
        """Outcome events: the parent's own creation, then its children and later siblings.

        The events of children and later siblings share a total weight of ``context_weight``
        (each at most 1).
        """
        events: list[Event] = []
        if self.parent_id is not None and self.parent.get("parent_id") is not None:
            own = self._event(self.parent, 1.0, lineage=True)
            if own is not None and own.operator not in (None, "none"):
                events.append(own)
        context: list[dict[str, Any]] = []
        grand_id = self.parent.get("parent_id")
        for vid in sorted(self.variants, key=sort_key):
            entry = self.variants[vid]
            if vid == self.parent_id:
                continue
            pid = entry.get("parent_id")
            child_of_parent = self.parent_id is not None and pid == self.parent_id
            later_sibling = (
                grand_id is not None
                and pid == grand_id
                and sort_key(vid) > sort_key(self.parent_id)
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
        for vid in sorted(self.variants, key=sort_key):
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
        for vid in sorted(self.variants, key=sort_key):
            entry = self.variants[vid]
            parent = self.variants.get(entry.get("parent_id"))
            changes = self.meta_info(entry).get("changes")
            if parent is None or not isinstance(changes, dict) or not changes:
                continue
            state = str(entry.get("state", "complete")).lower()
            if state in FAILED_STATES:
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


def sort_key(value: Any) -> tuple[int, Any]:
    """Sort ids of mixed types deterministically (numbers first, then by string)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))
