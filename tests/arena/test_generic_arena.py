"""The arena on any task that declares the protocol: the generic seed test agent (its edits
deterministic in the seed), an arena on ip_validation, on a plug-in task given as a file, and
the clear error for a task without the protocol."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from hyperagents.arena import ArenaConfig, arena_suite, heldout_cases, run_arena, seed_test_agent
from hyperagents.arena._agents import arena_files, propose
from hyperagents.arena._testers import TrustedMutators, rule_library
from hyperagents.arena.seeds.test_agent import char_edit, splice_edit
from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.sandbox import Limits, get_sandbox
from hyperagents.storages import InMemoryStorage
from hyperagents.tasks import load_task
from hyperagents.tasks.ip_validation import oracle_label

SMALL = {"rounds": 2, "proposals": 12, "children": 1, "heldout_size": 30}
LIMITS = Limits(wall_time=30.0, memory_mb=512)

#: What the email-specific seed test agent (before the protocol) proposed for these seeds:
#: the generic agent with email_validation's declaration draws the same.
EMAIL_BEFORE = {
    11: [
        "info@co\u200d\u200bmpany.museum",
        "first_last@sub.example.io\x7f",
        "x@[10.0.999.1",
        '"user()"@xn--80ak6aa92e.com',
        "user@xn--80ak6aa92e.com",
        '" "@example.org',
    ],
    12: [
        'a.b-c."\\\\"@d-e.example.info',
        "a@b.cθo",
        "a@[127.1.999.255",
        "john.smith@example.org@example.org",
        "a@\u200db.co",
        "a@1.127.192.255",
    ],
}
EMAIL_HISTORY = {
    11: [],
    12: [{"input": "a@b.co", "hard": True}, {"input": "user@example.com", "hard": False}],
}


def _proposals(program: Program, seed: int, history: list[dict[str, object]]) -> list[str]:
    found = propose(
        program, history=history, n=6, seed=seed, max_chars=400,
        sandbox=get_sandbox("auto"), limits=LIMITS,
    )  # fmt: skip
    assert found.failure is None, found.failure
    return list(found.inputs)


def test_the_generic_edits_are_string_edits() -> None:
    for seed in range(40):
        rng = random.Random(seed)
        edited = char_edit("192.168.0.1", rng, ":%")
        assert abs(len(edited) - len("192.168.0.1")) <= 1
        if len(edited) == len("192.168.0.1"):
            assert sorted(edited) == sorted("192.168.0.1")  # two neighbours swapped
        spliced = splice_edit("abcdef", random.Random(seed), ["123", "xyz"])
        cut = next(i for i in range(7) if not spliced.startswith("abcdef"[: i + 1]) or i == 6)
        assert spliced[cut:] in {"123"[k:] for k in range(4)} | {"xyz"[k:] for k in range(4)}


def test_the_seed_test_agent_is_written_from_the_declaration_and_deterministic() -> None:
    task = load_task("ip_validation")
    spec = task.arena_spec()
    program = seed_test_agent(task)
    assert set(program) == {"test_agent.py", "task_mutators.py"}
    assert program.text("task_mutators.py") == spec.mutators
    trusted = TrustedMutators.of(spec, task=task.name)
    assert list(trusted.table) == ["char", "splice", "octet", "group", "scope", "embed", "wrap"]
    assert set(trusted.params) == {f"w_{n}" for n in trusted.table} | {"max_edits", "exploit"}
    first = _proposals(program, 5, [])
    assert first == _proposals(program, 5, []) and first != _proposals(program, 6, [])
    assert len(set(first)) == 6 and all(isinstance(v, str) and v for v in first)
    drawn = [trusted.mutate("10.0.0.1", random.Random(3)) for _ in range(2)]
    assert drawn[0] == drawn[1]
    # A task with no mutators of its own: the generic edits only, no task_mutators.py.
    generic = TrustedMutators.of(spec.__class__(input_key="ip", seeds=("1.2.3.4",)), task="x")
    assert list(generic.table) == ["char", "splice"]
    assert set(generic.program()) == {"test_agent.py"}


def test_email_validation_draws_what_its_own_test_agent_drew() -> None:
    program = seed_test_agent(load_task("email_validation"))
    for seed, expected in EMAIL_BEFORE.items():
        assert _proposals(program, seed, EMAIL_HISTORY[seed]) == expected


def test_an_arena_plays_ip_validation_with_its_oracle() -> None:
    store = InMemoryStorage()
    result = run_arena(ArenaConfig(task="ip_validation", **SMALL), storage=store)
    assert result.name == "arena-ip_validation-1x1-s0" and result.rounds == 2
    assert result.heldout["size"] == 30
    assert 0.0 <= result.heldout["seed"] <= result.heldout["champion"] <= 1.0
    suite = arena_suite(store, result.run_id)
    added = [case for case in suite if case["by"] != "task"]
    assert added and len(suite) == len(load_task("ip_validation").instances("train")) + len(added)
    for case in added:
        assert (case["valid"], case["reason"][:300]) == oracle_label(case["input"])
    heldout = heldout_cases(load_task("ip_validation"), seed=0, size=30)
    assert not {c["input"] for c in heldout} & {c["input"] for c in suite}
    seed_program = store.get_program(store.get_run(result.run_id).seed_program_id)
    assert "task_mutators.py" in seed_program


PLUGIN = '''
from hyperagents.improvers import meta_agent_files
from hyperagents.program import Program
from hyperagents.tasks import ArenaSpec, Instance, Score, Task, Verdict

HEX = "0123456789abcdef"
ROWS = [("ff", True), ("0a1", True), ("xyz", False), ("", False), ("12", True), ("g1", False)]
AGENT = """
PARAMS = {"lower_only": False}
PARAM_SPACE = {"lower_only": {"type": "bool"}}


def solve(inputs):
    text = inputs.get("hex", "")
    return bool(text) and " " not in text
"""


class Hex(Task):
    name = "hex"
    description = "Is the string hex digits (lowercase, nothing around them)?"

    def instances(self, split):
        return [
            Instance(f"{split}-{i}", {"hex": t}, {"valid": v, "reason": ""})
            for i, (t, v) in enumerate(ROWS)
        ]

    def score(self, instance, output):
        return Score(float(output is instance.target["valid"]))

    def seed_program(self):
        return Program({"task_agent.py": AGENT, **meta_agent_files("offline")})

    def arena(self):
        return ArenaSpec(input_key="hex")

    def oracle(self, value):
        ok = bool(value) and all(ch in HEX for ch in value)
        return Verdict(ok, "" if ok else "not lowercase hex")
'''


def test_a_plugin_that_declares_the_protocol_plays_an_arena(tmp_path: Path) -> None:
    path = tmp_path / "hex_task.py"
    path.write_text(PLUGIN, encoding="utf-8")
    store = InMemoryStorage()
    config = ArenaConfig(task=f"{path}:Hex", **SMALL | {"heldout_size": 10})
    result = run_arena(config, storage=store, name="hex-arena")
    assert result.heldout["size"] == 10 and result.rounds == 2
    added = [case for case in arena_suite(store, result.run_id) if case["by"] != "task"]
    assert added  # the seed takes any word for hex: the generic edits insert other characters
    for case in added:
        assert case["valid"] == (
            bool(case["input"]) and set(case["input"]) <= set("0123456789abcdef")
        )


def test_a_task_without_the_protocol_is_refused_before_any_run() -> None:
    store = InMemoryStorage()
    with pytest.raises(ConfigError, match="'arith' cannot play an arena"):
        run_arena(ArenaConfig(task="arith", **SMALL), storage=store)
    assert store.list_runs() == []


def test_the_rule_library_is_the_tasks_or_the_generic_one(tmp_path: Path) -> None:
    email = rule_library(load_task("email_validation").arena_spec())
    assert "def _arena_parts(address)" in email["rule_features"]  # the task's own
    assert "def arena_candidates(addresses" in email["rule_candidates"]
    generic = rule_library(load_task("ip_validation").arena_spec())
    features: dict[str, Any] = {}
    exec(generic["rule_features"], features)
    exec(generic["rule_candidates"], features)
    feature = features["arena_feature"]
    assert feature("part_num_gt", [".", 255], "1.2.256.4")
    assert not feature("part_num_gt", [".", 255], "1.2.255.4")
    assert feature("part_leading_zero", ".", "1.02.3.4") and feature("doubled", ":", "1::2")
    assert feature("parts_ne", [".", 4], "1.2.3") and not feature("parts_ne", [".", 4], "1.2.3.4")
    assert not feature("no-such-feature", "", "x")
    tried = features["arena_candidates"](["1.2.3.04", "1::2::3"])
    assert ("part_leading_zero", ".") in tried and ("doubled", ":") in tried
    # The arena meta agent synthesises a rule with it and writes it, library and all, into
    # the task agent, which still answers.
    work = tmp_path / "agent"
    work.mkdir()
    (work / "task_agent.py").write_text(
        "def solve(inputs):\n    return inputs.get('ip', '').count('.') == 3\n", "utf-8"
    )
    cases = [("1.2.3.04", False), ("1.2.3.4", True), ("01.2.3.4", False), ("9.9.9.9", True)]
    report = {
        "seed": 1,
        "task": {"input_key": "ip", **generic},
        "train_inputs": [{"id": f"c-{i}", "inputs": {"ip": t}} for i, (t, _) in enumerate(cases)],
        "evaluation": {
            "results": [
                {"id": f"c-{i}", "output": True, "score": 1.0 if v else 0.0}
                for i, (_, v) in enumerate(cases)
            ]
        },
    }
    namespace: dict[str, Any] = {}
    exec(arena_files("meta_arena.py")["meta_arena.py"], namespace)
    found = namespace["synthesise"](report, random.Random(0))
    assert found is not None and found[1] == 2  # both leading zeros fixed, nothing broken
    namespace["_write_rule"](str(work / "task_agent.py"), found[0], "ip", generic["rule_features"])
    agent: dict[str, Any] = {}
    exec((work / "task_agent.py").read_text("utf-8"), agent)
    assert [agent["solve"]({"ip": t}) for t, _ in cases] == [v for _, v in cases]
