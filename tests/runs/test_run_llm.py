"""A run's language model: meta agents call it from the sandbox; every call is recorded,
budgets stop the run resumably, and a recorded run replays with no model called."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError, SandboxError
from hyperagents.runs import Run, RunConfig
from hyperagents.sandbox import get_sandbox
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState
from hyperagents.testing import FakeOpenAIServer, FakeReply

from toytask import LLM_META_AGENT as LLM_META
from toytask import TASK_AGENT, ToyTask

REPLIES = ["0.4", "0.5", "0.6", "0.63", "0.64", "0.62"]


def scripted(tmp_path: Path, replies: list[str] = REPLIES) -> str:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps({"replies": replies}))
    return f"scripted:{path}"


def make(storage: Any, **config: Any) -> Run:
    return Run.create(
        task=ToyTask(meta_agent=LLM_META),
        seed=1,
        storage=storage,
        config=RunConfig.parse({"subset_size": 10, "selector": "best", **config}),
    )


def fingerprint(run: Run) -> list[tuple[Any, ...]]:
    return [
        (v.generation, v.state, v.program_id, tuple(sorted(v.scores.items())))
        for v in run.variants()
    ]


def test_a_scripted_model_improves_the_task_and_every_call_is_recorded(tmp_path: Path) -> None:
    run = make(InMemoryStorage(), llm=scripted(tmp_path))
    assert run.optimize(generations=4).status is RunStatus.COMPLETE
    variants = run.variants()
    assert variants[-1].scores["val"] > variants[0].scores["val"]
    calls = run.storage.list_llm_calls(run.id)
    assert len(calls) == 4
    assert [c.reply for c in calls] == REPLIES[:4]
    assert {c.purpose for c in calls} == {"improve/propose"}  # the stage, then the agent's label
    assert [c.variant_id for c in calls] == [v.id for v in variants[1:]]
    assert calls[0].request["messages"][0]["content"].startswith("The threshold is 0.2")
    assert run.llm is not None and run.llm.gateway.usage().calls == 4
    summary = run.summary()["llm"]
    assert summary["calls"] == 4 and summary["errors"] == 0 and summary["model"].startswith("scr")
    usage = run.llm.gateway.usage()
    assert summary["prompt_tokens"] == usage.prompt_tokens


def test_replay_reproduces_the_run_without_calling_any_model(tmp_path: Path) -> None:
    store = InMemoryStorage()
    with FakeOpenAIServer(REPLIES) as server:
        original = make(store, llm=f"{server.base_url}#fake-model")
        original.optimize(generations=4)
        served = server.calls
        replay = Run.create(
            task=ToyTask(meta_agent=LLM_META),
            seed=1,
            storage=store,
            name="replayed",
            config=RunConfig.parse(
                {
                    "subset_size": 10,
                    "selector": "best",
                    "llm": f"{server.base_url}#fake-model",
                    "replay_of": original.name,
                }
            ),
        )
        replay.optimize(generations=4)
        assert server.calls == served  # not one request reached a model
    assert fingerprint(replay) == fingerprint(original)
    assert len(store.list_llm_calls(replay.id)) == len(store.list_llm_calls(original.id))


def test_a_spent_budget_stops_the_run_and_a_raised_one_resumes_it(tmp_path: Path) -> None:
    reference = make(InMemoryStorage(), llm=scripted(tmp_path))
    reference.optimize(generations=4)

    store = InMemoryStorage()
    run = make(store, llm=scripted(tmp_path), max_tokens=20)
    record = run.optimize(generations=4)
    assert record.status is RunStatus.STOPPED
    assert run.last_stop_reason is not None and "budget" in run.last_stop_reason
    done = [v for v in run.variants() if v.state.is_terminal]
    assert len(done) < 5
    assert all(v.state is not VariantState.FAILED for v in run.variants())
    store.update_run_config(run.id, {**dict(record.config), "max_tokens": None})
    resumed = Run.load(run.name, storage=store, task=run.task)
    assert resumed.optimize().status is RunStatus.COMPLETE
    assert fingerprint(resumed) == fingerprint(reference)


def test_injected_faults_are_retried_recorded_and_survived(tmp_path: Path) -> None:
    faults = [
        FakeReply(status=429, headers={"retry-after": "0"}),
        "0.5",
        FakeReply(status=500),
        "0.6",
        FakeReply(content="not a number"),  # malformed for the meta agent: it fails
        "0.63",
        FakeReply(malformed=True),
        "0.62",
    ]
    store = InMemoryStorage()
    with FakeOpenAIServer(faults, default="0.61", model="m") as server:
        run = make(store, llm=f"{server.base_url}#m", llm_retries=2)
        assert run.optimize(generations=5).status is RunStatus.COMPLETE
    calls = store.list_llm_calls(run.id)
    errors = [c for c in calls if c.error]
    assert len(errors) == 3 and all(c.reply is None for c in errors)
    assert any("429" in (c.error or "") for c in errors)
    failed = [v for v in run.variants() if v.state is VariantState.FAILED]
    assert len(failed) == 1 and "ValueError" in (failed[0].reason or "")
    assert run.variants()[-1].generation == 5


def test_an_interrupted_replay_resumes_where_it_was(tmp_path: Path) -> None:
    store = InMemoryStorage()
    original = make(store, llm=scripted(tmp_path))
    original.optimize(generations=4)
    config = {
        "subset_size": 10,
        "selector": "best",
        "llm": scripted(tmp_path),
        "replay_of": original.name,
    }
    replay = Run.create(
        task=ToyTask(meta_agent=LLM_META),
        seed=1,
        storage=store,
        name="replay",
        config=RunConfig.parse(config),
    )
    replay.optimize(generations=2)  # stopped half-way (as if interrupted)
    resumed = Run.load("replay", storage=store, task=replay.task)
    resumed.optimize(generations=2)
    assert fingerprint(resumed) == fingerprint(original)


def _edit(old: str, new: str) -> str:
    return (
        "I will move the threshold.\n"
        "<<<<<<< SEARCH task_agent.py\n"
        f'PARAMS = {{"t": {old}}}\n'
        "=======\n"
        f'PARAMS = {{"t": {new}}}\n'
        ">>>>>>> REPLACE\n"
    )


REVIEW = '{"issue_type": "none", "severity": "low", "suggested_fix": "", "confidence": 0.8}'


def test_the_seed_llm_meta_agent_improves_a_task_and_replays_exactly() -> None:
    script = [_edit("0.2", "0.5"), REVIEW, _edit("0.5", "0.63"), REVIEW]
    store = InMemoryStorage()
    with FakeOpenAIServer(script) as server:
        config = {
            "subset_size": 10,
            "selector": "best",
            "meta_agent": "llm",
            "llm": f"{server.base_url}#fake-model",
        }
        run = Run.create(
            task=ToyTask(), seed=3, storage=store, name="llm-seed", config=RunConfig.parse(config)
        )
        assert run.optimize(generations=2).status is RunStatus.COMPLETE
        variants = run.variants()
        assert [v.state for v in variants] == [VariantState.COMPLETE] * 3
        assert variants[0].scores["val"] < variants[1].scores["val"] < variants[2].scores["val"]
        assert variants[2].meta_info["operator"] == "llm:search_replace"
        assert variants[2].meta_info["review"]["confidence"] == 0.8
        assert server.calls == 4
        # The second proposal saw the parent's review and the failing instances.
        prompt = server.requests[2]["messages"][-1]["content"]
        assert "generations left" in prompt.lower() and "0.5" in prompt
        replay = Run.create(
            task=ToyTask(),
            seed=3,
            storage=store,
            name="llm-seed-replay",
            config=RunConfig.parse({**config, "replay_of": "llm-seed"}),
        )
        replay.optimize(generations=2)
        assert server.calls == 4  # the replay called no model
    assert fingerprint(replay) == fingerprint(run)


PARALLEL_REPLIES = ["0.4", "0.45", "0.5", "0.55", "0.6", "0.62", "0.63", "0.64", "0.61"]


def test_a_parallel_run_replays_exactly_with_any_number_of_workers() -> None:
    # Three generations in flight: jobs with the same parent send identical requests, and the
    # server answers them in arrival order. The replay must give every job its own recorded
    # reply whatever the timing, so it is run with a different number of workers.
    store = InMemoryStorage()
    config = {"subset_size": 10, "selector": "best", "parallel_generations": 3}
    with FakeOpenAIServer(PARALLEL_REPLIES, model="m") as server:
        original = make(store, llm=f"{server.base_url}#m", **config)
        original.optimize(generations=9, workers=3)
        served = server.calls
        for workers in (1, 3):
            replay = Run.create(
                task=ToyTask(meta_agent=LLM_META),
                seed=1,
                storage=store,
                name=f"replay-{workers}",
                config=RunConfig.parse(
                    {**config, "llm": f"{server.base_url}#m", "replay_of": original.name}
                ),
            )
            replay.optimize(generations=9, workers=workers)
            assert fingerprint(replay) == fingerprint(original)
        assert server.calls == served
    scopes = {c.request["extra"]["scope"] for c in store.list_llm_calls(original.id)}
    assert scopes == {f"g{g}/improve" for g in range(1, 10)}


class FlakyOnce:
    """Delegates to a real sandbox, but the first meta agent run of generation 2 fails as a
    broken sandbox would, after its LLM call was answered (the run retries the job)."""

    name = "flaky"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed = False

    def run(self, workspace: Any, request: Any, **kwargs: Any) -> Any:
        result = self.inner.run(workspace, request, **kwargs)
        generation = (request.get("report") or {}).get("generation")
        if request.get("action") == "improve" and generation == 2 and not self.failed:
            self.failed = True
            raise SandboxError("injected: the sandbox broke after the job's LLM call")
        return result

    def close(self) -> None:
        self.inner.close()


def test_replay_serves_the_attempt_the_run_kept_not_a_discarded_one(tmp_path: Path) -> None:
    store = InMemoryStorage()
    flaky = FlakyOnce(get_sandbox("process"))
    original = Run.create(
        task=ToyTask(meta_agent=LLM_META),
        seed=1,
        storage=store,
        name="flaky",
        sandbox=flaky,
        config=RunConfig.parse({"subset_size": 10, "selector": "best", "llm": scripted(tmp_path)}),
    )
    original.optimize(generations=3)
    assert flaky.failed
    calls = store.list_llm_calls(original.id)
    assert len(calls) == 4  # generation 2 asked twice: the first attempt was discarded
    jobs = [c.request["extra"]["job"] for c in calls if c.request["extra"]["scope"] == "g2/improve"]
    assert len(set(jobs)) == 2
    replay = Run.create(
        task=ToyTask(meta_agent=LLM_META),
        seed=1,
        storage=store,
        name="flaky-replay",
        config=RunConfig.parse(
            {"subset_size": 10, "selector": "best", "llm": scripted(tmp_path), "replay_of": "flaky"}
        ),
    )
    replay.optimize(generations=3)
    assert fingerprint(replay) == fingerprint(original)
    assert [c.reply for c in store.list_llm_calls(replay.id)] == ["0.4", "0.6", "0.63"]


def test_price_overrides_are_part_of_the_run_config() -> None:
    with pytest.raises(ConfigError, match="price"):
        RunConfig.parse({"llm_prices": {"m": [1.0, -2.0]}})
    store = InMemoryStorage()
    with FakeOpenAIServer(REPLIES, model="m") as server:
        # $1 per input token, $2 per output token: the record shows it.
        run = make(
            store,
            llm=f"{server.base_url}#m",
            llm_prices={"m": [1_000_000, 2_000_000]},
        )
        run.optimize(generations=2)
    calls = store.list_llm_calls(run.id)
    assert len(calls) == 2
    for call in calls:
        assert call.cost == pytest.approx(call.prompt_tokens + 2 * call.completion_tokens)
    assert run.record().config["llm_prices"] == {"m": [1_000_000, 2_000_000]}


def test_the_tool_loop_runs_its_sample_inside_the_real_sandbox() -> None:
    # The seed LLM meta agent, switched to the tool loop, on the LLM task: its run_sample
    # starts a subprocess inside the run's sandbox (bwrap where available), where the task
    # agent's llm.complete fails and the agent falls back to its keyword rules.
    from hyperagents.improvers import meta_agent_files
    from hyperagents.tasks.support import SupportTask

    class ToolLoopSupport(SupportTask):
        def seed_program(self) -> Any:
            files = dict(meta_agent_files("llm") or {})
            files["meta_agent.py"] = files["meta_agent.py"].replace(
                '"format": "search_replace"', '"format": "tool_loop"'
            )
            return self.with_meta_agent(super().seed_program(), files)

    script = [
        '{"tool": "run_sample", "n": 2}',
        '{"tool": "str_replace", "path": "task_agent.py", "old": "\\"use_llm\\": 1", '
        '"new": "\\"use_llm\\": 0"}',
        '{"tool": "done", "summary": "route by keywords only"}',
        REVIEW,
    ]
    task = ToolLoopSupport(n_train=6, n_val=4, n_test=4)

    def model(body: dict[str, Any]) -> str:
        last = body["messages"][-1]["content"]
        if last.startswith("Customer request: "):
            return "billing"
        return script.pop(0)

    with FakeOpenAIServer(handler=model, model="m") as server:
        run = Run.create(
            task=task,
            seed=0,
            storage=InMemoryStorage(),
            config=RunConfig.parse({"llm": f"{server.base_url}#m", "subset_size": 3}),
        )
        run.optimize(generations=1, workers=1)
        meta = [
            r
            for r in server.requests
            if not r["messages"][-1]["content"].startswith("Customer request: ")
        ]
    child = run.variants()[1]
    assert child.meta_info["operator"] == "llm:tool_loop", child.reason
    observation = meta[1]["messages"][-1]["content"]
    assert "Ran solve on 2 train input(s)" in observation
    outputs = [line for line in observation.splitlines() if line.startswith("- train-")]
    assert len(outputs) == 2 and all("ERROR" not in line for line in outputs)
    assert child.state is VariantState.COMPLETE
    assert 'PARAMS = {\n    "use_llm": 0' in run.program(child.id).text("task_agent.py")


@pytest.mark.timeout(120)
def test_a_budget_spent_during_a_champion_test_stops_the_run() -> None:
    # The budget runs out inside the seed's test stage: the run stops (it used to hand the
    # refused test evaluation out again forever) and a resume with no budget finishes it.
    from hyperagents.tasks.support import SupportTask

    task = SupportTask(n_train=4, n_val=2, n_test=2)
    with FakeOpenAIServer(default="billing", model="m") as server:
        url = f"{server.base_url}#m"
        probe = InMemoryStorage()
        free = Run.create(task=task, seed=0, storage=probe, config=RunConfig.parse({"llm": url}))
        free.optimize(generations=0)
        before_test = sum(
            c.prompt_tokens + c.completion_tokens
            for c in probe.list_llm_calls(free.id)
            if not c.purpose.startswith("test/")
        )
        store = InMemoryStorage()
        config = {"llm": url, "max_tokens": before_test + 1}
        run = Run.create(task=task, seed=0, storage=store, config=RunConfig.parse(config))
        record = run.optimize(generations=0)
        assert record.status is RunStatus.STOPPED
        assert "budget" in (run.last_stop_reason or "")
        assert "test" not in run.variants()[0].scores
        store.update_run_config(run.id, {**dict(record.config), "max_tokens": None})
        resumed = Run.load(run.name, storage=store, task=task)
        assert resumed.optimize().status is RunStatus.COMPLETE
        assert resumed.variants()[0].scores["test"] == free.variants()[0].scores["test"]


def test_a_replay_that_meets_an_unrecorded_request_stops_and_says_so(tmp_path: Path) -> None:
    store = InMemoryStorage()
    original = Run.create(
        task=ToyTask(meta_agent=LLM_META),
        seed=1,
        storage=store,
        name="recorded",
        config=RunConfig.parse({"subset_size": 10, "selector": "best", "llm": scripted(tmp_path)}),
    )
    original.optimize(generations=3)
    # Another seed program sends other prompts: the record cannot answer them.
    replay = Run.create(
        task=ToyTask(meta_agent=LLM_META, task_agent=TASK_AGENT.replace("0.2", "0.3")),
        seed=1,
        storage=store,
        name="diverging",
        config=RunConfig.parse({"subset_size": 10, "selector": "best", "replay_of": "recorded"}),
    )
    record = replay.optimize(generations=3)
    assert record.status is RunStatus.STOPPED
    assert "replay diverged from its record" in (replay.last_stop_reason or "")
    assert "g1/improve" in (replay.last_stop_reason or "")


# -- requests from sandboxed code are bounded -------------------------------------------------
GOOD = {"messages": [{"role": "user", "content": "hi"}], "params": {}, "purpose": "p"}


@pytest.mark.parametrize(
    ("request_", "said"),
    [
        ({**GOOD, "messages": [{"role": "user", "content": "x" * 2000}]}, "too large"),
        ({**GOOD, "messages": [{"role": "user", "content": "é" * 600}]}, "too large"),  # bytes
        ({**GOOD, "messages": [{"role": "user", "content": "x"}] * 9}, "too many messages"),
        ({**GOOD, "messages": []}, "non-empty list"),
        ({**GOOD, "messages": "hi"}, "non-empty list"),
        ({**GOOD, "messages": [["user", "hi"]]}, "not an object"),
        ({**GOOD, "messages": [{"role": 1, "content": "hi"}]}, "string 'role'"),
        ({**GOOD, "messages": [{"role": "user", "content": None}]}, "string 'content'"),
        ({**GOOD, "messages": [{"role": "user", "content": "x", "name": 3}]}, "must be a string"),
        ({**GOOD, "params": [1]}, "params"),
        ({**GOOD, "params": {"temperature": 2.5}}, "temperature"),
        ({**GOOD, "params": {"temperature": -0.1}}, "temperature"),
        ({**GOOD, "params": {"temperature": float("nan")}}, "temperature"),
        ({**GOOD, "params": {"temperature": float("inf")}}, "temperature"),
        ({**GOOD, "params": {"temperature": "1"}}, "temperature"),
        ({**GOOD, "params": {"temperature": True}}, "temperature"),
        ({**GOOD, "params": {"max_tokens": 0}}, "max_tokens"),
        ({**GOOD, "params": {"max_tokens": 10**9}}, "max_tokens"),
        ({**GOOD, "params": {"max_tokens": 10.0}}, "max_tokens"),
        ({**GOOD, "params": {"max_tokens": True}}, "max_tokens"),
        ({**GOOD, "purpose": "p" * 201}, "purpose"),
        ({**GOOD, "purpose": ["p"]}, "purpose"),
        ("not a request", "object"),
    ],
)
def test_a_request_outside_the_limits_is_refused_to_the_agent(
    tmp_path: Path, request_: Any, said: str
) -> None:
    from hyperagents.runs._llm import RequestLimits, RunLLM

    store = InMemoryStorage()
    run = make(store, llm=scripted(tmp_path))
    limits = RequestLimits(prompt_bytes=1024, messages=8, max_tokens=4096)
    model = RunLLM(store, run.id, spec=scripted(tmp_path), limits=limits)
    answer = model.handler(variant_id=None, purpose="improve")
    refused = answer(request_)
    assert set(refused) == {"error"} and said in refused["error"], refused
    assert store.list_llm_calls(run.id) == []  # reached no model, recorded nowhere
    ok = answer({**GOOD, "params": {"temperature": 2, "max_tokens": 4096}, "purpose": "p" * 200})
    assert ok == {"text": REPLIES[0]}  # the script was not consumed by the refusal
    assert answer({**GOOD, "messages": [{"role": "user", "content": "é" * 500}]}) == {
        "text": REPLIES[1]
    }


HUGE_PROMPT_META = LLM_META.replace(
    "    reply = llm.complete(",
    "    refused = []\n"
    "    for kwargs in ({'temperature': 9.0}, {'max_tokens': 10**9}, {'purpose': 'p' * 999}, {}):\n"
    "        try:\n"
    "            llm.complete('x' * 300_000 if not kwargs else 'q', **kwargs)\n"
    "        except llm.LLMError as exc:\n"
    "            refused.append(str(exc))\n"
    "    assert len(refused) == 4 and all('request refused' in r for r in refused), refused\n"
    "    reply = llm.complete(",
)


def test_oversized_prompts_from_a_meta_agent_are_its_errors_not_the_runs(tmp_path: Path) -> None:
    store = InMemoryStorage()
    run = Run.create(
        task=ToyTask(meta_agent=HUGE_PROMPT_META),
        seed=1,
        storage=store,
        config=RunConfig.parse(
            {"subset_size": 10, "selector": "best", "llm": scripted(tmp_path), "sandbox": "process"}
        ),
    )
    assert run.optimize(generations=2).status is RunStatus.COMPLETE
    assert all(v.state is VariantState.COMPLETE for v in run.variants())
    calls = store.list_llm_calls(run.id)
    assert len(calls) == 2  # only the two good requests reached the model and the record
    assert all(len(c.request["messages"][0]["content"]) < 100 for c in calls)
