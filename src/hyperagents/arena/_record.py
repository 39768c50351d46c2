"""The arena's rounds as variants, the way a report reads any run, and a champion's score on the
held-out adversarial suite (for a run of any level).

A run of the arena level holds one variant per round: generation 0 the seed code agent,
generation *r* the arena's champion after round *r* (its parent the round before's). Each is
scored here on the task's ``val`` split (the same fixed tests levels 1–3 are selected on), and
on ``test`` when it beats every earlier val score (for the report, as the engine does for its
champions). Its ``metrics["search_evaluations"]`` is what the round cost: the code agent
evaluations of the round (screenings, re-scorings, children) plus its val evaluation (none when
the champion did not change: its val score is the previous variant's). Variants are made from
the stored ``arena.round`` events, each step committed, so a run killed at any point records
the missing ones on resume and nothing twice.

:func:`champion_heldout` scores a run's champion (its best val variant within the evaluation
budget, the same rule for every level) on the held-out suite of the run's seed, here in the
engine, and records it as a ``level.heldout`` event (once per champion).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hyperagents.archive import search_evaluations
from hyperagents.arena._agents import arena_sandbox, evaluate, heldout_score
from hyperagents.arena._round import RoundContext
from hyperagents.arena._state import ArenaState
from hyperagents.arena._suite import heldout_cases
from hyperagents.program import Program
from hyperagents.sandbox import Limits
from hyperagents.storages import BaseStorage, VariantRecord, VariantState
from hyperagents.tasks import Split, Task

__all__ = ["HELDOUT_EVENT", "budget_spent", "champion_heldout", "record_rounds"]

#: The event a champion's held-out score is recorded with.
HELDOUT_EVENT = "level.heldout"


def budget_spent(store: BaseStorage, run_id: int) -> int:
    """The evaluations a run of the arena level has spent, counted as the engine counts its
    budget: each variant's search evaluations and its test evaluation."""
    return sum(search_evaluations(v) + ("test" in v.scores) for v in store.list_variants(run_id))


def _rounds(ctx: RoundContext) -> dict[int, dict[str, Any]]:
    """The last ``arena.round`` event's data of each round."""
    found: dict[int, dict[str, Any]] = {}
    for event in ctx.store.list_events(ctx.run_id, kinds=["arena.round"]):
        found[int(event.data["round"])] = dict(event.data)
    return found


def _total(evaluations: Mapping[str, Any]) -> int:
    return sum(int(evaluations.get(key, 0)) for key in ("screens", "scores", "children"))


def record_rounds(
    ctx: RoundContext,
    seed: Program,
    on_variant: Callable[[VariantRecord], None] | None = None,
) -> None:
    """Record the variants of the seed and of every stored round that has none yet (see the
    module docstring), each given to ``on_variant`` once complete.

    Raises:
        SandboxError: The sandbox itself failed (the variant is finished on resume).
    """
    store = ctx.store
    variants = {v.generation: v for v in store.list_variants(ctx.run_id)}
    rounds = _rounds(ctx)
    previous: VariantRecord | None = None
    spent_before, best = 0, None
    for generation in [0, *sorted(rounds)]:
        data = rounds.get(generation, {})
        spent_after = _total(data.get("evaluations", {})) if generation else 0
        variant = variants.get(generation)
        if variant is None or variant.state is not VariantState.COMPLETE:
            if generation:
                state = ArenaState.from_program(ctx.program(str(data["state"])))
                program_id = state.champion().program
            else:
                program_id = ctx.put(seed)
            info = {"operator": "arena-round", "round": generation}
            info |= {"champion": data.get("champion"), "suite_size": data.get("suite_size")}
            variant = _record(ctx, generation, previous, program_id, info, best=best)
            variant = _finish(ctx, variant, previous, spent_after - spent_before, data, best)
            if on_variant is not None:
                on_variant(variant)
        val = variant.scores.get("val")
        if val is not None and (best is None or val > best):
            best = val
        previous, spent_before = variant, spent_after


def _record(
    ctx: RoundContext,
    generation: int,
    parent: VariantRecord | None,
    program_id: str,
    info: dict[str, Any],
    *,
    best: float | None,
) -> VariantRecord:
    """The round's variant, made if missing, with its val score (and test score when it beats
    ``best``)."""
    store = ctx.store
    found = store.get_variant_by_generation(ctx.run_id, generation)
    if found is None:
        made = store.create_variant(
            run_id=ctx.run_id,
            generation=generation,
            parent_id=None if parent is None else parent.id,
            state=VariantState.EVALUATING,
            program_id=program_id,
            meta_info=info,
        )
        found = store.get_variant(made)
    if "val" not in found.scores:
        if _same_program(found, parent):
            assert parent is not None  # for mypy: _same_program says it is there
            _add(ctx, found.id, "val", parent.scores["val"], [], {"reused_from": generation - 1})
        else:
            _score_on(ctx, found, Split.VAL)
        found = store.get_variant(found.id)
    val = found.scores.get("val")
    if val is not None and (best is None or val > best) and "test" not in found.scores:
        _score_on(ctx, found, Split.TEST)
        found = store.get_variant(found.id)
    return found


def _same_program(variant: VariantRecord, parent: VariantRecord | None) -> bool:
    return parent is not None and parent.program_id == variant.program_id and "val" in parent.scores


def _score_on(ctx: RoundContext, variant: VariantRecord, split: Split) -> None:
    """Score ``variant``'s program on the task's ``split`` (0 when it is invalid) and add it."""
    program = ctx.program(str(variant.program_id))
    instances = ctx.task.instances(split)
    result = evaluate(
        program, instances, task=ctx.task, sandbox=ctx.sandbox, limits=ctx.eval_limits
    )
    if result is None:
        _add(ctx, variant.id, split.value, 0.0, [], {"invalid": True})
        return
    _add(ctx, variant.id, split.value, float(result.score), result.results, dict(result.metrics))


def _add(
    ctx: RoundContext,
    variant_id: int,
    split: str,
    score: float,
    results: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> None:
    ctx.store.add_evaluation(
        variant_id=variant_id,
        stage=split,
        split=split,
        score=score,
        n=len(results),
        results=results,
        metrics=metrics,
    )


def _finish(
    ctx: RoundContext,
    variant: VariantRecord,
    parent: VariantRecord | None,
    arena_spent: int,
    data: Mapping[str, Any],
    best: float | None,
) -> VariantRecord:
    """Record what the round cost and mark its variant complete."""
    val_spent = 0 if _same_program(variant, parent) else 1
    seconds = float(data.get("seconds") or 0.0)
    metrics = {"search_evaluations": arena_spent + val_spent, "timing": {"total_seconds": seconds}}
    metrics["arena"] = {"evaluations": arena_spent, "suite_size": data.get("suite_size")}
    ctx.store.update_variant_metrics(variant.id, metrics)
    ctx.store.set_variant_state(variant.id, VariantState.COMPLETE, expected=VariantState.EVALUATING)
    return ctx.store.get_variant(variant.id)


def _champion(variants: list[VariantRecord], budget: int | None) -> VariantRecord | None:
    """The best val variant (ties: the earliest) among the complete ones made within
    ``budget`` search evaluations (None: no limit)."""
    spent, champion = 0, None
    for variant in sorted(variants, key=lambda v: v.generation):
        spent += search_evaluations(variant)
        if budget is not None and spent > budget:
            break
        val = variant.scores.get("val")
        if variant.state is not VariantState.COMPLETE or val is None:
            continue
        if champion is None or val > champion.scores["val"]:
            champion = variant
    return champion


def champion_heldout(
    store: BaseStorage,
    run_id: int,
    *,
    task: Task,
    seed: int,
    size: int,
    sandbox: str,
    budget: int | None = None,
    memory_mb: int = 1024,
    timeout: float = 120.0,
) -> dict[str, Any] | None:
    """Score a run's champion (any level's) on the held-out adversarial suite of ``seed`` and
    record it (a ``level.heldout`` event; recorded once per champion and suite).

    Returns:
        ``{"variant_id", "generation", "val", "test", "heldout", "size", "seed"}``, or None
        when the run has no scored variant.

    Raises:
        ConfigError: The task has no oracle. TaskError: Its oracle's package is missing.
        SandboxError: The sandbox itself failed.
    """
    champion = _champion(store.list_variants(run_id), budget)
    if champion is None:
        return None
    for event in store.list_events(run_id, kinds=[HELDOUT_EVENT]):
        if event.data.get("variant_id") == champion.id and event.data.get("requested") == size:
            return dict(event.data)
    cases = heldout_cases(task, seed=seed, size=size)
    box = arena_sandbox(sandbox, task, memory_mb=memory_mb)
    try:
        limits = Limits(wall_time=timeout, memory_mb=memory_mb)
        program = store.get_program(str(champion.program_id))
        accuracy = heldout_score(program, cases, task=task, sandbox=box, limits=limits)
    finally:
        close = getattr(box, "close", None)
        if callable(close):
            close()
    data: dict[str, Any] = {"variant_id": champion.id, "generation": champion.generation}
    data |= {"val": champion.scores.get("val"), "test": champion.scores.get("test")}
    data |= {"heldout": accuracy, "size": len(cases), "requested": size, "seed": seed}
    message = (
        f"champion (generation {champion.generation}): {accuracy:.3f} on the held-out "
        f"adversarial suite of {len(cases)} cases"
    )
    store.add_event(run_id, HELDOUT_EVENT, message, data=data)
    return data
