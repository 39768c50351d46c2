"""The arena: oracle labels, the held-out suite kept out of every sandbox, hostile test agents,
resume after a kill, and the tournament's replacement of the worst agents."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from arena_helpers import RecordingSandbox
from hyperagents.arena import (
    Agents,
    ArenaConfig,
    ArenaResult,
    arena_series,
    arena_suite,
    heldout_cases,
    run_arena,
    seed_code_agent,
    seed_test_agent,
)
from hyperagents.exceptions import SandboxError
from hyperagents.program import Program
from hyperagents.storages import BaseStorage, InMemoryStorage
from hyperagents.tasks import Split, load_task
from hyperagents.tasks.email_validation import oracle_label

SMALL = {"rounds": 2, "proposals": 12, "children": 1, "heldout_size": 40}


def _tester(body: str) -> Program:
    return Program({"test_agent.py": body})


def _play(
    store: BaseStorage, *, sandbox: Any = None, agents: Agents | None = None, **values: Any
) -> ArenaResult:
    config = ArenaConfig(**(SMALL | values))
    return run_arena(config, storage=store, sandbox=sandbox, agents=agents)


def test_the_oracle_labels_every_input_and_the_suite_grows_only_with_hard_cases() -> None:
    # The test agent says its inputs' labels (wrongly): only the strings count, each labelled
    # by the oracle; its tuples and dicts are dropped.
    lying = _tester(
        "def propose(history, n, seed):\n"
        "    out = ['user@example.com', 'a..b@example.com', 'user@[300.1.1.1]', 'x@y.test']\n"
        "    out += [('user@example.com', False), {'input': 'q@q.com', 'valid': False}, 7]\n"
        "    return out\n"
    )
    store = InMemoryStorage()
    result = _play(store, agents=Agents(test=[lying]), rounds=1)
    suite = arena_suite(store, result.run_id)
    added = [case for case in suite if case["by"] != "task"]
    assert added, "the seed code agent gets some of these wrong"
    for case in added:
        assert case["valid"] == oracle_label(case["input"])[0]
        assert case["input"] in {"a..b@example.com", "user@[300.1.1.1]", "x@y.test"}
    (dropped,) = store.list_events(result.run_id, kinds=["arena.agent_failed"])
    assert dropped.data["reason"].startswith("3 of its proposals dropped")
    series = arena_series(store, result.run_id)
    assert series[0]["added"] == series[0]["hard"] == len(added)
    assert series[0]["suite_size"] == len(suite)
    # user@example.com is valid and the seed says so: not hard, not added.
    assert "user@example.com" not in {case["input"] for case in added}


def test_the_heldout_suite_never_enters_the_sandbox() -> None:
    sandbox = RecordingSandbox()
    store = InMemoryStorage()
    result = _play(store, sandbox=sandbox, code_agents=2, test_agents=2)
    task = load_task("email_validation", {})
    heldout = [case["input"] for case in heldout_cases(task, seed=0, size=40)]
    assert result.heldout["size"] == len(heldout) == 40
    agent_calls = sandbox.seen[:-2]  # the last two scored the champion and the seed on it
    assert all(len(calls) > 0 for calls in agent_calls)
    leaked = [value for value in heldout if any(value in strings for strings in agent_calls)]
    assert leaked == []
    assert set(heldout) <= sandbox.seen[-1] and set(heldout) <= sandbox.seen[-2]
    assert 0.0 <= result.heldout["champion"] <= 1.0


def test_hostile_test_agents_are_recorded_and_the_arena_goes_on() -> None:
    hostile = [
        _tester("def propose(history, n, seed):\n    raise RuntimeError('boom')\n"),
        _tester("def propose(history, n, seed):\n    while True:\n        pass\n"),
        _tester("def propose(history, n, seed):\n    return ['a@b.co' * 1000] * 100000\n"),
        _tester("def propose(history, n, seed):\n    return {'not': 'a list'}\n"),
    ]
    store = InMemoryStorage()
    result = _play(store, agents=Agents(test=hostile), test_agents=4, rounds=1, propose_timeout=2.0)
    failures = store.list_events(result.run_id, kinds=["arena.agent_failed"])
    failed = {event.data["agent"]: event.data["reason"] for event in failures}
    assert set(failed) == {"t0", "t1", "t2", "t3"}
    assert "boom" in failed["t0"]
    assert failed["t1"].startswith("timeout")
    assert "not a list" in failed["t3"]
    train = load_task("email_validation", {}).instances(Split.TRAIN)
    assert result.rounds == 1 and result.suite_size == len(train)  # nothing was proposed


def _final(store: BaseStorage, result: ArenaResult) -> tuple[Any, ...]:
    return (
        result.champion,
        result.heldout,
        result.evaluations,
        [case["input"] for case in arena_suite(store, result.run_id)],
    )


def test_resume_after_a_kill_ends_as_an_arena_never_killed() -> None:
    whole_store = InMemoryStorage()
    whole = _play(whole_store, rounds=3)
    killed_store = InMemoryStorage()
    # Killed in round 2 (its 9th sandbox call), then resumed from round 1's stored state.
    with pytest.raises(SandboxError):
        _play(killed_store, sandbox=RecordingSandbox(fail_at=9), rounds=3)
    assert len(killed_store.list_events(1, kinds=["arena.round"])) == 1
    resumed = _play(killed_store, rounds=3)
    assert _final(killed_store, resumed) == _final(whole_store, whole)
    assert [s["round"] for s in arena_series(killed_store, resumed.run_id)] == [1, 2, 3]


def test_the_tournament_replaces_its_worst_agents() -> None:
    seed = seed_code_agent(load_task("email_validation", {}), "arena")
    broken = seed.with_files({"task_agent.py": "def solve(inputs):\n    return None\n"})
    idle = _tester("def propose(history, n, seed):\n    return []\n")
    store = InMemoryStorage()
    result = _play(
        store,
        agents=Agents(
            code=[seed, broken], test=[idle, seed_test_agent(load_task("email_validation", {}))]
        ),
        code_agents=2,
        test_agents=2,
        replace_every=1,
        rounds=1,
    )
    events = store.list_events(result.run_id, kinds=["arena.replaced"])
    replaced = {event.data["kind"]: event.data for event in events}
    assert replaced["code"]["replaced"] == "c1" and replaced["code"]["winner"] == "c0"
    assert replaced["test"]["replaced"] == "t0" and replaced["test"]["winner"] == "t1"
    series = arena_series(store, result.run_id)
    assert set(series[0]["scores"]) == {"c0", "c2"}
    assert set(series[0]["test_hard"]) == {"t1", "t2"}
    assert series[0]["scores"]["c2"] >= series[0]["scores_grown"]["c0"]


def test_code_agents_propose_inputs_of_their_own_and_may_mutate_their_propose(
    tmp_path: Path,
) -> None:
    from hyperagents.arena.seeds import meta_arena, test_agent  # the seed files, run here

    store = InMemoryStorage()
    result = _play(store, self_propose=True, code_agents=2, test_agents=1, rounds=1)
    sources = {case["by"] for case in arena_suite(store, result.run_id)}
    assert {"c0", "c1"} & sources, sources  # their own proposals reached the suite
    path = tmp_path / "test_agent.py"
    path.write_text((Path(test_agent.__file__)).read_text())
    changed = meta_arena.mutate_propose(str(path), random.Random(3))
    assert changed is not None
    ((name, (old, new)),) = changed.items()
    space = test_agent.PARAM_SPACE[name]
    assert old == test_agent.PARAMS[name] and space["low"] <= new <= space["high"]
    namespace: dict[str, Any] = {}
    exec(path.read_text(), namespace)
    assert namespace["PARAMS"][name] == new
    assert len(namespace["propose"]([], 5, 0)) == 5


def test_llm_code_agents_ask_the_gateway_and_their_calls_are_recorded(tmp_path: Path) -> None:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(["I would change nothing."] * 10))
    store = InMemoryStorage()
    result = _play(store, meta="llm", llm=f"scripted:{script}", rounds=1, children=2)
    calls = store.list_llm_calls(result.run_id)
    assert calls, "the LLM meta agent asked the model through the arena's gateway"
    assert all(call.purpose.startswith("improve") for call in calls)
    assert result.rounds == 1  # whatever the model said, the arena went on
    with pytest.raises(ValueError, match="needs an llm spec"):
        ArenaConfig(meta="llm")
