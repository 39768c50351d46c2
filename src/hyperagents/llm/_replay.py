"""Replay: a recorded run's replies served again, without calling any model."""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
from collections.abc import Sequence

from hyperagents.exceptions import (
    LLMBudgetExceeded,
    LLMError,
    LLMReplayError,
    LLMTransientError,
)
from hyperagents.llm._base import (
    ERROR_TYPES,
    Completion,
    LLMCall,
    LLMProvider,
    Message,
    normalize_messages,
    read_calls,
    request_key,
    shorten,
)

__all__ = ["ReplayFirstProvider", "ReplayProvider"]


class ReplayProvider:
    """Serves a recorded run's replies again, without calling any model.

    **Scoped records** (made by a run: each names its ``scope``, e.g. ``"g12/improve"``, and
    the ``job`` attempt that made it) are served per scope: only the last job attempt of each
    scope is kept (earlier attempts were discarded by the run: a sandbox failure, a budget
    refusal, a crash), and every job that asks with that scope (see :meth:`complete`'s
    ``job``) gets its own cursor over them: the n-th request with key K in the job gets the
    n-th recorded outcome for K in the scope. So jobs running in parallel, in any order, and a
    job redone after an interrupted replay, all get exactly the replies the recorded job got.
    (The kept attempt is the last one recorded: true for the engine's own retries and redos,
    not where a caller of :meth:`~hyperagents.runs.Run.improve` keeps an earlier result, or
    where two engines raced for the same job.)

    **Unscoped records** (e.g. a bare :class:`~hyperagents.llm.Gateway` with a
    :class:`~hyperagents.llm.JsonlRecorder`) are grouped by request key (see
    :func:`~hyperagents.llm.request_key`) in recorded order and served the same way across all
    callers; only a sequential caller replays them in exactly the recorded order.

    A recorded reply is returned again (same text and token counts); a recorded error is
    raised again as the same class, so a gateway configured like the recorded one retries the
    same way and the replay takes the same path. Cache hits are recorded replies too, so a
    replay works with or without a response cache. Thread-safe.

    Args:
        calls: The records, or the path of a JSON-lines file a
            :class:`~hyperagents.llm.JsonlRecorder` wrote.
        name: The provider name to report (and to compute keys with); defaults to the first
            record's.
        model: The model name likewise.

    Raises:
        LLMError: If the record file cannot be read or is malformed.
    """

    def __init__(
        self,
        calls: Sequence[LLMCall] | str | os.PathLike[str],
        *,
        name: str | None = None,
        model: str | None = None,
    ) -> None:
        records = read_calls(calls) if isinstance(calls, str | os.PathLike) else list(calls)
        first = records[0] if records else None
        self.name = name or (first.provider if first else "replay")
        self.model = model or (first.model if first else "replay")
        self._outcomes: dict[str, collections.deque[LLMCall]] = collections.defaultdict(
            collections.deque
        )
        last_job: dict[str, str] = {}
        for record in records:
            if record.scope:
                last_job[record.scope] = record.job
        #: scope → request key → the kept attempt's outcomes, in recorded order.
        self._scoped: dict[str, dict[str, list[LLMCall]]] = {}
        for record in records:
            if record.error_type is None and record.reply is None:
                continue  # nothing to serve
            if record.scope:
                if record.job == last_job[record.scope]:
                    by_key = self._scoped.setdefault(record.scope, {})
                    by_key.setdefault(record.key, []).append(record)
            else:
                self._outcomes[record.key].append(record)
        #: (scope, job) → request key → outcomes already served to that job.
        self._cursors: dict[tuple[str, str], dict[str, int]] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, "
            f"scopes={len(self._scoped)}, unscoped_left={self.remaining()})"
        )

    def remaining(self) -> int:
        """How many unscoped recorded outcomes have not been served yet.

        Returns:
            The count (scoped outcomes are served again to every job of their scope).
        """
        with self._lock:
            return sum(len(queue) for queue in self._outcomes.values())

    def scopes(self) -> frozenset[str]:
        """The scopes the record holds outcomes for.

        Returns:
            The scope names.
        """
        return frozenset(self._scoped)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        scope: str = "",
        job: str = "",
    ) -> Completion:
        """Serve the next recorded outcome of this request.

        Args:
            messages: The conversation.
            temperature: Part of the request's key.
            max_tokens: Part of the request's key.
            seed: Part of the request's key.
            timeout: Ignored.
            scope: Where the request comes from (see :class:`~hyperagents.llm.LLMCall`); a
                scope the record holds is answered from that scope only.
            job: The asking job attempt; each gets its own cursor over its scope.

        Returns:
            The recorded reply.

        Raises:
            LLMReplayError: If the record holds no (further) outcome for this request.
            LLMError: A recorded error, raised again as its recorded class (e.g.
                :class:`LLMTransientError`).
        """
        del timeout
        plain = normalize_messages(messages)
        key = request_key(
            self.name, self.model, plain, temperature=temperature, max_tokens=max_tokens, seed=seed
        )
        record = self._next_outcome(key, scope, job)
        if record is None:
            preview = shorten(plain[-1]["content"])[:80]
            where = f" in scope {scope!r}" if scope else ""
            raise LLMReplayError(
                f"replay: no recorded reply for this request{where} (key {key[:12]}…, "
                f"last message {preview!r}); the run diverged from the record"
            )
        if record.error_type is not None:
            raise _recorded_error(record.error_type, record.error)
        assert record.reply is not None
        return Completion(
            text=record.reply,
            model=record.model,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            finish_reason=record.finish_reason,
        )

    def _next_outcome(self, key: str, scope: str, job: str) -> LLMCall | None:
        """Take the next recorded outcome of request ``key`` for this job (``None``: none
        left): from the job's cursor over its scope, or from the unscoped queue."""
        with self._lock:
            self.calls += 1
            by_key = self._scoped.get(scope) if scope else None
            if by_key is None:
                queue = self._outcomes.get(key)
                return queue.popleft() if queue else None
            cursor = self._cursors.setdefault((scope, job), {})
            served = cursor.get(key, 0)
            outcomes = by_key.get(key, [])
            if served >= len(outcomes):
                return None
            cursor[key] = served + 1
            return outcomes[served]


class ReplayFirstProvider:
    """Serves recorded replies to the requests they answered, once each, and asks a live
    provider everything else: a piece of work that was cut off and is done again gets the
    replies already paid for, without asking (or paying) the model again for them.

    Only successful records are served (a recorded failure is asked again). Each is matched
    by its request's key (:func:`~hyperagents.llm.request_key`: provider, model, messages and
    sampling parameters, computed with the live provider's name and model), ignoring scope
    and job, and served at most once, oldest first among records of the same key.
    Thread-safe.

    Args:
        calls: The records to serve first.
        provider: The provider asked for anything else.

    Attributes:
        name: The live provider's name.
        model: The live provider's model.
    """

    def __init__(self, calls: Sequence[LLMCall], provider: LLMProvider) -> None:
        self.name = provider.name
        self.model = provider.model
        self._provider = provider
        served = [dataclasses.replace(c, scope="", job="") for c in calls if c.ok]
        self._record = ReplayProvider(served, name=provider.name, model=provider.model)
        self.replayed = 0  #: requests answered from the records

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._provider!r}, left={self._record.remaining()})"

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """The recorded reply to this request if one is left, else the live provider's.

        Raises:
            LLMError: The live provider failed (see :class:`~hyperagents.llm.LLMProvider`).
        """
        try:
            reply = self._record.complete(
                messages, temperature=temperature, max_tokens=max_tokens, seed=seed
            )
        except LLMReplayError:
            return self._provider.complete(
                messages,
                temperature=temperature,
                max_tokens=max_tokens,
                seed=seed,
                timeout=timeout,
            )
        self.replayed += 1
        return reply


def _recorded_error(error_type: str, error: str | None) -> LLMError:
    """A recorded error, to be raised again as its recorded class (a transient one without
    its retry-after: the replay does not wait)."""
    cls = ERROR_TYPES.get(error_type, LLMError)
    message = f"replayed: {error or error_type}"
    if cls is LLMTransientError:
        return LLMTransientError(message)
    if cls is LLMBudgetExceeded:  # never recorded by the gateway; keep the family
        return LLMError(message)
    return cls(message)
