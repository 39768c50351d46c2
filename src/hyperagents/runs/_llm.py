"""A run's language model: the gateway built from the run's config, recording into storage.

Every attempt the gateway makes is stored (``llm_calls``) as it happens, with the variant and
purpose it was for. That record is also what a resumed run restores its totals from (so budgets
keep counting) and what ``--replay`` answers a new run from (no model is called).

A circuit breaker stops a run whose model keeps failing (see :attr:`RunLLM.broken`).

A model whose calls come before their run exists (the service's planner and teacher, whose
answers shape the improvement run they lead to) is made with ``run_id=None``: its calls wait in
:attr:`RunLLM.pending` until :meth:`RunLLM.attach` writes them into the run, where they count
against its budget (a run restores its totals from its recorded calls) like its own. Memory is
not durable: give such a model a :class:`PendingJournal` and each waiting call is also written
there as it is made (the call is paid for, whether or not its run ever exists), and
:meth:`RunLLM.attach` writes the calls into the run and tells the journal in one storage
transaction, so a process killed at any moment leaves each call either waiting in the journal
or recorded with its run, never both and never neither.
"""

from __future__ import annotations

import logging
import math
import shlex
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hyperagents.exceptions import (
    HyperagentsError,
    LLMBudgetExceeded,
    LLMError,
    LLMReplayError,
    RunStateError,
)
from hyperagents.llm import (
    CircuitBreaker,
    Gateway,
    LLMCall,
    LLMRequestRejected,
    LLMScriptExhausted,
    MemoryCache,
    ReplayFirstProvider,
    ScriptedProvider,
    Usage,
    parse_llm_spec,
    probe_provider,
)
from hyperagents.storages import BaseStorage, LLMCallRecord, LLMCallSpec

__all__ = ["PendingJournal", "RequestLimits", "RunLLM", "calls_from_storage", "llm_call_spec"]

logger = logging.getLogger(__name__)

#: Handler the sandbox calls with ``{"messages", "params", "purpose"}``.
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class PendingJournal(Protocol):
    """A durable record of the calls a :class:`RunLLM` makes before its run exists.

    Both methods are called with the model's pending lock held, in the order of the calls.
    """

    def pending(self, call: LLMCall) -> None:
        """Record ``call``, made while no run is attached, durably before returning.

        Raises:
            HyperagentsError: It could not be recorded (the call still waits in memory).
        """

    def attached(self, run_id: int, calls: Sequence[LLMCall]) -> Sequence[LLMCall]:
        """Mark every call recorded with :meth:`pending` as written into the run ``run_id``.

        Called inside the storage transaction that then writes the calls it returns into the
        run: both take effect together or not at all.

        Args:
            run_id: The run.
            calls: The pending calls, oldest first.

        Returns:
            The calls to write: ``calls``, or, one for one in the same order, calls the
            journal changed (e.g. one it finds recorded elsewhere meanwhile, written as cached).

        Raises:
            HyperagentsError: It could not be marked (nothing is written into the run).
        """


@dataclass(frozen=True)
class RequestLimits:
    """What one ``llm.complete`` request from sandboxed code may ask. A request over them is
    answered with an error (the agent's call fails, as any refused call does); it reaches no
    model and is recorded nowhere, so agent code can neither grow the run's database nor send
    a provider values it would reject.

    Attributes:
        prompt_bytes: Most UTF-8 bytes of all the messages' text together.
        messages: Most messages.
        max_tokens: Largest ``max_tokens`` a call may ask for.
        purpose_chars: Longest ``purpose`` label.
        max_temperature: Highest ``temperature`` (the lowest is 0).
    """

    prompt_bytes: int = 256 * 1024
    messages: int = 256
    max_tokens: int = 32_768
    purpose_chars: int = 200
    max_temperature: float = 2.0


class _Refused(Exception):
    """A sandboxed request outside the :class:`RequestLimits` (its message says why)."""


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))  # a lone surrogate counts, never raises


def _checked_messages(messages: Any, limits: RequestLimits) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise _Refused("messages must be a non-empty list of {'role', 'content'} objects")
    if len(messages) > limits.messages:
        raise _Refused(f"too many messages ({len(messages)}; at most {limits.messages})")
    too_large = _Refused(f"the prompt is too large (at most {limits.prompt_bytes // 1024} KiB)")
    chars = 0  # counted as it goes (a character is at least a byte): a huge prompt stops early
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _Refused(f"message {index} is not an object")
        for name in ("role", "content"):
            if not isinstance(message.get(name), str):
                raise _Refused(f"message {index} needs a string {name!r}")
        for name, value in message.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise _Refused(f"message {index}: field {name!r} must be a string")
            chars += len(name) + len(value)
            if chars > limits.prompt_bytes:
                raise too_large
    if sum(_utf8(k) + _utf8(v) for m in messages for k, v in m.items()) > limits.prompt_bytes:
        raise too_large
    return messages


def _checked(request: Any, limits: RequestLimits) -> tuple[Any, Any, Any, str]:
    """``(messages, temperature, max_tokens, purpose)`` of a sandboxed request.

    Raises:
        _Refused: The request is malformed or outside ``limits``.
    """
    if not isinstance(request, dict):
        raise _Refused("a request must be an object")
    messages = _checked_messages(request.get("messages"), limits)
    params = request.get("params")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise _Refused("params must be an object")
    temperature = params.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not math.isfinite(temperature)
        or not 0 <= temperature <= limits.max_temperature
    ):
        raise _Refused(f"temperature must be a number from 0 to {limits.max_temperature:g}")
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= limits.max_tokens
    ):
        raise _Refused(f"max_tokens must be a whole number from 1 to {limits.max_tokens}")
    purpose = request.get("purpose")
    purpose = "" if purpose is None else purpose
    if not isinstance(purpose, str) or len(purpose) > limits.purpose_chars:
        raise _Refused(f"purpose must be a string of at most {limits.purpose_chars} characters")
    return messages, temperature, max_tokens, purpose


def _to_call(record: LLMCallRecord) -> LLMCall:
    request = dict(record.request)
    extra = dict(request.get("extra") or {})
    return LLMCall.from_dict(
        {
            "key": record.key,
            "provider": record.provider,
            "model": record.model,
            "messages": request.get("messages") or [],
            "params": request.get("params") or {},
            "reply": record.reply,
            "error": record.error,
            "error_type": extra.get("error_type"),
            "finish_reason": extra.get("finish_reason"),
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "cost": record.cost,
            "cost_known": bool(extra.get("cost_known", True)),
            "latency": record.latency,
            "cached": record.cached,
            "attempt": record.attempt,
            "purpose": record.purpose,
            "variant_id": record.variant_id,
            "scope": extra.get("scope") or "",
            "job": extra.get("job") or "",
            "created_at": record.created_at.isoformat(),
        }
    )


def calls_from_storage(storage: BaseStorage, run_id: int) -> list[LLMCall]:
    """Every recorded LLM call of a run, oldest first, as gateway records.

    Raises:
        RunNotFoundError: No such run.
    """
    return [_to_call(record) for record in storage.list_llm_calls(run_id)]


def _still_to_serve(recorded: list[LLMCall], earlier: list[LLMCall]) -> list[LLMCall]:
    """The recorded calls a replay answers from, given the calls the replaying run made so far.

    Scoped calls (every call a run makes) are served per job, so a replay that was itself
    interrupted simply answers its redone jobs again: they all stay. Unscoped ones are matched
    by request in order: those this run already consumed are not served again.

    Args:
        recorded: The recorded run's calls, oldest first (this list is consumed).
        earlier: The replaying run's own calls so far.

    Returns:
        ``recorded`` less the unscoped calls already consumed.
    """
    recorded_scopes = {call.scope for call in recorded if call.scope}
    for own in earlier:
        if own.cached or own.scope in recorded_scopes:
            continue
        match = next(
            (
                i
                for i, call in enumerate(recorded)
                if call.key == own.key and not call.cached and not call.scope
            ),
            None,
        )
        if match is not None:
            del recorded[match]
    return recorded


def llm_call_spec(call: LLMCall) -> LLMCallSpec:
    """What storage records of a gateway's call."""
    extra = {
        "error_type": call.error_type,
        "finish_reason": call.finish_reason,
        "cost_known": call.cost_known,
        "scope": call.scope,
        "job": call.job,
    }
    return LLMCallSpec(
        key=call.key,
        provider=call.provider,
        model=call.model,
        request={"messages": list(call.messages), "params": dict(call.params), "extra": extra},
        reply=call.reply,
        error=call.error,
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        cost=call.cost,
        latency=call.latency,
        cached=call.cached,
        attempt=call.attempt,
        purpose=call.purpose,
        variant_id=call.variant_id,
    )


class RunLLM:
    """The language model of one run: a gateway that records into the run's storage.

    Args:
        storage: Where calls are recorded.
        run_id: The run (None: the calls wait in :attr:`pending` until :meth:`attach`).
        spec: The provider spec (``openai:M``, ``http://…#M``, ``scripted:FILE``…).
        replay_of: A run id whose recorded calls answer instead of any model.
        seed: Seed of the gateway's retry jitter.
        retries: Retries of transient failures.
        timeout: Seconds to wait for one reply from a network provider.
        max_cost: Dollar budget of the whole run (None: none).
        max_tokens: Token budget of the whole run (None: none).
        cache: Keep a response cache (identical requests answered once).
        prices: Price overrides, ``{model: (input, output)}`` in dollars per million tokens.
        limits: What one request from sandboxed code may ask (default :class:`RequestLimits`).
        failure_limit: Calls failing in a row (each after its retries) that open the circuit
            breaker (see :attr:`broken`); not used in a replay.
        journal: Where calls made while no run is attached are also recorded as they are made
            (None: in memory only, lost if the process dies before :meth:`attach`).
        answered: Calls made before for this model's requests (by work that was cut off and
            is done again): a request one of them answered is answered from it, once, without
            asking the model (see :class:`~hyperagents.llm.ReplayFirstProvider`); the gateway
            records and counts it like any answer. Not with ``replay_of``.

    Raises:
        LLMConfigError: The spec is invalid or its provider cannot be set up, or
            ``failure_limit`` is below 1.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings of the gateway
        self,
        storage: BaseStorage,
        run_id: int | None,
        *,
        spec: str | None,
        replay_of: int | None = None,
        seed: int = 0,
        retries: int = 3,
        timeout: float = 60.0,
        max_cost: float | None = None,
        max_tokens: int | None = None,
        cache: bool = False,
        prices: Mapping[str, tuple[float, float]] | None = None,
        limits: RequestLimits | None = None,
        failure_limit: int = 5,
        journal: PendingJournal | None = None,
        answered: Sequence[LLMCall] = (),
    ) -> None:
        self._storage = storage
        self._run_id = run_id
        self._journal = journal
        #: Calls made while no run is attached (see :meth:`attach`), oldest first.
        self.pending: list[LLMCall] = []
        self._pending_lock = threading.Lock()
        self.limits = limits or RequestLimits()
        self._replaying = replay_of is not None
        self._name: str | None = None
        self._breaker = CircuitBreaker(failure_limit, what=f"the model {spec}")
        self.budget_exhausted = threading.Event()
        #: Set when a replay met a request its record does not hold (the run stops: from there
        #: on it would not be the recorded run); :attr:`divergence` says which.
        self.diverged = threading.Event()
        self.divergence = ""
        #: Variants whose job had an LLM request refused for budget (their job is discarded).
        self.refused: set[int] = set()
        self._refused_lock = threading.Lock()
        options: dict[str, Any] = {
            "retries": retries,
            "seed": seed,
            "max_cost": max_cost,
            "max_tokens": max_tokens,
            "cache": MemoryCache() if cache else None,
            "prices": prices,
            "recorder": self._record,
        }
        earlier = [] if run_id is None else calls_from_storage(storage, run_id)
        if replay_of is not None:
            recorded = calls_from_storage(storage, replay_of)
            self.gateway = Gateway.for_replay(_still_to_serve(recorded, earlier), **options)
        else:
            if spec is None:
                raise LLMError("no language model configured")
            provider = parse_llm_spec(spec, timeout=timeout)
            if answered:
                provider = ReplayFirstProvider(answered, provider)
            self.gateway = Gateway(provider, **options)
        self._resume(earlier)

    def _resume(self, earlier: list[LLMCall]) -> None:
        """Carry on from the calls this run already made (none: nothing to do).

        A resumed run keeps counting from what it already spent, and a scripted model goes on
        with its script where the run left it (every provider attempt took one entry, except
        those refused because the script had run out).
        """
        provider = self.gateway.provider
        if isinstance(provider, ScriptedProvider):
            exhausted = LLMScriptExhausted.__name__
            provider.skip(
                sum(1 for call in earlier if not call.cached and call.error_type != exhausted)
            )
        if earlier:
            by_variant: dict[int, list[LLMCall]] = {}
            for call in earlier:
                if call.variant_id is not None:
                    by_variant.setdefault(call.variant_id, []).append(call)
            self.gateway.restore(
                Usage.from_calls(earlier),
                variants={vid: Usage.from_calls(calls) for vid, calls in by_variant.items()},
            )

    def attach(self, run_id: int) -> None:
        """Record the pending calls into the run ``run_id``, and every later call too.

        The calls are written, and the journal told (:meth:`PendingJournal.attached`), in one
        storage transaction: all of it or none of it. A call the journal changed (e.g. one
        another process attached first, written here as cached) is then counted as written:
        the model's totals and budget hold what the run's record holds.

        Raises:
            RunStateError: A run is attached already.
            RunNotFoundError: No such run.
            HyperagentsError: The journal could not mark them (nothing is written).
        """
        with self._pending_lock:
            if self._run_id is not None:
                raise RunStateError(f"the model already records into run {self._run_id}")
            calls = list(self.pending)
            journal = self._journal

            def write() -> list[LLMCall]:
                written = list(calls if journal is None else journal.attached(run_id, calls))
                for call in written:
                    self._storage.add_llm_call(run_id, llm_call_spec(call))
                return written

            written = self._storage.atomically(write)
            for counted, stored in zip(calls, written, strict=False):
                if stored is not counted:
                    self.gateway.recount(counted, stored)
            self.pending.clear()
            self._run_id = run_id

    def _record(self, call: LLMCall) -> None:
        if self._run_id is None:
            with self._pending_lock:
                if self._run_id is None:
                    self.pending.append(call)
                    if self._journal is not None:
                        self._journal.pending(call)
                    return
        assert self._run_id is not None
        self._storage.add_llm_call(self._run_id, llm_call_spec(call))

    def handler(self, *, variant_id: int | None, purpose: str, scope: str = "") -> Handler:
        """The function answering ``llm.complete`` calls of one sandboxed job attempt.

        Args:
            variant_id: The variant the job works for (per-variant totals, budget refusals).
            purpose: What the job does (``"improve"`` or an evaluation stage), the prefix of
                each call's recorded purpose.
            scope: Where in the run the job is, stable across replays (e.g.
                ``"g12/improve"``); see :class:`~hyperagents.llm.LLMCall`. Make one handler per
                attempt: each gets its own job token.
        """
        job = uuid.uuid4().hex

        def answer(request: dict[str, Any]) -> dict[str, Any]:
            try:
                messages, temperature, max_tokens, asked = _checked(request, self.limits)
            except _Refused as exc:
                return {"error": f"request refused: {exc}"}
            if not self._replaying and self._breaker.check(variant_id) is not None:
                return {"error": f"request refused: {self.broken}"}
            try:
                completion = self.gateway.complete(
                    messages,
                    purpose=f"{purpose}/{asked}" if asked else purpose,
                    variant_id=variant_id,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    scope=scope,
                    job=job,
                )
            except LLMBudgetExceeded as exc:
                if variant_id is not None:
                    with self._refused_lock:
                        self.refused.add(variant_id)
                self.budget_exhausted.set()
                return {"error": f"budget exhausted: {exc}"}
            except LLMReplayError as exc:
                with self._refused_lock:
                    if not self.diverged.is_set():
                        self.divergence = f"{scope or purpose}: {exc}"
                        self.diverged.set()
                return {"error": str(exc)}
            except LLMRequestRejected as exc:  # the server is up; the request was at fault
                return {"error": str(exc)}
            except LLMError as exc:
                self._failed(exc, variant_id)
                return {"error": str(exc)}
            if not self._replaying:
                self._breaker.success()
            return {"text": completion.text}

        return answer

    def _failed(self, error: LLMError, variant_id: int | None) -> None:
        """Count a call that failed after its retries (a replay counts nothing)."""
        if self._replaying:
            return
        fatal = isinstance(error, LLMScriptExhausted)
        if self._breaker.failure(str(error), variant_id=variant_id, fatal=fatal):
            logger.info("the run's model is cut off: %s", self._breaker.reason)

    @property
    def broken(self) -> str | None:
        """Why the circuit breaker is open (one line, with how to go on), or None.

        The breaker opens after ``failure_limit`` calls in a row failed (each after its
        retries: no answer, an HTTP error, an empty or malformed reply, a script that ran out,
        which opens it at once), with no success in between. Requests refused for budget or
        by the :class:`RequestLimits`, requests the server rejected as invalid (HTTP 400, 413,
        422: the agent's doing) and replays count for nothing. Once open, every request is
        refused without calling the model, and the jobs concerned are cut (:meth:`was_cut`):
        the run should stop, to be resumed once the model is fixed.
        """
        reason = self._breaker.reason
        if reason is None:
            return None
        return f"{reason}; fix it, then `hyperagents resume {self._run_name()}`"

    def was_cut(self, variant_id: int) -> bool:
        """Whether this variant's job ran without its model because the circuit breaker
        opened (its call failed in the streak that opened it, or met it open), and forget it:
        the job is to be left unfinished, like a job refused for budget."""
        return self._breaker.was_cut(variant_id)

    def reset_breaker(self) -> None:
        """Close the circuit breaker and forget its counts (before the run goes on)."""
        self._breaker.reset()

    def probe(self, *, timeout: float = 10.0) -> None:
        """Check that the model can be used before the run (re)starts, spending no token (see
        :func:`~hyperagents.llm.probe_llm`); a replay calls no model and always passes.

        Raises:
            LLMConfigError: The server cannot be reached, refuses the key or does not list
                the model (one line saying so).
        """
        if not self._replaying:
            probe_provider(self.gateway.provider, timeout=timeout)

    def _run_name(self) -> str:
        """The run's name, quoted for a shell (read once)."""
        if self._name is None:
            if self._run_id is None:
                return "RUN"
            try:
                self._name = shlex.quote(self._storage.get_run(self._run_id).name)
            except HyperagentsError:
                return "RUN"
        return self._name

    def set_budget(self, *, max_cost: float | None, max_tokens: int | None) -> None:
        """Change the budgets (e.g. raised before a resume)."""
        self.gateway.set_budget(max_cost=max_cost, max_tokens=max_tokens)
        self.budget_exhausted.clear()
        with self._refused_lock:
            self.refused.clear()

    def was_refused(self, variant_id: int) -> bool:
        """Whether a request of this variant's job was refused for budget (and forget it)."""
        with self._refused_lock:
            if variant_id in self.refused:
                self.refused.discard(variant_id)
                return True
            return False
