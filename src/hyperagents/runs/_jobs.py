"""The ask side: handing out the next generation's job, and choosing its parent.

A job is rebuilt from storage alone (its parent, the archive settled when it was asked, seeds
derived from the run's), so the job a resumed run redoes is the job it first handed out.
Asking never runs agents' evaluations: when earlier work that selection depends on is
unfinished, the engine finishes it first (:meth:`Engine.finish_unfinished`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hyperagents.archive import ArchiveEntry, ArchiveView, ScoreChildSelector, make_selector
from hyperagents.evaluation import TASK_AGENT as BASELINE_FILE
from hyperagents.evaluation import workspace
from hyperagents.exceptions import RunStateError
from hyperagents.improvers import ImproveRequest
from hyperagents.runs._baseline_trials import baseline_trials
from hyperagents.runs._config import Mode
from hyperagents.runs._context import RunContext
from hyperagents.runs._report import Reports
from hyperagents.runs._review import Reviews
from hyperagents.storages import EventSpec, RunRecord, VariantRecord, VariantState
from hyperagents.tasks import declared_space

__all__ = ["Job", "Jobs"]

_NO_SELECTOR_PROGRAM = (
    "--selector program: the champion has no select_parent.py, so parents are chosen by "
    "score_child (until a variant adds one)"
)


@dataclass(frozen=True)
class Job:
    """A generation handed out by :meth:`Run.ask`: produce a child for ``parent_id``.

    Attributes:
        variant_id: The child's variant (already stored, state ``RUNNING``).
        generation: The child's generation.
        parent_id: The parent variant.
        request: What the improver gets (workspace files, report, seed).
    """

    variant_id: int
    generation: int
    parent_id: int
    request: ImproveRequest


class Jobs:
    """Creates the next generation's variant with its parent, and (re)builds its job.

    Args:
        ctx: The run context.

    Attributes:
        target: The generation target of the drive in progress (None outside one), shown to
            meta agents as the generations left.
        reviews: The run's reviewer (runs with ``review`` on).
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self.reviews = Reviews(ctx)
        self._reports = Reports(ctx, self.reviews)
        self._ask_seconds: dict[int, float] = {}
        self.target: int | None = None

    def check_settings(self) -> None:
        """Warn about settings the program makes meaningless (see :meth:`RunContext.warn`)."""
        ctx = self._ctx
        if (
            ctx.config.selector == "program"
            and ctx.mode is not Mode.NO_ARCHIVE
            and "select_parent.py" not in ctx.seed_program()
        ):
            ctx.warn(_NO_SELECTOR_PROGRAM)

    def ready_for(self, variants: Sequence[VariantRecord], generation: int) -> bool:
        """Whether the generations that ``generation`` depends on have all settled."""
        return ArchiveView.of(variants).all_terminal(self._ctx.horizon(generation))

    def ask(
        self, variants: Sequence[VariantRecord], *, record: RunRecord | None = None
    ) -> tuple[Job, VariantRecord]:
        """Create the next generation's variant (owned by this run object) and its job.

        Args:
            variants: The run's variants as they are now.
            record: The run's record as just read, for people's steering (default: read).

        Returns:
            The job, and the new variant's record.

        Raises:
            RunStateError: The generations selection depends on have not settled, or nothing
                is eligible as a parent.
        """
        ctx = self._ctx
        with ctx.lock:
            start = time.perf_counter()
            view = ArchiveView.of(variants)
            generation = view.last_generation() + 1
            horizon = ctx.horizon(generation)
            if not view.all_terminal(horizon):
                raise RunStateError(
                    f"generation {generation} must wait for generations <= {horizon} to finish"
                )
            snapshot = view.settled(horizon)
            parent_id, how = self._select_parent(snapshot, generation, record)

            def create() -> VariantRecord:  # and read back, in one transaction
                variant_id = ctx.storage.create_variant(
                    run_id=ctx.run_id,
                    generation=generation,
                    parent_id=parent_id,
                    state=VariantState.RUNNING,
                    owner=ctx.owner,
                    event=EventSpec(
                        "variant.created",
                        f"generation {generation} from variant {parent_id} ({how})",
                        {"generation": generation, "parent_id": parent_id, "selector": how},
                    ),
                )
                return ctx.variant(variant_id)

            variant = ctx.storage.atomically(create)
            variant_id = variant.id
            job = self.build_job(variant, variants)
            self._ask_seconds[variant_id] = time.perf_counter() - start
            return job, variant

    def take_ask_seconds(self, variant_id: int) -> float:
        """The seconds asking for ``variant_id`` took in this process (0 if not asked here)."""
        return self._ask_seconds.pop(variant_id, 0.0)

    def build_job(self, variant: VariantRecord, variants: Sequence[VariantRecord]) -> Job:
        """Rebuild the job of ``variant`` from storage (deterministic: used again on resume)."""
        ctx = self._ctx
        assert variant.parent_id is not None
        parent = ctx.terminal(variant.parent_id)
        assert parent.program_id is not None
        program = ctx.program(parent.program_id)
        if ctx.mode is Mode.FROZEN_META:
            program = ctx.with_seed_meta(program)
        snapshot = ArchiveView.of(variants).settled(ctx.horizon(variant.generation))
        if ctx.mode.baseline:  # the parent is the seed; the sampler is told every outcome
            seed_values = declared_space(program.text(BASELINE_FILE)).values
            report: Mapping[str, Any] = {"trials": baseline_trials(snapshot, seed_values)}
        else:
            self.reviews.ensure(snapshot)  # (each reviewed once: after its evaluation, or here)
            report = self._reports.report(variant, parent, snapshot, self.target)
        seed = ctx.derive_seed(variant.generation, "meta")
        llm = ctx.llm_handler(variant.id, variant.generation, "improve")
        request = ImproveRequest(program, report, seed, llm=llm)
        return Job(variant.id, variant.generation, parent.id, request)

    # -- parent selection ----------------------------------------------------------------------
    def _select_parent(
        self, snapshot: ArchiveView, generation: int, record: RunRecord | None = None
    ) -> tuple[int, str]:
        """The parent of generation ``generation`` and how it was chosen."""
        ctx = self._ctx
        banned, pin = ctx.take_steering(record)
        snapshot = snapshot.without_lineages(banned)
        if pin is not None:
            # A person's override, used once: the next child is made from this variant.
            eligible = {v.id for v in snapshot if v.state is VariantState.COMPLETE}
            if pin[0] in eligible:
                return pin[0], f"pinned by {pin[1]}"
        entries = snapshot.entries(ctx.task.normalise)
        if not entries:
            raise RunStateError("no eligible parent: the seed variant has not completed")
        rng = random.Random(ctx.derive_seed(generation, "select"))
        if ctx.mode is Mode.NO_ARCHIVE:
            best = snapshot.champion()
            assert best is not None
            return best.id, "best (no-archive mode)"
        if ctx.mode.baseline:
            seed = next(v for v in snapshot if v.generation == 0)
            return seed.id, f"seed ({ctx.mode.value} baseline)"
        name = ctx.config.selector
        if name == "program":
            chosen = self._select_with_program(snapshot, entries, generation)
            if chosen is not None:
                return chosen, "program"
            return ScoreChildSelector().select(entries, rng), "score_child (fallback)"
        selector = make_selector(name, tournament_size=ctx.config.tournament_size)
        return selector.select(entries, rng), name

    def _select_with_program(
        self, snapshot: ArchiveView, entries: Sequence[ArchiveEntry], generation: int
    ) -> int | None:
        """The parent the champion's own ``select_parent.py`` picks (None: it has none, or it
        failed, which is recorded)."""
        ctx = self._ctx
        best = snapshot.champion()
        if best is None or best.program_id is None:
            return None
        program = ctx.program(best.program_id)
        if "select_parent.py" not in program:
            ctx.warn(_NO_SELECTOR_PROGRAM)
            return None
        archive = [
            {
                "variant_id": e.variant_id,
                "generation": e.generation,
                "score": e.score,
                "children": e.children,
            }
            for e in entries
        ]
        request = {
            "action": "select",
            "archive": archive,
            "seed": ctx.derive_seed(generation, "select-program"),
        }
        with workspace(program) as path:
            result = ctx.sandbox.run(path, request, limits=ctx.limits(ctx.config.select_timeout))
        valid = {e.variant_id for e in entries}
        if result.ok and isinstance(result.result, int) and result.result in valid:
            return result.result
        returned = repr(result.result)[:200]
        why = result.reason if not result.ok else f"returned {returned}, not an eligible id"
        ctx.event(
            "selector.fallback", f"select_parent.py of variant {best.id} failed: {why}", best.id
        )
        return None
