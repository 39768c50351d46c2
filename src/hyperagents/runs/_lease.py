"""The lease: which engine drives a run, and which engine works on each unfinished variant.

An engine claims the run's engine slot (compare-and-set on the holder it read), keeps it and
its variants alive with heartbeats, and lets go when it stops. Work whose owner is gone (a dead
process on this host, or a heartbeat older than the grace period elsewhere) is taken over;
work a live owner holds is never taken. An engine that joined a run another engine leads (see
:mod:`hyperagents.runs._crew`) holds no slot: it takes the slot over only when its holder is
gone, and leads from then on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence

from hyperagents.exceptions import RunStateError
from hyperagents.runs._crew import Crew
from hyperagents.runs._owner import engine_alive, owner_is_dead
from hyperagents.runs._scope import LeaseScope
from hyperagents.storages import EventSpec, RunStatus, VariantRecord, VariantState

__all__ = ["Heartbeat", "Lease"]

logger = logging.getLogger("hyperagents")

#: The event that records how an engine's drive ended, by the run's final status.
_END_KINDS = {
    RunStatus.COMPLETE: "run.completed",
    RunStatus.STOPPED: "run.stopped",
    RunStatus.FAILED: "run.failed",
}


class Lease:
    """Claims, keeps and gives back the run's engine slot and its unfinished variants.

    Args:
        ctx: The run as its engine sees it (the engine's run context, or a
            :class:`~hyperagents.runs.HeldRun`); its ``owner`` token is the claimant.

    Attributes:
        crew: This engine's row among the run's engines.
        leading: Whether this engine holds the run's engine slot (it leads the run).
        joined: Whether this drive joined the run (several engines may work on it).
    """

    def __init__(self, ctx: LeaseScope) -> None:
        self._ctx = ctx
        self.crew = Crew(ctx)
        self.leading = False
        self.joined = False

    def _holder(self) -> tuple[str | None, bool]:
        """The run's engine slot as read now, and whether another live engine holds it."""
        ctx = self._ctx
        record = ctx.record()
        holder = record.engine
        alive = bool(holder) and holder != ctx.owner
        return holder, alive and engine_alive(record, grace=ctx.config.heartbeat_grace)

    def try_lead(self, *, empty: bool = False) -> bool:
        """Take the engine slot if its holder is gone, or (``empty``: when starting) if it is
        empty (compare-and-set on the holder read); return whether this engine leads now.

        Once a drive is under way an empty slot is left alone: the lead emptied it when it
        recorded how the run ended, which nobody records again.
        """
        ctx = self._ctx
        if self.leading:
            return True
        holder, alive = self._holder()
        if alive or (not holder and not empty):
            return False
        if ctx.storage.claim_run_engine(ctx.run_id, ctx.owner, expected=holder):
            self.leading = True
            if holder and holder != ctx.owner:
                self.crew.mark_lost([holder])
                logger.warning(
                    "run %r: its lead %s is gone; this engine leads now", ctx.name, holder
                )
        return self.leading

    def claim_engine(self) -> None:
        """Become the run's engine: judge the holder read now, then compare-and-set on it.

        Raises:
            RunStateError: Another live engine holds the run, or claimed it between the read
                and the claim (nothing was changed).
        """
        ctx = self._ctx
        # Whatever the status: a stopped run's engine may still be finishing its work.
        holder, alive = self._holder()
        if alive:
            raise RunStateError(f"run {ctx.name!r} is being driven by another engine ({holder})")
        if not ctx.storage.claim_run_engine(ctx.run_id, ctx.owner, expected=holder):
            winner = ctx.record().engine
            raise RunStateError(
                f"run {ctx.name!r} is being driven by another engine ({winner}), which "
                "claimed it first"
            )
        self.leading = True

    def give_back(self) -> None:
        """Give the engine slot back unchanged (a start that failed; best effort)."""
        with contextlib.suppress(Exception):
            self._ctx.storage.release_run_engine(self._ctx.run_id, self._ctx.owner)
        self.leading = False
        self.crew.leave()

    def renew(self, variant_ids: Sequence[int]) -> bool:
        """Beat the heart of the variants in flight and of this engine, and renew the engine
        slot (a member takes it over if its holder is gone).

        Returns:
            False when another engine took the run over (found this one's heartbeat stale)
            and this engine did not join the run (a member goes on working).
        """
        ctx = self._ctx
        if variant_ids:
            ctx.storage.heartbeat(ctx.owner, list(variant_ids))
        self.crew.beat()
        if not self.leading:
            self.try_lead()
            return True
        if ctx.storage.claim_run_engine(ctx.run_id, ctx.owner, expected=ctx.owner):
            return True
        self.leading = False
        return self.joined

    def let_go(self, status: RunStatus, message: str, elapsed: float) -> None:
        """Record how a drive ended if this engine still holds the run: its time, then its
        final status with the engine slot emptied (one compare-and-set). An engine that lost
        the run to another, or a member, leaves both to the lead (a member whose lead is gone
        takes its place first)."""
        ctx = self._ctx
        self.crew.leave()
        if not self.leading and self.joined and not self.try_lead():
            return
        self.leading = False
        if ctx.record().engine == ctx.owner:
            ctx.store_elapsed(elapsed)
        released = ctx.storage.release_run_engine(
            ctx.run_id,
            ctx.owner,
            status=status,
            event=EventSpec(_END_KINDS.get(status, f"run.{status.name.lower()}"), message),
        )
        if not released:
            logger.warning(
                "run %r is held by another engine now: its status is left to that engine",
                ctx.name,
            )

    def claim_orphans(self, variants: Sequence[VariantRecord]) -> list[int]:
        """Take over non-terminal variants whose owner is gone (or that nobody owns); return
        them with the unfinished ones this run object holds already."""
        ctx = self._ctx
        claimed = []
        gone: set[str] = set()
        now = time.time()
        for v in variants:
            if v.state.is_terminal or v.owner == ctx.owner:
                if v.owner == ctx.owner and not v.state.is_terminal:
                    claimed.append(v.id)
                continue
            stale = not v.owner or owner_is_dead(v.owner)
            if not stale and v.heartbeat_at is not None:
                stale = now - v.heartbeat_at.timestamp() > ctx.config.heartbeat_grace
            if stale and ctx.storage.claim_variant(
                v.id,
                ctx.owner,
                expected_owner=v.owner,
                event=EventSpec(
                    "variant.reclaimed", f"taken over from {v.owner}", {"previous_owner": v.owner}
                )
                if v.owner
                else EventSpec("variant.claimed", "work picked up"),
            ):
                claimed.append(v.id)
                gone.add(v.owner or "")
        self.crew.mark_lost(gone)
        return claimed

    def release_unfinished(self) -> None:
        """Give up unfinished work so any engine (this process included) can resume it now."""
        ctx = self._ctx
        with contextlib.suppress(Exception):  # best effort: heartbeats expire anyway
            for v in ctx.variants(states=[VariantState.RUNNING, VariantState.EVALUATING]):
                if v.owner == ctx.owner:
                    ctx.storage.claim_variant(v.id, "", expected_owner=ctx.owner)


class Heartbeat:
    """A daemon thread that renews a lease every ``heartbeat_interval`` while a drive lasts,
    and stores the time spent so far (so the time budget counts it even if the engine dies).

    Args:
        lease: The lease to renew.
        ctx: The run context.
        in_flight: The variants in flight now.
        spent: Seconds spent on the run so far.
        on_lost: Called (once, then the thread ends) when another engine took the run over.
    """

    def __init__(
        self,
        lease: Lease,
        ctx: LeaseScope,
        *,
        in_flight: Callable[[], list[int]],
        spent: Callable[[], float],
        on_lost: Callable[[], None],
    ) -> None:
        self._lease, self._ctx = lease, ctx
        self._in_flight, self._spent, self._on_lost = in_flight, spent, on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name="hyperagents-heartbeat", daemon=True
        )

    def start(self) -> None:
        """Start beating."""
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (the thread ends at its next wake-up)."""
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.wait(self._ctx.config.heartbeat_interval):
            try:
                if not self._lease.renew(self._in_flight()):
                    # Another engine found this one's heartbeat stale and took the run over:
                    # start nothing more; the work in flight finishes.
                    logger.error("run %r was taken over by another engine", self._ctx.name)
                    self._on_lost()
                    return
                if self._lease.leading:  # a crew's lead keeps the run's time
                    self._ctx.store_elapsed(self._spent())
            except Exception as exc:  # keep beating; the main loop reports storage errors
                logger.warning("heartbeat failed: %s", exc)
