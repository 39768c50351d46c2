"""The gate: what a child must pass besides its scores before it counts.

Before a child runs, the run's constitution judges its program: a hard violation rejects it, a
soft one lowers its objective. After it is evaluated, a would-be champion may be held back —
quarantined when its gain looks too good (re-evaluated on held-out data, then compared with its
own stages and the run's history of gains), or left waiting for a person's approval.

The decisions themselves are pure functions of a child and an archive snapshot
(:func:`would_lead`, :func:`quarantine_reason`, :func:`leader_approval_reason`); :class:`Gate`
applies them to a run and records what they decided.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hyperagents.archive import ArchiveView
from hyperagents.constitution import Constitution, load_constitution, objective
from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.runs._config import RunConfig
from hyperagents.runs._context import RunContext
from hyperagents.runs._meta_change import state_change
from hyperagents.runs._meta_files import changed_meta_files
from hyperagents.storages import EventSpec, VariantRecord, VariantState
from hyperagents.tasks import Split, Task

__all__ = [
    "Gate",
    "Settlement",
    "check_seed",
    "leader_approval_reason",
    "quarantine_reason",
    "run_constitution",
    "would_lead",
]


@dataclass(frozen=True)
class Settlement:
    """What an evaluated child becomes.

    Attributes:
        state: ``COMPLETE``, or ``PENDING`` (quarantined or awaiting approval).
        kind: The event recorded with it.
        reason: The variant's recorded reason (None when complete).
        message: The event's message.
    """

    state: VariantState
    kind: str
    reason: str | None
    message: str


# -- pure decisions ----------------------------------------------------------------------------
def would_lead(
    variant: VariantRecord, archive: ArchiveView, *, horizon: int
) -> tuple[float, float | None] | None:
    """``(objective, best before)`` when ``variant`` beats every complete variant with a val
    score among the generations ``<= horizon`` (those settled when it was asked), whatever
    people decided about them since; None otherwise."""
    value = objective(variant.scores, variant.metrics)
    if value is None:
        return None
    best = archive.best_objective(up_to=horizon)
    return (value, best) if best is None or value > best else None


def quarantine_reason(
    variant: VariantRecord,
    archive: ArchiveView,
    *,
    horizon: int,
    config: RunConfig,
    score_range: tuple[float, float],
) -> str | None:
    """Why a re-checked would-be champion's gain looks too good to promote unreviewed: its val
    and held-out scores (or val and train) lie far apart, or it jumps far beyond the run's
    largest earlier gain. None: it looks fine. ``variant`` has ``val`` and ``recheck`` scores."""
    low, high = score_range
    span = (high - low) or 1.0
    val, recheck = variant.scores["val"], variant.scores["recheck"]
    gap = config.quarantine_gap
    if abs(val - recheck) > gap * span:
        return (
            f"val {val:.6g} but {recheck:.6g} when re-evaluated on held-out data "
            f"(gap over {gap:g} of the range)"
        )
    train = variant.scores.get("train")
    if train is not None and val - train > gap * span:
        return f"val {val:.6g} far above train {train:.6g} (gap over {gap:g} of the range)"
    lead = would_lead(variant, archive, horizon=horizon)
    if lead is not None and lead[1] is not None:
        gain = lead[0] - lead[1]
        gains = archive.champion_gains(below=horizon + 1)
        if len(gains) >= 2 and gain > config.quarantine_jump * max(gains):
            return (
                f"a jump of {gain:.6g} over the champion, more than "
                f"{config.quarantine_jump:g}x the run's largest earlier gain {max(gains):.6g}"
            )
    return None


def leader_approval_reason(
    variant: VariantRecord, archive: ArchiveView, *, horizon: int, config: RunConfig
) -> str | None:
    """Why a child waits for approval because it would become champion (``approval`` is
    ``manual``, or ``threshold`` with a gain of at least ``approval_threshold``); None when it
    would not, or when approval is ``auto``."""
    if config.approval == "auto":
        return None
    lead = would_lead(variant, archive, horizon=horizon)
    if lead is None or lead[1] is None:
        return None
    value, best = lead[0], lead[1]
    needed = config.approval_threshold if config.approval == "threshold" else 0.0
    if value - best >= needed:
        return f"awaiting approval: would become champion (val objective {value:.6g} > {best:.6g})"
    return None


# -- the run's constitution --------------------------------------------------------------------
def instances_of(task: Task) -> Callable[[str], list[tuple[str, Any]]]:
    """``split → (id, inputs)`` of a task's instances, for constitution rules."""

    def pairs(split: str) -> list[tuple[str, Any]]:
        try:
            chosen = Split(split)
        except ValueError:
            raise ConfigError(f"unknown split {split!r} in a constitution rule") from None
        return [(i.id, i.inputs) for i in task.instances(chosen)]

    return pairs


def _task_constitution(task: Task) -> Constitution:
    """A task's default constitution (a file path is relative to the task's module)."""
    source = task.constitution
    if isinstance(source, str):
        path = Path(source)
        if not path.is_absolute():
            module = sys.modules.get(type(task).__module__)
            where = getattr(module, "__file__", None)
            if where:
                path = Path(where).parent / path
        return load_constitution(path)
    assert source is not None
    return load_constitution(source)


def run_constitution(config: RunConfig, task: Task) -> RunConfig:
    """``config`` with the task's default constitution when it names none itself."""
    if config.constitution is None and task.constitution is not None:
        return config.model_copy(update={"constitution": _task_constitution(task).as_config()})
    return config


def check_seed(config: RunConfig, task: Task, seed: Program) -> None:
    """Raises: ConfigError: the seed program breaks the run's constitution."""
    if config.constitution is None:
        return
    verdict = load_constitution(config.constitution).check(
        seed, None, instances=instances_of(task), task=task
    )
    if verdict.rejected:
        raise ConfigError(f"the seed program breaks the run's {verdict.reason()}")


class Gate:
    """The run's constitution, quarantine and approval, applied to its children.

    Args:
        ctx: The run context.
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        cfg = ctx.config
        self._constitution = (
            None if cfg.constitution is None else load_constitution(cfg.constitution)
        )

    @property
    def judges(self) -> bool:
        """Whether the run has a constitution to judge children by."""
        return self._constitution is not None

    def judge(self, variant: VariantRecord) -> VariantRecord:
        """Check a child against the run's constitution before it runs: a hard violation
        rejects it (recorded with the rule and the lines); soft ones record its alignment.

        Returns:
            The variant as it now is.
        """
        ctx = self._ctx
        assert self._constitution is not None and variant.program_id is not None
        parent = (
            ctx.program(ctx.terminal(variant.parent_id).program_id or "")
            if variant.parent_id is not None
            else None
        )
        verdict = self._constitution.check(
            ctx.program(variant.program_id),
            parent,
            instances=instances_of(ctx.task),
            task=ctx.task,
        )
        if not verdict.violations:
            return variant
        record = verdict.as_dict()
        ctx.storage.update_variant_metrics(variant.id, {"constitution": record})
        variant = replace(variant, metrics={**variant.metrics, "constitution": record})
        if not verdict.rejected:
            ctx.event(
                "variant.penalised",
                f"{verdict.reason()}; alignment {verdict.alignment:.4g}",
                variant.id,
                by="constitution",
                **record,
            )
            return variant
        changed = ctx.storage.set_variant_state(
            variant.id,
            VariantState.REJECTED,
            expected=VariantState.RUNNING,
            reason=verdict.reason(),
            release=True,
            event=EventSpec("variant.rejected", verdict.reason(), {"by": "constitution", **record}),
        )
        return (
            replace(variant, state=VariantState.REJECTED, reason=verdict.reason())
            if changed
            else ctx.variant(variant.id)
        )

    def rechecks(self, variant: VariantRecord) -> bool:
        """Whether quarantine re-checks this child on held-out data: it would take over from a
        champion (the seed, with nothing to beat, is never held back)."""
        if not self._ctx.config.quarantine:
            return False
        archive = ArchiveView.of(self._ctx.variants())
        lead = would_lead(variant, archive, horizon=self._ctx.horizon(variant.generation))
        return lead is not None and lead[1] is not None

    def settle(self, variant: VariantRecord, message: str) -> Settlement:
        """What an evaluated child becomes: quarantined, waiting for approval, or complete
        (recorded with ``message``)."""
        cfg = self._ctx.config
        rechecked = "recheck" in variant.scores
        archive = ArchiveView.of(
            self._ctx.variants() if cfg.approval != "auto" or rechecked else []
        )
        horizon = self._ctx.horizon(variant.generation)
        suspicious = (
            quarantine_reason(
                variant,
                archive,
                horizon=horizon,
                config=cfg,
                score_range=self._ctx.task.score_range,
            )
            if rechecked
            else None
        )
        waiting = self._approval_needed(variant, archive, horizon)  # may record meta_state
        if suspicious is not None:
            reason = f"quarantined: {suspicious}"
            return Settlement(VariantState.PENDING, "variant.quarantined", reason, reason)
        if waiting is not None:
            return Settlement(VariantState.PENDING, "variant.pending", waiting, waiting)
        return Settlement(VariantState.COMPLETE, "variant.completed", None, message)

    def _approval_needed(
        self, variant: VariantRecord, archive: ArchiveView, horizon: int
    ) -> str | None:
        """Why a person must approve this evaluated child first (None: it is accepted).

        "Would become champion" compares with every variant that has a val score among the
        generations settled when this one was asked, whatever people decided about them since:
        the verdict depends on the run, not on timing.
        """
        ctx = self._ctx
        lead = leader_approval_reason(variant, archive, horizon=horizon, config=ctx.config)
        if lead is not None:
            return lead
        if ctx.config.approval == "manual" and variant.parent_id is not None:
            parent = ctx.terminal(variant.parent_id)
            assert parent.program_id is not None and variant.program_id is not None
            changed = ctx.program(parent.program_id).changed_paths(ctx.program(variant.program_id))
            return self._meta_code_change(variant, parent, changed)
        return None

    def _meta_code_change(
        self, variant: VariantRecord, parent: VariantRecord, changed: Iterable[str]
    ) -> str | None:
        """Why a child that changes the code of a meta file waits for approval (None when it
        changes none, or only the state a meta agent keeps in its state file or as literals in
        its own source: that is recorded as ``variant.meta_state`` and does not wait)."""
        ctx = self._ctx
        meta = changed_meta_files(changed, ctx.task)
        if not meta:
            return None
        assert parent.program_id is not None and variant.program_id is not None
        old, new = ctx.program(parent.program_id), ctx.program(variant.program_id)
        code = [p for p in meta if not state_change(p, old.get(p), new.get(p))]
        if code:
            return f"awaiting approval: changes the meta agent's code ({', '.join(code)})"
        ctx.event(
            "variant.meta_state",
            f"the meta agent adapted its own state only ({', '.join(meta)}); "
            "its code is unchanged, so it does not wait for approval",
            variant.id,
        )
        return None
