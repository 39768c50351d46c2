"""Answering live requests with a service's variants in warm sandboxes.

:class:`Serving` is the engine of ``hyperagents serve``: it records each request as it arrives
(so that none is lost), routes it (the champion; a share of the traffic to a candidate under
A/B testing, decided by a seeded hash of the request id), runs the variant's task agent in the
run's sandbox (the sandbox keeps ``workers`` fork servers warm; requests beyond ``workers`` wait
for a slot, none is refused), and records the answer, its latency and cost. Whatever a variant
does (crash, loop, print garbage, answer too much) ends *that request* with a recorded error;
the service goes on. With a candidate in shadow, the champion's answer is sent and the
candidate's is recorded beside it (``arm="shadow"``, ``shadow_of`` the request), in the
background.

Agents run with inputs only, never labels or feedback. A champion that calls ``llm.complete``
gets the run's language model (or the one ``model`` names) through the sandbox bridge, as in
the run: every call is recorded with the run's LLM calls (purpose ``serve``, scope
``serve/REQUEST_ID``), and a request's cost is the sum of its calls'. Without a model, such a
call fails inside the sandbox.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hyperagents.evaluation import solve_in_sandbox
from hyperagents.exceptions import ConfigError, HyperagentsError, StorageError
from hyperagents.program import Program
from hyperagents.runs import RunConfig, RunLLM, derive_seed, record_task, sandbox_for
from hyperagents.sandbox import Limits, Outcome, Sandbox
from hyperagents.storages import (
    MAX_REQUEST_JSON,
    BaseStorage,
    CandidateState,
    EventSpec,
    ServiceRecord,
    ServiceStatus,
)

__all__ = ["RUN_MODEL", "Admitted", "Answer", "Serving", "routed_to_candidate"]

logger = logging.getLogger("hyperagents.service")

#: ``model`` of :class:`Serving` meaning the run's own language model (none if it has none).
RUN_MODEL = "run"
#: Seconds a service waits, once its model's circuit breaker opened (too many failed calls in a
#: row), before it lets its agents try the model again.
MODEL_COOLDOWN = 60.0
#: Shadow answers waiting to run at most; beyond, a shadow is skipped (and counted).
SHADOW_BACKLOG = 256
#: Seconds a sandboxed answer may take beyond the task's instance timeout (start, teardown).
_WALL_GRACE = 15.0
#: Answers whose latency the status summarises.
_RECENT = 500


def routed_to_candidate(*, seed: int, request_id: int, share: float) -> bool:
    """Whether a request goes to the candidate under A/B testing: a seeded hash of its id,
    mapped to [0, 1), is below ``share`` (deterministic; about ``share`` of all ids)."""
    digest = hashlib.sha256(f"{seed}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


@dataclass(frozen=True)
class Admitted:
    """A request recorded on arrival, with the variant and arm that answer it."""

    request_id: int
    variant_id: int
    arm: str
    inputs: Any
    arrived: float
    #: The candidate that answers beside the champion in shadow (None: no shadow).
    shadow_id: int | None = None


@dataclass(frozen=True)
class Answer:
    """What a request got: the output (or the error), in how long, from which variant."""

    request_id: int
    variant_id: int
    arm: str
    output: Any
    error: str | None
    latency: float

    @property
    def ok(self) -> bool:
        """Whether the variant answered."""
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        """The answer as the HTTP API sends it."""
        body: dict[str, Any] = {
            "request_id": self.request_id,
            "output": self.output,
            "latency_s": round(self.latency, 6),
            "variant": self.variant_id,
            "arm": self.arm,
        }
        if self.error is not None:
            body["error"] = self.error
        return body


def _solution(message: dict[str, Any] | None, reason: str | None) -> tuple[Any, str | None]:
    """The output or error of the agent's message for a request (None: it sent none)."""
    if message is None:
        return None, reason or "the agent gave no answer"
    if message.get("error"):
        return None, str(message["error"])
    output = message.get("output")
    try:
        size = len(json.dumps(output, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        return None, "the agent's answer is not JSON"
    if size > MAX_REQUEST_JSON:
        return None, (
            f"the agent's answer is too large ({size} bytes of JSON, at most {MAX_REQUEST_JSON})"
        )
    return output, None


class Serving:
    """Answers a service's requests in warm sandboxes (see the module docstring).

    Args:
        storage: Where the service, its requests and its variants' programs are.
        service_id: The service.
        workers: Requests answered at once (warm fork servers kept); more wait their turn.
        sandbox: Override the run's sandbox (an object; default: the run's own).
        model: The language model agents may call: :data:`RUN_MODEL` for the run's (none if
            it has none), a provider spec (``openai:M``, ``scripted:FILE``…), or None.
        model_cooldown: Seconds the model stays cut off once its circuit breaker opened
            (its calls are refused meanwhile), before it is tried again.

    Raises:
        ServiceNotFoundError: No such service.
        ConfigError: ``workers`` < 1, or the run's sandbox cannot work here.
        LLMConfigError: The model's spec is invalid.
        TaskError: The run's task does not load.
    """

    def __init__(
        self,
        storage: BaseStorage,
        service_id: int,
        *,
        workers: int = 2,
        sandbox: Sandbox | None = None,
        model: str | None = RUN_MODEL,
        model_cooldown: float = MODEL_COOLDOWN,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"a service needs at least one worker, not {workers}")
        self.storage = storage
        self.service_id = service_id
        self.workers = workers
        record = storage.get_service(service_id)
        run = storage.get_run(record.run_id)
        self.task = record_task(run)
        self.config = RunConfig.parse(dict(run.config))
        self.run_id = run.id
        self.llm = _service_llm(storage, run.id, run.seed, self.config, model)
        self._llm_mark = 0
        self._model_cooldown = model_cooldown
        self._broken_since: float | None = None
        self._owns_sandbox = sandbox is None
        self.sandbox = sandbox if sandbox is not None else sandbox_for(self.config, self.task)
        self.limits = Limits(
            wall_time=self.task.instance_timeout + _WALL_GRACE, memory_mb=self.config.memory_mb
        )
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._programs: dict[int, Program | str] = {}
        self._counts = {"queued": 0, "in_flight": 0, "shadows_waiting": 0, "shadows_skipped": 0}
        self._latencies: list[float] = []
        self._shadows = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, workers // 2), thread_name_prefix="hyperagents-shadow"
        )
        self.started_at = datetime.now(UTC)
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Warm the sandbox up (its fork servers compile the champion's sources ahead of
        requests), end the requests an earlier process left unanswered (with an error saying
        so), and mark the service serving."""
        set_warm = getattr(self.sandbox, "set_warm", None)
        set_known = getattr(self.sandbox, "set_known_sources", None)
        if self._owns_sandbox and callable(set_warm):
            champion = self._program(self.storage.get_service(self.service_id).champion_id)
            if callable(set_known) and not isinstance(champion, str):
                set_known(champion.python_sources())  # compiled once, ahead of requests
            set_warm(self.workers)
        lost = self.storage.list_service_requests(
            self.service_id, answered=False, until=self.started_at
        )
        for request in lost:
            self.storage.finish_service_request(
                request.id, error="the service stopped before answering", latency=0.0
            )
        event = EventSpec(
            kind="serving",
            message=f"serving with {self.workers} workers",
            data={"workers": self.workers, "lost_requests": len(lost)},
        )
        self.storage.set_service_status(self.service_id, ServiceStatus.SERVING, event=event)

    def close(self) -> None:
        """Finish the shadow answers in progress, stop the warm sandboxes and mark the
        service stopped."""
        if self._closed:
            return
        self._closed = True
        self._shadows.shutdown(wait=True)
        set_warm = getattr(self.sandbox, "set_warm", None)
        if self._owns_sandbox and callable(set_warm):
            set_warm(0)
        if self._owns_sandbox:
            close = getattr(self.sandbox, "close", None)
            if callable(close):
                close()
        try:
            self.storage.set_service_status(
                self.service_id, ServiceStatus.STOPPED, event=EventSpec(kind="stopped")
            )
        except StorageError as exc:  # the storage went away first: nothing more to record
            logger.warning("could not record that the service stopped: %s", exc)

    # -- answering --------------------------------------------------------------------------
    def admit(self, inputs: Any) -> Admitted:
        """Record a request as it arrives and route it.

        Raises:
            StorageError: The inputs are not JSON or too large (nothing recorded), or the
                storage failed.
        """
        service = self.storage.get_service(self.service_id)
        request_id = self.storage.add_service_request(
            self.service_id, variant_id=service.champion_id, arm="champion", inputs=inputs
        )
        admitted = Admitted(request_id, service.champion_id, "champion", inputs, time.monotonic())
        with self._lock:
            self._counts["queued"] += 1
        return self._routed(service, admitted)

    def _routed(self, service: ServiceRecord, admitted: Admitted) -> Admitted:
        """The request routed by the service's routing: to the candidate under A/B testing
        (its share of ids), with a shadow answer in shadow mode."""
        candidate, state = service.candidate_id, service.candidate_state
        if candidate is None:
            return admitted
        if state is CandidateState.SHADOW:
            return dataclasses.replace(admitted, shadow_id=candidate)
        routed = state is CandidateState.AB and routed_to_candidate(
            seed=service.seed, request_id=admitted.request_id, share=service.candidate_share
        )
        if routed and self.storage.assign_service_request(
            admitted.request_id, variant_id=candidate, arm="candidate"
        ):
            return dataclasses.replace(admitted, variant_id=candidate, arm="candidate")
        return admitted

    def solve(self, admitted: Admitted) -> Answer:
        """Answer an admitted request (waiting for a free slot) and record the answer; every
        admitted request must be solved (a process that dies first leaves it to the next
        :meth:`start`, which records it as lost)."""
        with self._slots:
            with self._lock:
                self._counts["queued"] -= 1
                self._counts["in_flight"] += 1
            try:
                output, error, cost = self._run_variant(
                    admitted.variant_id, admitted.inputs, admitted.request_id
                )
            finally:
                with self._lock:
                    self._counts["in_flight"] -= 1
        latency = time.monotonic() - admitted.arrived
        self._finish(admitted.request_id, output, error, latency, cost)
        with self._lock:
            self._latencies.append(latency)
            del self._latencies[:-_RECENT]
        if admitted.shadow_id is not None:
            self._queue_shadow(admitted)
        return Answer(
            admitted.request_id, admitted.variant_id, admitted.arm, output, error, latency
        )

    def answer(self, inputs: Any) -> Answer:
        """Admit a request and answer it (what the HTTP API does, in one call).

        Raises:
            StorageError: As :meth:`admit`.
        """
        return self.solve(self.admit(inputs))

    def _finish(
        self, request_id: int, output: Any, error: str | None, latency: float, cost: float
    ) -> None:
        self.storage.finish_service_request(
            request_id, output=output, error=error, latency=latency, cost=cost
        )

    def _program(self, variant_id: int) -> Program | str:
        """The variant's program (cached), or why it has none."""
        with self._lock:
            found = self._programs.get(variant_id)
        if found is not None:
            return found
        variant = self.storage.get_variant(variant_id)
        loaded: Program | str
        if variant.program_id is None:
            loaded = f"variant {variant_id} has no program"
        else:
            loaded = self.storage.get_program(variant.program_id)
        with self._lock:
            self._programs[variant_id] = loaded
        return loaded

    def _run_variant(
        self, variant_id: int, inputs: Any, request_id: int
    ) -> tuple[Any, str | None, float]:
        """The variant's answer to ``inputs`` in the sandbox, and what its model calls cost:
        (output, None, cost) or (None, error, cost)."""
        scope, mark = f"serve/{request_id}", self._llm_mark
        try:
            program = self._program(variant_id)
            if isinstance(program, str):
                return None, program, 0.0
            llm = self._model()
            handler = None
            if llm is not None:
                handler = llm.handler(variant_id=variant_id, purpose="serve", scope=scope)
            result, answered = solve_in_sandbox(
                program,
                [("request", inputs)],
                instance_timeout=self.task.instance_timeout,
                sandbox=self.sandbox,
                limits=self.limits,
                llm=handler,
            )
        except HyperagentsError as exc:  # the sandbox broke: this request fails, not the service
            logger.warning("service request failed in the sandbox: %s", exc)
            return None, f"the sandbox failed: {exc}", self._cost(scope, mark)
        except Exception as exc:  # never the service's end
            logger.exception("service request failed")
            return None, f"internal error: {type(exc).__name__}", self._cost(scope, mark)
        reason = result.reason if result.outcome is not Outcome.OK else None
        output, error = _solution(answered.get("request"), reason or result.outcome.name.lower())
        return output, error, self._cost(scope, mark)

    def _model(self) -> RunLLM | None:
        """The service's model (None: none), its circuit breaker closed again once it has been
        open for the cool-down (while open, calls are refused without reaching the model)."""
        llm = self.llm
        if llm is None or llm.broken is None:
            return llm
        now = time.monotonic()
        with self._lock:
            if self._broken_since is None:
                self._broken_since = now
            if now - self._broken_since < self._model_cooldown:
                return llm
            self._broken_since = None
        logger.warning("trying the service's model again after: %s", llm.broken)
        llm.reset_breaker()
        return llm

    def _cost(self, scope: str, mark: int) -> float:
        """Dollars the model calls of one request cost (its calls are recorded with the run,
        after id ``mark``, the last one seen when it started)."""
        if self.llm is None:
            return 0.0
        calls = self.storage.list_llm_calls(self.run_id, after_id=mark)
        cost = sum(
            call.cost for call in calls if call.request.get("extra", {}).get("scope") == scope
        )
        if calls:
            with self._lock:
                self._llm_mark = max(self._llm_mark, calls[-1].id)
        return cost

    # -- shadow -----------------------------------------------------------------------------
    def _queue_shadow(self, admitted: Admitted) -> None:
        with self._lock:
            if self._closed or self._counts["shadows_waiting"] >= SHADOW_BACKLOG:
                self._counts["shadows_skipped"] += 1
                return
            self._counts["shadows_waiting"] += 1
        try:
            self._shadows.submit(self._shadow, admitted)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._counts["shadows_waiting"] -= 1
                self._counts["shadows_skipped"] += 1

    def _shadow(self, admitted: Admitted) -> None:
        """Run the candidate on a request the champion answered; record its answer."""
        try:
            candidate = admitted.shadow_id
            assert candidate is not None
            shadow_id = self.storage.add_service_request(
                self.service_id,
                variant_id=candidate,
                arm="shadow",
                inputs=admitted.inputs,
                shadow_of=admitted.request_id,
            )
            started = time.monotonic()
            output, error, cost = self._run_variant(candidate, admitted.inputs, shadow_id)
            self._finish(shadow_id, output, error, time.monotonic() - started, cost)
        except Exception:  # a shadow never harms the service
            logger.exception("shadow answer failed")
        finally:
            with self._lock:
                self._counts["shadows_waiting"] -= 1

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The service's record, routing, load and totals (JSON)."""
        record = self.storage.get_service(self.service_id)
        count = self.storage.count_service_requests
        with self._lock:
            counts = dict(self._counts)
            recent = sorted(self._latencies)
        return {
            "service": record.name,
            "service_id": record.id,
            "run_id": record.run_id,
            "status": record.status.name.lower(),
            "champion": record.champion_id,
            "candidate": record.candidate_id,
            "candidate_state": record.candidate_state.name.lower(),
            "candidate_share": record.candidate_share,
            "goal": record.goal,
            "workers": self.workers,
            "sandbox": getattr(self.sandbox, "name", "?"),
            "since": self.started_at.isoformat(),
            **counts,
            "requests": count(self.service_id, arms=["champion", "candidate"]),
            "errors": count(self.service_id, arms=["champion", "candidate"], failed=True),
            "shadow_requests": count(self.service_id, arms=["shadow"]),
            "with_feedback": count(self.service_id, with_feedback=True),
            "latency_p50_s": _quantile(recent, 0.5),
            "latency_p99_s": _quantile(recent, 0.99),
        }


def _service_llm(
    storage: BaseStorage, run_id: int, seed: int, config: RunConfig, model: str | None
) -> RunLLM | None:
    """The model a service's agents call (None: none), recording into the run's LLM calls
    with no budget of its own (see the module docstring).

    Raises:
        LLMConfigError: The spec is invalid.
    """
    spec = config.llm if model == RUN_MODEL else model
    if spec is None:
        return None
    return RunLLM(
        storage,
        run_id,
        spec=spec,
        seed=derive_seed(seed, "serve"),
        retries=config.llm_retries,
        timeout=config.llm_timeout,
        cache=config.llm_cache,
        prices=config.llm_prices,
        failure_limit=config.llm_failure_limit,
    )


def _quantile(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values (None: none)."""
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]
