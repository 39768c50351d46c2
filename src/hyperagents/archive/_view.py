"""The archive view: a frozen snapshot of a run's variants and pure functions over it.

What the engine, the selectors, export, the reports and the dashboard all ask of an archive —
the champion, the best score per split, how many children each variant has, a variant's
lineage, which generations have settled — is answered here, once, from a snapshot. Nothing in
this module reads storage or changes anything: the same snapshot always gives the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from hyperagents.constitution import objective
from hyperagents.storages import VariantRecord, VariantState

__all__ = [
    "ArchiveEntry",
    "ArchiveView",
    "ancestry",
    "best_entry",
    "champion_of",
    "search_evaluations",
]

_GENERATION = attrgetter("generation")


def search_evaluations(variant: VariantRecord) -> int:
    """The evaluations a variant cost the search: what it records it cost
    (``metrics["search_evaluations"]``: a variant a level's own loop made, e.g. an arena
    round's champion, with the code agent evaluations of its round), else every stage it was
    scored on but ``test`` (which only champions get, for the report, and no arm sees)."""
    recorded = variant.metrics.get("search_evaluations") if variant.metrics else None
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 0:
        return recorded
    return sum(1 for stage in variant.scores if stage != "test")


@dataclass(frozen=True)
class ArchiveEntry:
    """A frozen view of one eligible parent.

    Attributes:
        variant_id: The variant's id.
        generation: Its generation.
        score: Its selection score (the val score; the train score where every eligible
            parent's val score is the same: :meth:`ArchiveView.entries`) normalised to
            ``[0, 1]`` by the task range.
        children: Number of children ever asked from it (any outcome).
    """

    variant_id: int
    generation: int
    score: float
    children: int


def best_entry(entries: Sequence[ArchiveEntry]) -> ArchiveEntry:
    """The highest-scoring entry; ties go to the earliest generation (``entries`` non-empty)."""
    return min(entries, key=lambda e: (-e.score, e.generation))


def champion_of(variants: Iterable[VariantRecord]) -> VariantRecord | None:
    """The complete variant with the best selected objective: its val score, lowered by its
    constitution's soft penalties when it has any (ties: the earliest generation)."""
    scored = [
        (value, v)
        for v in variants
        if v.state is VariantState.COMPLETE
        and (value := objective(v.scores, v.metrics)) is not None
    ]
    if not scored:
        return None
    return min(scored, key=lambda pair: (-pair[0], pair[1].generation))[1]


def ancestry(variants: Iterable[VariantRecord], variant_id: int | None) -> list[int]:
    """The ids from ``variant_id`` up to its root (empty for None), child first."""
    parents = {v.id: v.parent_id for v in variants}
    path: list[int] = []
    node = variant_id
    while node is not None and node in parents and node not in path:
        path.append(node)
        node = parents[node]
    return path


@dataclass(frozen=True)
class ArchiveView:
    """A frozen snapshot of a run's variants in ascending generation, and what it says.

    Every method is a pure function of the snapshot. Build one with :meth:`of`.

    Attributes:
        variants: The variants, ascending generation (ties keep their given order).
    """

    variants: tuple[VariantRecord, ...]

    @classmethod
    def of(cls, variants: Iterable[VariantRecord]) -> ArchiveView:
        """A view of ``variants`` (sorted by generation unless they already are)."""
        return cls(tuple(sorted(variants, key=_GENERATION)))  # linear when already in order

    def __iter__(self) -> Iterator[VariantRecord]:
        return iter(self.variants)

    def __len__(self) -> int:
        return len(self.variants)

    # -- who leads ---------------------------------------------------------------------------
    def champion(self) -> VariantRecord | None:
        """The complete variant with the best selected objective (see :func:`champion_of`)."""
        return champion_of(self.variants)

    def best_scores(self, stages: Sequence[str] = ("train", "val")) -> dict[str, float | None]:
        """The best score recorded on each stage by any variant (None: no score yet)."""
        return {
            stage: max((v.scores[stage] for v in self.variants if stage in v.scores), default=None)
            for stage in stages
        }

    def best_objective(self, *, up_to: int) -> float | None:
        """The best selected objective of the complete variants of generations ``<= up_to``."""
        return max(
            (
                value
                for v in self.variants
                if v.generation <= up_to
                and v.state is VariantState.COMPLETE
                and (value := objective(v.scores, v.metrics)) is not None
            ),
            default=None,
        )

    def champion_gains(self, *, below: int) -> list[float]:
        """How much each new best objective improved on the previous one, over the
        generations before ``below`` (the run's history of gains)."""
        gains: list[float] = []
        best: float | None = None
        for v in self.variants:
            if v.generation >= below:
                break
            value = objective(v.scores, v.metrics)
            if value is None or v.state is not VariantState.COMPLETE:
                continue
            if best is not None and value > best:
                gains.append(value - best)
            best = value if best is None else max(best, value)
        return gains

    def champions_as_settled(self) -> list[VariantRecord]:
        """The variants that were champion when their generation settled, oldest first: each
        complete variant that beat every earlier one, up to the first unfinished variant."""
        champions = []
        best: float | None = None
        for v in self.variants:
            if not v.state.is_terminal:
                break
            value = objective(v.scores, v.metrics)
            if (
                v.state is VariantState.COMPLETE
                and value is not None
                and (best is None or value > best)
            ):
                best = value
                champions.append(v)
        return champions

    # -- shape -------------------------------------------------------------------------------
    def last_generation(self) -> int:
        """The highest generation in the snapshot (0 when empty)."""
        return max((v.generation for v in self.variants), default=0)

    def seed(self) -> VariantRecord | None:
        """The seed variant (generation 0), if the snapshot holds it."""
        first = self.variants[0] if self.variants else None
        return first if first is not None and first.generation == 0 else None

    def state_counts(self) -> dict[str, int]:
        """How many variants are in each state (lower-case state names)."""
        counts: dict[str, int] = {}
        for v in self.variants:
            counts[v.state.name.lower()] = counts.get(v.state.name.lower(), 0) + 1
        return counts

    def evaluations(self) -> int:
        """How many stage scores the variants hold in all (the evaluation budget's count)."""
        return sum(len(v.scores) for v in self.variants)

    def child_counts(self) -> dict[int, int]:
        """Children per parent id, any outcome (variants without children are absent)."""
        children: dict[int, int] = {}
        for v in self.variants:
            if v.parent_id is not None:
                children[v.parent_id] = children.get(v.parent_id, 0) + 1
        return children

    def children(self, variant_id: int) -> list[int]:
        """The ids of ``variant_id``'s children, ascending generation."""
        return [v.id for v in self.variants if v.parent_id == variant_id and v.id != variant_id]

    def lineage(self, variant_id: int | None) -> list[int]:
        """The ids from ``variant_id`` up to its root (empty for None), child first."""
        return ancestry(self.variants, variant_id)

    # -- generations that have settled -------------------------------------------------------
    def settled(self, horizon: int) -> ArchiveView:
        """The variants of generations ``<= horizon``."""
        return ArchiveView(tuple(v for v in self.variants if v.generation <= horizon))

    def all_terminal(self, horizon: int) -> bool:
        """Whether every variant of generations ``<= horizon`` is in a final state."""
        return all(v.state.is_terminal for v in self.variants if v.generation <= horizon)

    def without_lineages(self, banned: Collection[int]) -> ArchiveView:
        """The snapshot less the ``banned`` variants and all their descendants."""
        if not banned:
            return self
        out = set(banned)
        for v in self.variants:
            if v.parent_id in out:
                out.add(v.id)
        return ArchiveView(tuple(v for v in self.variants if v.id not in out))

    def entries(self, normalise: Callable[[float], float]) -> list[ArchiveEntry]:
        """The eligible parents (complete, with a val score) as selectors see them: the
        objective normalised by ``normalise`` and the number of children each has.

        Where every eligible parent has the same objective (a flat val score, e.g. all 0 on a
        task whose val problems are out of reach until several improvements have stacked
        up), val says nothing to choose by, and the score is the same objective of each
        one's train score instead (its val score where it has none): the evidence left.
        """
        children = self.child_counts()
        eligible = [
            v for v in self.variants if v.state is VariantState.COMPLETE and "val" in v.scores
        ]
        values = [objective(v.scores, v.metrics) or 0.0 for v in eligible]
        if len(set(values)) == 1:
            values = [
                objective({"val": v.scores.get("train", v.scores["val"])}, v.metrics) or 0.0
                for v in eligible
            ]
        return [
            ArchiveEntry(v.id, v.generation, normalise(value), children.get(v.id, 0))
            for v, value in zip(eligible, values, strict=True)
        ]
