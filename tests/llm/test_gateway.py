"""The gateway: retries, backoff, accounting, budgets, cache, recording and replay."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from hyperagents.exceptions import (
    LLMBudgetExceeded,
    LLMConfigError,
    LLMError,
    LLMReplayError,
    LLMResponseError,
    LLMTransientError,
)
from hyperagents.llm import (
    Completion,
    Gateway,
    JsonlRecorder,
    LLMCall,
    LLMProvider,
    MemoryCache,
    MemoryRecorder,
    Message,
    ReplayFirstProvider,
    ReplayProvider,
    Usage,
    read_calls,
)

Behaviour = str | Exception | Callable[[Sequence[Message]], str]


class FakeProvider:
    """Answers from a script of texts, exceptions or functions; counts its calls."""

    name = "fake"

    def __init__(
        self,
        script: Sequence[Behaviour] = (),
        *,
        model: str = "fake-model",
        tokens: tuple[int, int] = (100, 50),
        default: Behaviour | None = None,
    ) -> None:
        self.model = model
        self.script = list(script)
        self.tokens = tokens
        self.default = default
        self.calls = 0
        self._lock = threading.Lock()

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
    ) -> Completion:
        with self._lock:
            self.calls += 1
            behaviour = self.script.pop(0) if self.script else self.default
        if behaviour is None:
            raise AssertionError("the fake provider was called more often than scripted")
        if isinstance(behaviour, Exception):
            raise behaviour
        text = behaviour if isinstance(behaviour, str) else behaviour(messages)
        return Completion(text, self.model, self.tokens[0], self.tokens[1], "stop")


def ask(text: str) -> list[Message]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_fake_provider_follows_the_protocol() -> None:
    assert isinstance(FakeProvider(), LLMProvider)


def test_a_call_is_priced_timed_accounted_and_recorded() -> None:
    ticks = iter([10.0, 10.25])
    recorder = MemoryRecorder()
    gateway = Gateway(
        FakeProvider(["hello"]),
        prices={"fake-model": (1.0, 2.0)},
        recorder=recorder,
        clock=lambda: next(ticks),
    )
    completion = gateway.complete(ask("hi"), purpose="propose", variant_id=3, temperature=0.0)
    assert completion.text == "hello"
    assert completion.latency == 0.25
    assert completion.cost == pytest.approx((100 * 1.0 + 50 * 2.0) / 1e6)
    assert not completion.cached
    (call,) = recorder.calls
    assert (call.reply, call.purpose, call.variant_id, call.attempt) == ("hello", "propose", 3, 1)
    assert call.params == {"temperature": 0.0, "max_tokens": None, "seed": None}
    assert call.cost_known and call.cost == completion.cost
    assert call.created_at.tzinfo is not None
    expected = Usage(calls=1, prompt_tokens=100, completion_tokens=50, cost=call.cost)
    assert gateway.usage() == expected
    assert gateway.usage(3) == gateway.usage()
    assert gateway.usage(4) == Usage()


def test_unknown_models_cost_nothing_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    recorder = MemoryRecorder()
    gateway = Gateway(FakeProvider(default="x"), recorder=recorder, max_cost=1.0)
    with caplog.at_level(logging.WARNING, logger="hyperagents.llm"):
        gateway.complete(ask("a"))
        gateway.complete(ask("b"))
    assert [c.cost_known for c in recorder.calls] == [False, False]
    assert gateway.usage().cost == 0.0
    assert sum("no price is known" in r.getMessage() for r in caplog.records) == 1


def test_transient_errors_are_retried_then_succeed() -> None:
    sleeps = Sleeps()
    recorder = MemoryRecorder()
    provider = FakeProvider(
        [LLMTransientError("429", status_code=429), LLMResponseError("garbage"), "ok"]
    )
    gateway = Gateway(provider, retries=3, sleep=sleeps, recorder=recorder)
    assert gateway.complete(ask("q")).text == "ok"
    assert provider.calls == 3 and len(sleeps) == 2
    assert [(c.attempt, c.error_type) for c in recorder.calls] == [
        (1, "LLMTransientError"),
        (2, "LLMResponseError"),
        (3, None),
    ]
    assert gateway.usage().errors == 2 and gateway.usage().calls == 1


def test_retries_are_exhausted_then_the_last_error_is_raised() -> None:
    provider = FakeProvider(default=LLMTransientError("HTTP 500", status_code=500))
    recorder = MemoryRecorder()
    gateway = Gateway(provider, retries=2, sleep=Sleeps(), recorder=recorder)
    with pytest.raises(LLMTransientError, match="HTTP 500"):
        gateway.complete(ask("q"))
    assert provider.calls == 3
    assert [c.attempt for c in recorder.calls] == [1, 2, 3]
    assert gateway.usage() == Usage(errors=3)


def test_permanent_errors_are_not_retried() -> None:
    provider = FakeProvider([LLMError("HTTP 401: bad key"), "never"])
    sleeps = Sleeps()
    gateway = Gateway(provider, sleep=sleeps)
    with pytest.raises(LLMError, match="401"):
        gateway.complete(ask("q"))
    assert provider.calls == 1 and sleeps == []


def test_backoff_is_deterministic_for_a_seed_and_bounded() -> None:
    def schedule(seed: int) -> list[float]:
        sleeps = Sleeps()
        provider = FakeProvider(default=LLMTransientError("timeout"))
        gateway = Gateway(
            provider, retries=5, backoff=0.5, max_backoff=3.0, seed=seed, sleep=sleeps
        )
        with pytest.raises(LLMTransientError):
            gateway.complete(ask("same question"))
        return list(sleeps)

    first = schedule(7)
    assert first == schedule(7)
    assert first != schedule(8)
    for delay, base in zip(first, [0.5, 1.0, 2.0, 3.0, 3.0], strict=True):
        assert base / 2 <= delay <= base


def test_backoff_honours_retry_after_with_a_cap() -> None:
    sleeps = Sleeps()
    provider = FakeProvider(
        [
            LLMTransientError("429", status_code=429, retry_after=2.5),
            LLMTransientError("429", status_code=429, retry_after=3600),
            "ok",
        ]
    )
    gateway = Gateway(provider, retries=3, max_backoff=8.0, sleep=sleeps)
    assert gateway.complete(ask("q")).text == "ok"
    assert sleeps == [2.5, 60.0]


def test_cache_hits_cost_nothing_and_are_recorded() -> None:
    provider = FakeProvider(["fresh", "other"])
    recorder = MemoryRecorder()
    gateway = Gateway(
        provider, cache=MemoryCache(), recorder=recorder, prices={"fake-model": (1.0, 1.0)}
    )
    first = gateway.complete(ask("q"), temperature=0.0, variant_id=1)
    again = gateway.complete(ask("q"), temperature=0.0, variant_id=2)
    assert again.text == first.text == "fresh"
    assert again.cached and again.cost == 0.0 and not first.cached
    assert provider.calls == 1
    assert gateway.complete(ask("q"), temperature=0.5).text == "other"  # another key
    assert [(c.cached, c.attempt) for c in recorder.calls] == [(False, 1), (True, 0), (False, 1)]
    assert recorder.calls[0].key == recorder.calls[1].key != recorder.calls[2].key
    usage = gateway.usage()
    assert (usage.calls, usage.cached, usage.prompt_tokens) == (3, 1, 200)
    assert gateway.usage(2) == Usage(calls=1, cached=1)


def test_memory_cache_bound() -> None:
    cache = MemoryCache(max_entries=2)
    completion = Completion("t", "m", 1, 1)
    for key in "abc":
        cache.put(key, completion)
    assert len(cache) == 2 and cache.get("a") is None and cache.get("c") == completion
    with pytest.raises(LLMConfigError):
        MemoryCache(max_entries=0)


def test_cost_budget_stops_before_the_call_and_resumes_when_raised() -> None:
    provider = FakeProvider(default="x", tokens=(100, 50))  # $0.2 per call at these prices
    gateway = Gateway(provider, prices={"fake-model": (1000.0, 2000.0)}, max_cost=0.3)
    gateway.complete(ask("1"))
    gateway.complete(ask("2"))  # crosses the budget but still returns
    assert gateway.usage().cost == pytest.approx(0.4)
    with pytest.raises(LLMBudgetExceeded) as info:
        gateway.complete(ask("3"))
    assert (info.value.budget, info.value.limit) == ("cost", 0.3)
    assert info.value.spent == pytest.approx(0.4)
    assert provider.calls == 2
    gateway.set_budget(max_cost=1.0)
    gateway.complete(ask("3"))
    assert provider.calls == 3
    gateway.set_budget(max_cost=None)
    assert gateway.max_cost is None


def test_token_budget_and_restore_across_sessions() -> None:
    gateway = Gateway(FakeProvider(default="x", tokens=(60, 40)), max_tokens=150)
    gateway.complete(ask("1"), variant_id=1)
    gateway.complete(ask("2"), variant_id=2)
    with pytest.raises(LLMBudgetExceeded) as info:
        gateway.complete(ask("3"))
    assert (info.value.budget, info.value.spent) == ("tokens", 200)

    # A resumed session starts from the saved totals, so it is still over budget...
    saved = Usage.from_dict(json.loads(json.dumps(gateway.usage().to_dict())))
    provider = FakeProvider(default="y", tokens=(60, 40))
    resumed = Gateway(provider, max_tokens=150)
    resumed.restore(saved, variants=gateway.usage_by_variant())
    with pytest.raises(LLMBudgetExceeded):
        resumed.complete(ask("3"))
    assert provider.calls == 0
    # ...until the budget is raised, and it keeps counting from there.
    resumed.set_budget(max_tokens=1000)
    resumed.complete(ask("3"), variant_id=2)
    assert resumed.usage().total_tokens == 300
    assert resumed.usage(2).calls == 2 and resumed.usage(1).calls == 1


def test_budget_zero_refuses_everything_and_bad_budgets_are_rejected() -> None:
    provider = FakeProvider(default="x")
    with pytest.raises(LLMBudgetExceeded):
        Gateway(provider, max_cost=0.0, prices={"fake-model": (1, 1)}).complete(ask("q"))
    assert provider.calls == 0
    with pytest.raises(LLMConfigError):
        Gateway(provider, max_cost=-1)
    with pytest.raises(LLMConfigError):
        Gateway(provider, retries=-1)
    with pytest.raises(LLMConfigError):
        Gateway(provider).set_budget(max_tokens=-5)


def test_accounting_per_variant() -> None:
    provider = FakeProvider(["a", LLMTransientError("t"), "b", "c", LLMError("no")], tokens=(10, 5))
    gateway = Gateway(provider, sleep=Sleeps(), prices={"fake-model": (1e6, 1e6)})
    gateway.complete(ask("1"), variant_id=1)
    gateway.complete(ask("2"), variant_id=2)  # one retry
    gateway.complete(ask("3"))  # no variant: overall only
    with pytest.raises(LLMError):
        gateway.complete(ask("4"), variant_id=1)
    assert gateway.usage(1) == Usage(
        calls=1, errors=1, prompt_tokens=10, completion_tokens=5, cost=15.0
    )
    assert gateway.usage(2) == Usage(
        calls=1, errors=1, prompt_tokens=10, completion_tokens=5, cost=15.0
    )
    assert gateway.usage() == Usage(
        calls=3, errors=2, prompt_tokens=30, completion_tokens=15, cost=45.0
    )
    assert set(gateway.usage_by_variant()) == {1, 2}


def test_accounting_is_thread_safe() -> None:
    provider = FakeProvider(default=lambda messages: messages[-1]["content"], tokens=(3, 2))
    recorder = MemoryRecorder()
    gateway = Gateway(provider, recorder=recorder, prices={"fake-model": (1e6, 1e6)})
    threads, per_thread = 8, 50

    def work(variant: int) -> None:
        for i in range(per_thread):
            assert gateway.complete(ask(f"{variant}-{i}"), variant_id=variant).text == (
                f"{variant}-{i}"
            )

    pool = [threading.Thread(target=work, args=(v,)) for v in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    total = threads * per_thread
    assert gateway.usage() == Usage(
        calls=total, prompt_tokens=3 * total, completion_tokens=2 * total, cost=5.0 * total
    )
    for variant in range(threads):
        assert gateway.usage(variant).calls == per_thread
    assert len(recorder) == total
    assert Usage.from_calls(recorder.calls) == gateway.usage()


def test_every_attempt_is_recorded_to_jsonl_without_secrets(tmp_path: Path) -> None:
    path = tmp_path / "llm" / "calls.jsonl"
    secret = "sk-live-abcdefghijklmnopqrstuvwxyz"
    provider = FakeProvider(
        [LLMTransientError(f"HTTP 503 for key {secret}"), "reply", LLMError("HTTP 400")]
    )
    gateway = Gateway(provider, recorder=JsonlRecorder(path), sleep=Sleeps(), cache=MemoryCache())
    gateway.complete(ask("q"), purpose="propose", variant_id=5)
    gateway.complete(ask("q"), purpose="propose", variant_id=5)  # cache hit
    with pytest.raises(LLMError):
        gateway.complete(ask("other"), purpose="review")
    text = path.read_text()
    assert "abcdefghijklmnop" not in text
    calls = read_calls(path)
    assert [(c.attempt, c.error_type, c.cached) for c in calls] == [
        (1, "LLMTransientError", False),
        (2, None, False),
        (0, None, True),
        (1, "LLMError", False),
    ]
    assert [c.purpose for c in calls] == ["propose", "propose", "propose", "review"]
    assert calls[0].error is not None and "HTTP 503" in calls[0].error
    assert calls[1].messages == tuple(ask("q")) and calls[1].reply == "reply"
    assert Usage.from_calls(calls) == gateway.usage()


def _run(gateway: Gateway) -> list[tuple[str, int, int]]:
    """A small 'run': repeated and distinct requests; returns what the caller saw."""
    seen: list[tuple[str, int, int]] = []
    for i, prompt in enumerate(["a", "b", "a", "c", "a"]):
        try:
            completion = gateway.complete(ask(prompt), variant_id=i % 2, temperature=0.7)
        except LLMError as exc:
            seen.append((f"error:{type(exc).__name__}", 0, 0))
        else:
            seen.append((completion.text, completion.prompt_tokens, completion.completion_tokens))
    return seen


def test_replay_reproduces_a_run_without_calling_any_model(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    counter = iter(range(100))
    provider = FakeProvider(
        [
            "a1",
            LLMTransientError("t", status_code=429),
            "b1",
            LLMResponseError("bad"),
            "a2",
            LLMTransientError("t"),
            LLMTransientError("t"),
            "never reached",
        ],
        default=lambda messages: f"{messages[-1]['content']}-{next(counter)}",
    )
    gateway = Gateway(provider, retries=1, sleep=Sleeps(), recorder=JsonlRecorder(path))
    original = _run(gateway)
    assert original[3] == ("error:LLMTransientError", 0, 0)  # "c" exhausted its one retry
    recorded = read_calls(path)

    replay_recorder = MemoryRecorder()
    replay = Gateway.for_replay(path, retries=1, recorder=replay_recorder)
    assert _run(replay) == original
    assert replay.usage() == gateway.usage()
    assert [(c.key, c.attempt, c.error_type, c.reply) for c in replay_recorder.calls] == [
        (c.key, c.attempt, c.error_type, c.reply) for c in recorded
    ]
    with pytest.raises(LLMReplayError, match="no recorded reply"):
        replay.complete(ask("never asked"))
    with pytest.raises(LLMReplayError):
        replay.complete(ask("a"), variant_id=0, temperature=0.7)  # all three "a" replies used


def test_replay_serves_cache_hits_with_or_without_a_cache() -> None:
    recorder = MemoryRecorder()
    gateway = Gateway(FakeProvider(["x"]), cache=MemoryCache(), recorder=recorder)
    gateway.complete(ask("q"))
    gateway.complete(ask("q"))
    for cache in (None, MemoryCache()):
        replay = Gateway.for_replay(recorder.calls, cache=cache)
        assert [replay.complete(ask("q")).text for _ in range(2)] == ["x", "x"]


def test_replay_provider_takes_names_from_the_record() -> None:
    call = LLMCall(
        key="k",
        provider="openai",
        model="gpt-4o",
        messages=({"role": "user", "content": "q"},),
        params={},
        reply="r",
    )
    provider = ReplayProvider([call])
    assert (provider.name, provider.model, provider.remaining()) == ("openai", "gpt-4o", 1)
    empty = ReplayProvider([])
    with pytest.raises(LLMReplayError):
        empty.complete(ask("q"))


def test_replay_first_answers_recorded_requests_once_and_asks_the_model_the_rest() -> None:
    recorder = MemoryRecorder()
    prices = {"fake-model": (1.0, 2.0)}
    dead = FakeProvider(["a1", "a2", LLMTransientError("down")])
    first = Gateway(dead, recorder=recorder, retries=0, prices=prices)
    first.complete(ask("q"), scope="plan/0", job="dead")
    first.complete(ask("q"), scope="plan/0", job="dead")
    with pytest.raises(LLMError):
        first.complete(ask("failed"), scope="plan/0", job="dead")
    live = FakeProvider(["live q", "live failed", "live other"])
    again = Gateway(ReplayFirstProvider(recorder.calls, live), prices=prices)
    # Each recorded reply once, oldest first, whatever the new scope and job; a recorded
    # failure and anything unrecorded are asked of the model.
    assert again.complete(ask("q"), scope="plan/0", job="new").text == "a1"
    assert again.complete(ask("q"), scope="other", job="new").text == "a2"
    assert again.complete(ask("q")).text == "live q"
    assert again.complete(ask("failed")).text == "live failed"
    assert again.complete(ask("other")).text == "live other"
    assert live.calls == 3 and again.provider.replayed == 2  # type: ignore[attr-defined]
    assert (again.provider.name, again.provider.model) == ("fake", "fake-model")
    # The same request key as recorded: the gateway prices and records it like any answer.
    assert first.usage().cost > 0
    assert again.usage().cost == pytest.approx(first.usage().cost * 5 / 2)


def test_replay_serves_each_scope_its_own_replies_in_any_order() -> None:
    # Two jobs send the same request; recorded in one order, replayed in the other.
    provider = FakeProvider(["for g1", "for g2 (discarded attempt)", "for g2"])
    recorder = MemoryRecorder()
    gateway = Gateway(provider, recorder=recorder)
    gateway.complete(ask("q"), scope="g1/improve", job="a")
    gateway.complete(ask("q"), scope="g2/improve", job="b")
    gateway.complete(ask("q"), scope="g2/improve", job="c")  # the retried job: kept
    assert [(c.scope, c.job) for c in recorder.calls] == [
        ("g1/improve", "a"),
        ("g2/improve", "b"),
        ("g2/improve", "c"),
    ]
    replay = Gateway.for_replay(recorder.calls)
    assert replay.complete(ask("q"), scope="g2/improve", job="x").text == "for g2"
    assert replay.complete(ask("q"), scope="g1/improve", job="y").text == "for g1"
    # A job redone (e.g. after an interrupted replay) gets the same replies again...
    assert replay.complete(ask("q"), scope="g2/improve", job="z").text == "for g2"
    # ...but one job never gets more than its scope recorded.
    with pytest.raises(LLMReplayError, match="scope 'g2/improve'"):
        replay.complete(ask("q"), scope="g2/improve", job="z")
    # Records survive the JSON round trip with their scope and job.
    again = LLMCall.from_dict(json.loads(json.dumps(recorder.calls[2].to_dict())))
    assert (again.scope, again.job) == ("g2/improve", "c")


def test_a_provider_returning_garbage_is_a_response_error() -> None:
    class Broken(FakeProvider):
        def complete(self, messages: Sequence[Message], **_: object) -> Completion:
            self.calls += 1
            return "not a completion"  # type: ignore[return-value]

    provider = Broken()
    with pytest.raises(LLMResponseError, match="not a Completion"):
        Gateway(provider, retries=1, sleep=Sleeps()).complete(ask("q"))
    assert provider.calls == 2


def test_bad_messages_never_reach_the_provider() -> None:
    provider = FakeProvider(default="x")
    gateway = Gateway(provider)
    for bad in ([], [{"role": "user"}], "just a string", [{"role": "user", "content": 3}]):
        with pytest.raises(LLMError):
            gateway.complete(bad)  # type: ignore[arg-type]
    assert provider.calls == 0
