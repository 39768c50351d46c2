"""The archive view: pure functions over a frozen snapshot of a run's variants."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hyperagents.archive import ArchiveEntry, ArchiveView, ancestry, best_entry, champion_of
from hyperagents.storages import VariantRecord, VariantState

C, P, R, E = VariantState.COMPLETE, VariantState.PRUNED, VariantState.RUNNING, VariantState.PENDING


def v(
    vid: int,
    generation: int,
    parent: int | None,
    state: VariantState = C,
    val: float | None = None,
    *,
    alignment: float | None = None,
    **scores: float,
) -> VariantRecord:
    if val is not None:
        scores["val"] = val
    metrics: dict[str, Any] = {}
    if alignment is not None:
        metrics["constitution"] = {"alignment": alignment}
    return VariantRecord(
        id=vid,
        run_id=1,
        generation=generation,
        parent_id=parent,
        program_id=f"p{vid}",
        state=state,
        scores=scores,
        metrics=metrics,
    )


# seed(10) ─┬─ 11 (0.6) ─┬─ 13 (0.9, pruned)
#           │            └─ 14 (0.7)
#           └─ 12 (0.6) ─── 15 (running)
ARCHIVE = [
    v(10, 0, None, val=0.5, train=0.4),
    v(11, 1, 10, val=0.6, train=0.8),
    v(12, 2, 10, val=0.6),
    v(13, 3, 11, P, train_subset=0.1),
    v(14, 4, 11, val=0.7),
    v(15, 5, 12, R),
]
VIEW = ArchiveView.of(ARCHIVE)


def test_of_orders_by_generation_and_the_view_is_frozen() -> None:
    shuffled = ArchiveView.of(reversed(ARCHIVE))
    assert [x.generation for x in shuffled] == [0, 1, 2, 3, 4, 5]
    assert shuffled == VIEW and len(VIEW) == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        VIEW.variants = ()  # type: ignore[misc]


def test_champion_is_the_best_objective_ties_to_the_earliest() -> None:
    assert VIEW.champion() is ARCHIVE[4]
    tied = ArchiveView.of(ARCHIVE[:3])
    assert tied.champion() is ARCHIVE[1]  # 11 and 12 both 0.6: the earlier generation
    assert champion_of(ARCHIVE) is ARCHIVE[4]
    assert ArchiveView.of([]).champion() is None


def test_a_soft_penalty_lowers_the_champions_objective() -> None:
    penalised = [*ARCHIVE[:4], v(14, 4, 11, val=0.7, alignment=0.5)]
    assert champion_of(penalised) is ARCHIVE[1]  # 0.7 x 0.5 < 0.6
    assert ArchiveView.of(penalised).best_objective(up_to=9) == pytest.approx(0.6)


def test_best_scores_counts_and_shape() -> None:
    assert VIEW.best_scores() == {"train": 0.8, "val": 0.7}
    assert VIEW.best_scores(("test",)) == {"test": None}
    assert VIEW.state_counts() == {"complete": 4, "pruned": 1, "running": 1}
    assert VIEW.evaluations() == 2 + 2 + 1 + 1 + 1
    assert VIEW.last_generation() == 5 and ArchiveView.of([]).last_generation() == 0
    assert VIEW.seed() is ARCHIVE[0] and ArchiveView.of(ARCHIVE[1:]).seed() is None


def test_child_counts_children_and_lineage() -> None:
    assert VIEW.child_counts() == {10: 2, 11: 2, 12: 1}
    assert VIEW.children(11) == [13, 14] and VIEW.children(14) == []
    assert VIEW.lineage(14) == [14, 11, 10] and VIEW.lineage(None) == []
    assert ancestry(ARCHIVE, 15) == [15, 12, 10]
    looped = [v(1, 1, 2), v(2, 2, 1)]  # a corrupt record never loops forever
    assert ancestry(looped, 1) == [1, 2]


def test_settled_generations() -> None:
    assert [x.id for x in VIEW.settled(2)] == [10, 11, 12]
    assert VIEW.all_terminal(4) and not VIEW.all_terminal(5)


def test_banned_lineages_are_cut_with_their_descendants() -> None:
    assert [x.id for x in VIEW.without_lineages([11])] == [10, 12, 15]
    assert [x.id for x in VIEW.without_lineages([12, 13])] == [10, 11, 14]
    assert VIEW.without_lineages([]) is VIEW


def test_entries_are_the_eligible_parents_with_their_children() -> None:
    entries = VIEW.entries(lambda score: score * 2)
    assert entries == [
        ArchiveEntry(10, 0, 1.0, 2),
        ArchiveEntry(11, 1, 1.2, 2),
        ArchiveEntry(12, 2, 1.2, 1),
        ArchiveEntry(14, 4, 1.4, 0),
    ]
    assert best_entry(entries[:3]).variant_id == 11  # ties: the earliest generation


def test_a_flat_val_score_leaves_selection_to_the_train_score() -> None:
    # val 0 everywhere (problems out of reach so far): the train score is the evidence left,
    # with the constitution's penalty as on val; a variant without one keeps its val score
    flat = ArchiveView.of(
        [
            v(1, 0, None, val=0.0, train=0.0),
            v(2, 1, 1, val=0.0, train=0.64),
            v(3, 2, 2, val=0.0, train=0.8, alignment=0.5),
            v(4, 3, 2, val=0.0),
            v(5, 4, 2, P, train=0.9),  # not eligible: no say
        ]
    )
    entries = flat.entries(lambda score: score)
    assert [(e.variant_id, e.score) for e in entries] == [(1, 0.0), (2, 0.64), (3, 0.4), (4, 0.0)]
    assert best_entry(entries).variant_id == 2
    # one val score apart: val decides again, train is not looked at
    apart = ArchiveView.of([*flat.variants[:2], v(3, 2, 2, val=0.005, train=0.1)])
    scores = [(e.variant_id, e.score) for e in apart.entries(lambda score: score)]
    assert scores == [(1, 0.0), (2, 0.0), (3, 0.005)]
    assert champion_of(flat.variants).id == 1  # the champion is still the best val (earliest)


def test_gains_and_champions_as_generations_settled() -> None:
    history = [
        v(1, 0, None, val=0.5),
        v(2, 1, 1, val=0.6),
        v(3, 2, 1, E, val=0.9),  # waits for a person: not a champion
        v(4, 3, 2, val=0.55),
        v(5, 4, 2, val=0.8),
        v(6, 5, 5, R),
        v(7, 6, 5, val=0.95),  # after an unfinished generation: not settled yet
    ]
    view = ArchiveView.of(history)
    assert view.champion_gains(below=5) == pytest.approx([0.1, 0.2])
    assert view.champion_gains(below=2) == pytest.approx([0.1])
    assert [x.id for x in view.champions_as_settled()] == [1, 2, 5]
    assert view.best_objective(up_to=3) == pytest.approx(0.6)
    assert view.best_objective(up_to=-1) is None
