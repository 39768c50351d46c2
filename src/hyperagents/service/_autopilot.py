"""The autopilot: a serving champion that watches itself, improves and proves the improvement.

:class:`Autopilot` ties the service's parts together, one :meth:`~Autopilot.step` at a time
(``hyperagents serve RUN --improve`` runs it in a thread beside the HTTP service):

1. **Watch.** Each answered request of the champion becomes an :class:`Observation` for the
   :class:`Monitor`, with a quality where there is evidence: a label is scored by the task's own
   (trusted) scorer, else a feedback score is taken as given. Requests are read in id order;
   one without feedback is counted without a quality once it is ``feedback_wait_s`` old (a
   label that comes later is not seen by the monitor).
2. **Decide when.** While the degradation alarm stands, the :class:`Trigger` decides whether
   to improve now (evidence, cool-down, frequency, budget, the operator's force or suppress).
3. **Plan and improve.** The latest ``live_examples`` requests with a label or feedback
   (:class:`LiveExample`) go to :func:`improve_with_plans`, in a thread of its own: the
   planning agent plans, an improvement run starts from the serving champion's program with
   the live data in train (a held-back slice apart), its criteria are checked, it re-plans
   when they are unmet. The champion keeps answering all the while: nothing waits for it.
   What the improvement's models spent counts against the trigger's budget: its runs'
   recorded calls (planning and teaching included) and the planning calls the service's log
   holds that never reached a run (:func:`improvement_spend`), whether it succeeded or failed.
4. **Prove.** A candidate whose plan met its criteria enters the service's routing, first in
   shadow (it answers the same requests beside the champion; labelled requests give paired
   qualities), then under A/B with a share of the traffic; the :class:`SequentialTest`
   decides. A promotion needs a person's approval when ``approval`` is set
   (:func:`decide_candidate`); a regression is rolled back at once.
5. **Promote or roll back** through the storage's compare-and-set routing, every decision in
   the service's log (``autopilot.*`` events), and the watch starts afresh on the new
   champion.

Restarts. The autopilot's state (its stage, the request ids where the watch and the test began,
the trigger's state, the plans, and its settings, which the dashboard reads) is recorded in the
service's log at every change of stage (:class:`~hyperagents.service._pilot_state.PilotState`);
a new process reads it back and rebuilds the monitor and the test by reading the same requests
again (deterministic). An improvement that was running when the process died
(:mod:`hyperagents.service._pilot_improving`): its planning calls whose plan's run exists are
attached to that run; if none of its runs had started (the process died while planning) and
it was not resumed before, it is **resumed** with the same live examples, its plans' models
answering the requests already paid for from the calls the dead process journaled, which are
attached, once, to the run that carries the plan out. Otherwise it is recorded as
interrupted (its runs stay resumable by hand), its waiting planning calls given up with the
reason, and what it spent up to the kill (its runs' calls and its orphaned planning calls,
durable in the log as they were made) added to the trigger's budget in the same transaction
as the new state (so a second restart does not count it again); the autopilot watches again
and the trigger may start another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from hyperagents.exceptions import ConfigError, HyperagentsError
from hyperagents.service._live import LiveExample
from hyperagents.service._monitor import Monitor
from hyperagents.service._observations import Observation
from hyperagents.service._pilot_improving import (
    IMPROVING_EVENT,
    ImprovementWorker,
    abandon_interrupted,
    improvement_spend_of,
    last_improving,
    live_examples,
    resumable,
)
from hyperagents.service._pilot_state import PilotState
from hyperagents.service._plan_calls import ImprovementSpend
from hyperagents.service._sequential import Arm, Phase, SequentialTest, Verdict
from hyperagents.service._steering import (
    COMMAND_EVENT,
    STATE_EVENT,
    AutopilotSettings,
    Improvement,
    Improver,
    Stage,
    request_quality,
    route_beside,
    route_candidate,
    shadow_quality,
)
from hyperagents.service._trigger import Override, Trigger
from hyperagents.storages import (
    BaseStorage,
    CandidateState,
    EventSpec,
    RequestRecord,
    ServiceRecord,
)
from hyperagents.tasks import Task

__all__ = ["Autopilot"]

logger = logging.getLogger("hyperagents.service")

#: Requests read from storage per batch.
_BATCH = 500


class Autopilot:
    """Watches a service, improves its champion when it degrades, tests and promotes the
    improvement (see the module docstring). Not thread-safe: one thread calls :meth:`step`.

    Args:
        storage: The service's storage.
        service_id: The service.
        task: The served task (its scorer rates labelled answers).
        improver: How the champion is improved (see :func:`plan_improver`).
        settings: Watch, trigger, test and improvement settings (defaults when None).
        features: The input features whose drift the monitor watches.
        clock: The time in seconds (requests' times are compared with it).

    Raises:
        ServiceNotFoundError: No such service.
    """

    def __init__(
        self,
        storage: BaseStorage,
        service_id: int,
        *,
        task: Task,
        improver: Improver,
        settings: AutopilotSettings | None = None,
        features: Sequence[Any] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.service_id = service_id
        self.task = task
        self.settings = settings or AutopilotSettings()
        self._features = tuple(features)
        self._clock = clock
        self._worker = ImprovementWorker(improver)
        self.monitor = Monitor(settings=self.settings.monitor, features=self._features)
        self.trigger = Trigger(policy=self.settings.trigger)
        self.test: SequentialTest | None = None
        self.state = PilotState()
        self._restore()

    # -- state -------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Read the last recorded state back and rebuild the monitor and the test from the
        requests it had read (an improvement that was running is resumed or recorded as
        interrupted)."""
        events = self.storage.list_service_events(
            self.service_id, kinds=[STATE_EVENT], newest_first=True, limit=1
        )
        if not events:  # the watch starts now (recorded, so a restart starts here too)
            self.state.epoch_from = self.state.cursor = self._last_request_id()
            self._save()
            return
        saved = PilotState.from_json(dict(events[0].data or {}))
        self.trigger = Trigger.from_json(saved.trigger) if saved.trigger else self.trigger
        cursor, saved.cursor = saved.cursor, saved.epoch_from
        self.state = saved
        if saved.stage in (Stage.TESTING, Stage.AWAITING_APPROVAL):
            self.test = SequentialTest(settings=self.settings.test)
        self._read(until=cursor, replay=True)
        if saved.stage is Stage.IMPROVING:
            self._cut_off()
        else:
            self._save()

    def _cut_off(self) -> None:
        """Resume the improvement the process died in, or record it as interrupted (see the
        module docstring)."""
        began = self.state.improving_from or last_improving(self.storage, self.service_id)
        live, why = resumable(
            self.storage, self.service_id, began=began, resumed=self.state.resumed
        )
        if not live:
            self._interrupted(began, why)
            return
        self.state.improving_from = self.state.resumed = began
        data = {"improving_from": began, "live_examples": len(live)}

        def record() -> None:  # together: a kill in between does not resume it twice
            self._log("autopilot.resumed", "the improvement the process died in starts again", data)
            self._save()

        self.storage.atomically(record)
        self._worker.start(live, self.storage.get_service(self.service_id))

    def _interrupted(self, began: int, why: str) -> None:
        """Record the improvement the process died in as interrupted (its waiting planning
        calls given up), its spend counted by the trigger, in one transaction with the new
        state (a kill leaves it counted once)."""
        spend = self._spend()
        self.state.stage = Stage.WATCHING
        self.trigger.record_cost(spend.cost)
        data = {"spent": spend.as_json(), "reason": why}

        def record() -> None:
            if began > 0:  # its calls: those logged since it began
                abandon_interrupted(self.storage, self.service_id, began=began, reason=why)
            self._log("autopilot.interrupted", "the improvement stopped with the process", data)
            self._save()

        self.storage.atomically(record)

    def _save(self) -> None:
        self.state.trigger = self.trigger.to_json()
        data = {**self.state.to_json(), "settings": self.settings.model_dump(mode="json")}
        self.storage.add_service_event(
            self.service_id, STATE_EVENT, self.state.stage.value, data=data
        )

    def _log(self, kind: str, message: str, data: dict[str, Any]) -> int:
        return self.storage.add_service_event(self.service_id, kind, message, data=data)

    def _last_request_id(self) -> int:
        latest = self.storage.list_service_requests(self.service_id, newest_first=True, limit=1)
        return latest[0].id if latest else 0

    # -- reading requests ------------------------------------------------------------------
    def _read(self, *, until: int | None = None, replay: bool = False) -> None:
        """Take the requests after the cursor, in id order, as far as they are settled (all
        up to ``until`` when replaying)."""
        now = self._clock()
        while True:
            before = None if until is None else until + 1
            batch = self.storage.list_service_requests(
                self.service_id,
                after_id=self.state.cursor,
                before_id=before,
                arms=["champion", "candidate"],
                limit=_BATCH,
            )
            shadows = self._shadows(batch)
            for request in batch:
                shadow = shadows.get(request.id)
                if not replay and not self._settled(request, shadow, now):
                    return
                self._take(request, shadow, replay=replay)
                self.state.cursor = request.id
            if len(batch) < _BATCH:
                return

    def _shadows(self, batch: Sequence[RequestRecord]) -> dict[int, RequestRecord]:
        """The shadow answers given beside the batch's requests, by the request they shadow."""
        if not batch or self.test is None or self.test.phase is not Phase.SHADOW:
            return {}
        rows = self.storage.list_service_requests(
            self.service_id, after_id=batch[0].id, arms=["shadow"], limit=4 * _BATCH
        )
        return {r.shadow_of: r for r in rows if r.shadow_of is not None}

    def _settled(self, request: RequestRecord, shadow: RequestRecord | None, now: float) -> bool:
        """Whether a request can be taken now: answered, with its evidence or old enough (in
        shadow, a labelled request also waits for the candidate's answer)."""
        if not request.answered:
            return False
        old = now - request.created_at.timestamp() >= self.settings.feedback_wait_s
        if request.label is None and request.feedback is None and not old:
            return False
        testing = self.test is not None and request.id > self.state.test_from
        if testing and self._pairs_now() and request.label is not None:
            return old or (shadow is not None and shadow.answered)
        return True

    def _pairs_now(self) -> bool:
        return self.test is not None and self.test.phase is Phase.SHADOW

    def _take(self, request: RequestRecord, shadow: RequestRecord | None, *, replay: bool) -> None:
        """Count one request: in the watch (the champion's answers of this epoch) and in the
        test (after the test began)."""
        quality = request_quality(self.task, request)
        if request.arm == "champion" and request.id > self.state.epoch_from:
            inputs = request.inputs if isinstance(request.inputs, dict) else {}
            self.monitor.observe(
                Observation(
                    time=request.created_at.timestamp(),
                    quality=quality,
                    latency_s=max(0.0, request.latency),
                    error=request.error is not None,
                    cost_usd=max(0.0, request.cost),
                    inputs=inputs,
                )
            )
            if quality is not None and not replay:
                self.trigger.note_feedback()
        if self.test is None or request.id <= self.state.test_from or quality is None:
            return
        verdict = self._count(request, shadow, quality)
        if not replay:
            self._act(verdict)

    def _count(
        self, request: RequestRecord, shadow: RequestRecord | None, quality: float
    ) -> Verdict:
        """Count a request in the test: a labelled pair in shadow, one arm's value in A/B."""
        test = self.test
        assert test is not None
        if test.verdict is not Verdict.CONTINUE:
            return test.verdict
        if test.phase is Phase.SHADOW:
            if request.arm != "champion" or shadow is None or not shadow.answered:
                return test.verdict
            candidate = shadow_quality(self.task, shadow, request)
            if candidate is None:
                return test.verdict
            return test.observe_pair(champion=quality, candidate=candidate)
        return test.observe(Arm(request.arm), quality)

    # -- acting ------------------------------------------------------------------------------
    def step(self) -> Stage:
        """One round: notice a person's decision, read the settled requests (the test may
        decide), then start an improvement when the trigger fires, or take the result of the
        one running.

        Raises:
            ServiceNotFoundError: The service is gone.
            StorageError: The storage failed.
        """
        self._commands()
        self._sync(self.storage.get_service(self.service_id))
        self._read()
        if self.state.stage is Stage.WATCHING:
            self._maybe_improve()
        elif self.state.stage is Stage.IMPROVING:
            self._collect()
        return self.state.stage

    def _sync(self, service: ServiceRecord) -> None:
        """Follow the routing when someone else decided on the candidate (a person promoted
        or rolled it back), and put a candidate whose test reached A/B under A/B."""
        if self.state.stage not in (Stage.TESTING, Stage.AWAITING_APPROVAL):
            return
        if service.candidate_id == self.state.candidate and service.candidate_state.answers:
            in_shadow = service.candidate_state is CandidateState.SHADOW
            if in_shadow and self.test is not None and self.test.phase is Phase.AB:
                self._to_ab()
            return
        if service.champion_id == self.state.candidate:
            self._new_epoch()
        else:
            self._end_test()

    def _act(self, verdict: Verdict) -> None:
        """Carry out the test's verdict (and move a shadow that is done to A/B)."""
        test = self.test
        if test is None or self.state.stage is not Stage.TESTING:
            return
        if verdict is Verdict.PROMOTE:
            if self.settings.approval:
                self.state.stage = Stage.AWAITING_APPROVAL
                self._log("autopilot.approval", test.reason, self._test_data())
                self._save()
            else:
                self._decide(promote=True, reason=test.reason)
        elif verdict is Verdict.ROLLBACK:
            self._decide(promote=False, reason=test.reason)
        elif test.phase is Phase.AB:
            service = self.storage.get_service(self.service_id)
            if service.candidate_state is CandidateState.SHADOW:
                self._to_ab()

    def _to_ab(self) -> None:
        """Give the candidate its share of the traffic (the shadow is over)."""
        service = self.storage.get_service(self.service_id)
        if service.candidate_id is None:
            return
        event = EventSpec("autopilot.ab", "the candidate takes its share", data=self._test_data())
        route_beside(
            self.storage,
            service,
            candidate=service.candidate_id,
            state=CandidateState.AB,
            share=self.settings.test.traffic_share,
            event=event,
        )

    def _decide(self, *, promote: bool, reason: str) -> None:
        service = self.storage.get_service(self.service_id)
        if service.candidate_id is None or not service.candidate_state.answers:
            return
        kind = "autopilot.promoted" if promote else "autopilot.rolled_back"
        event = EventSpec(
            kind, reason, data={**self._test_data(), "candidate": service.candidate_id}
        )
        if not route_candidate(self.storage, service, promote=promote, event=event):
            return  # someone else decided first: the next step follows the routing
        if promote:
            self._new_epoch()
        else:
            self._end_test()

    def _new_epoch(self) -> None:
        """The candidate is the champion now: the watch starts afresh on it."""
        self.state.epoch_from = self._last_request_id()
        recent = self.storage.list_service_requests(
            self.service_id,
            arms=["champion"],
            newest_first=True,
            limit=self.settings.monitor.window,
        )
        self.monitor.reset(
            reference_inputs=[r.inputs for r in recent if isinstance(r.inputs, dict)]
        )
        self._end_test()

    def _end_test(self) -> None:
        self.test = None
        self.state.candidate = None
        self.state.stage = Stage.WATCHING
        self._save()

    def _test_data(self) -> dict[str, Any]:
        return {} if self.test is None else self.test.summary()

    # -- improving ---------------------------------------------------------------------------
    def _maybe_improve(self) -> None:
        """Start an improvement in the background when the trigger fires."""
        now = self._clock()
        decision = self.trigger.decide(
            now=now, degraded=self.monitor.degraded, drifted=self.monitor.drifted()
        )
        if not decision.fire:
            return
        live = self.live_examples()
        self.trigger.record_start(now=now)
        if not live:
            self._log("autopilot.no_data", "no request has a label or feedback", {})
            self._save()
            return
        self.state.stage = Stage.IMPROVING
        self.state.improvements += 1
        data = {
            "reasons": list(decision.reasons),
            "live_examples": len(live),
            "requests": [int(e.request_id) for e in live],
        }
        reasons = "; ".join(decision.reasons)
        self.state.improving_from = self._log(IMPROVING_EVENT, reasons, data)
        self._save()
        self._worker.start(live, self.storage.get_service(self.service_id))

    def live_examples(self) -> list[LiveExample]:
        """The latest requests the champion answered with a label or feedback, oldest
        first (the data an improvement gets; a label a plan asked people for is marked
        ``source="people"``: train only)."""
        return live_examples(self.storage, self.service_id, limit=self.settings.live_examples)

    def _collect(self) -> None:
        """Take the finished improvement's result: a candidate enters the test, else the
        watch goes on (the trigger's cool-down holds the next one back)."""
        if self._worker.running:
            return
        result = self._worker.take()
        self.state.stage = Stage.WATCHING
        done = result if isinstance(result, Improvement) else None
        self.trigger.record_cost(self._spend(done).cost)  # a failed one's calls count too
        if isinstance(result, BaseException) or result is None:
            reason = f"{type(result).__name__}: {result}" if result is not None else "no result"
            self._log("autopilot.failed", reason[:2000], {})
            self._save()
            return
        self.state.last_plans = result.plans[-3:]
        if result.candidate is None:
            self._log("autopilot.no_candidate", "no plan met its criteria", {"plans": result.plans})
            self._save()
            return
        self._start_test(result)

    def _spend(self, result: Improvement | None = None) -> ImprovementSpend:
        """What the models of the latest improvement cost, for the trigger's budget (see
        :func:`~hyperagents.service._pilot_improving.improvement_spend_of`)."""
        since = self.state.improving_from or last_improving(self.storage, self.service_id)
        return improvement_spend_of(self.storage, self.service_id, since=since, result=result)

    def _start_test(self, result: Improvement) -> None:
        service = self.storage.get_service(self.service_id)
        assert result.candidate is not None
        shadow = self.settings.test.shadow_samples > 0
        data = {"candidate": result.candidate, "plans": result.plans}
        event = EventSpec("autopilot.testing", "shadow" if shadow else "A/B", data=data)
        if not route_beside(
            self.storage,
            service,
            candidate=result.candidate,
            state=CandidateState.SHADOW if shadow else CandidateState.AB,
            share=0.0 if shadow else self.settings.test.traffic_share,
            event=event,
        ):
            self._save()
            return
        self.state.test_from = self._last_request_id()
        self.state.candidate = result.candidate
        self.test = SequentialTest(settings=self.settings.test)
        self.state.stage = Stage.TESTING
        self._save()

    # -- the operator ------------------------------------------------------------------------
    def set_override(self, override: Override) -> None:
        """Force the next improvement (once) or suppress improvements until lifted (what
        :func:`~hyperagents.service.post_override` asks from another process)."""
        self.trigger.override = override
        self._log("autopilot.override", override.value, {"override": override.value})
        self._save()

    def _commands(self) -> None:
        """Apply the operator's overrides posted to the service's log since the last step
        (:func:`~hyperagents.service.post_override`: from the dashboard, the API, the CLI)."""
        events = self.storage.list_service_events(
            self.service_id, after_id=self.state.commands_seen, kinds=[COMMAND_EVENT]
        )
        for event in events:
            self.state.commands_seen = event.id
            try:
                override = Override(str((event.data or {}).get("override")))
            except ValueError:
                continue
            self.trigger.override = override
        if events:
            self._save()

    def summary(self) -> dict[str, Any]:
        """A JSON-able snapshot: stage, monitor, trigger, test, candidate, the latest plans."""
        return {
            "stage": self.state.stage.value,
            "candidate": self.state.candidate,
            "improvements": self.state.improvements,
            "monitor": self.monitor.summary(),
            "trigger": self.trigger.to_json(),
            "test": self._test_data() or None,
            "plans": self.state.last_plans,
        }

    def run(self, stop: threading.Event) -> None:
        """Step every ``poll_s`` seconds until ``stop`` is set; a failing step is logged and
        the next one tries again (the service it watches never stops for it)."""
        while not stop.is_set():
            try:
                self.step()
            except (HyperagentsError, ConfigError) as exc:
                logger.warning("autopilot step failed: %s", exc)
            except Exception:
                logger.exception("autopilot step failed")
            stop.wait(self.settings.poll_s)
