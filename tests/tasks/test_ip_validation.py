"""The ip_validation task: its labelled suite, the oracle, splits, scoring, the seed and its
arena declaration."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from hyperagents.tasks import ArenaSpec, Split, Verdict, load_task
from hyperagents.tasks.ip_validation import IpValidationTask, oracle_label
from hyperagents.tasks.ip_validation._suite import HAND_WRITTEN, build_suite, load_suite

SEED_AGENT = (
    Path(__file__).resolve().parents[2] / "src/hyperagents/tasks/ip_validation/seed/task_agent.py"
)


def seed_agent(**params: Any) -> Any:
    namespace: dict[str, Any] = {"__name__": "seed_agent"}
    exec(compile(SEED_AGENT.read_text("utf-8"), str(SEED_AGENT), "exec"), namespace)
    namespace["PARAMS"].update(params)
    return namespace["solve"]


def accuracy(task: IpValidationTask, split: str, solve: Any) -> float:
    instances = task.instances(split)
    return sum(task.score(i, solve(i.inputs)).value for i in instances) / len(instances)


def test_the_stored_labels_are_the_oracles_and_the_suite_is_rebuilt_the_same() -> None:
    task = IpValidationTask()
    for split in Split:
        for inst in task.instances(split):
            valid, reason = oracle_label(inst.inputs["ip"])
            assert valid is inst.target["valid"], inst
            assert reason == inst.target["reason"]
    assert build_suite(oracle_label) == load_suite()  # suite.json is what the builder makes


def test_the_oracle_is_ipaddress_under_its_policy() -> None:
    assert oracle_label("192.168.0.1") == (True, "")
    assert oracle_label("fe80::1%eth0") == (True, "")
    assert oracle_label("::ffff:1.2.3.4") == (True, "")
    valid, reason = oracle_label("1.2.3.04")
    assert not valid and "Leading zeros" in reason  # IPv4Address's own message
    valid, reason = oracle_label("1::2::3")
    assert not valid and "'::'" in reason  # IPv6Address's own message
    for odd in (" 1.2.3.4", "1.2.3.4\n", "[::1]", "1.2.3.4/24", "\u0661.\u0662.\u0663.\u0664"):
        assert oracle_label(odd)[0] is False, odd
    assert oracle_label(1234) == (False, "not a string")  # type: ignore[arg-type]
    assert IpValidationTask().oracle("::1") == Verdict(True, "")


def test_every_split_holds_every_kind_of_case() -> None:
    task = load_task("ip_validation")
    assert isinstance(task, IpValidationTask)
    rows = load_suite()
    assert len({row["ip"] for row in rows}) == len(rows)
    assert {row["category"] for row in rows} == set(HAND_WRITTEN) | {"mutation"}
    ids = [i.id for split in Split for i in task.instances(split)]
    assert len(set(ids)) == len(ids) == len(rows)
    for split in Split:
        kinds = collections.Counter(i.target["valid"] for i in task.instances(split))
        assert kinds[True] > 20 and kinds[False] > 50
        texts = {i.inputs["ip"] for i in task.instances(split)}
        assert any(":" in t for t in texts) and any("%" in t for t in texts)
    other = IpValidationTask(seed=1).instances("val")
    assert [i.id for i in other] != [i.id for i in task.instances("val")]


def test_scoring_needs_a_bool_and_explains() -> None:
    task = IpValidationTask()
    inst = next(i for i in task.instances("train") if not i.target["valid"])
    assert task.score(inst, False).value == 1.0
    wrong = task.score(inst, True)
    assert wrong.value == 0.0 and "said valid, is invalid (" in wrong.feedback
    for odd in (1, "yes", None, [True]):
        assert task.score(inst, odd).value == 0.0


def test_the_seed_is_naive_and_its_parameters_matter_but_not_all() -> None:
    task = IpValidationTask()
    naive = accuracy(task, "val", seed_agent())
    tuned = accuracy(
        task,
        "val",
        seed_agent(
            check_octet_range=True,
            reject_leading_zeros=True,
            allow_ipv6=True,
            check_group_count=True,
            max_group_digits=4,
            allow_embedded_ipv4=True,
            allow_scope_id=True,
        ),
    )
    assert 0.55 < naive < 0.7 and tuned > naive + 0.2
    assert tuned < 0.97  # what its code lacks (a trailing newline, Unicode digits...) remains
    solve = seed_agent(check_octet_range=True)
    assert solve({"ip": "1.2.3.4\n"}) is True  # `$` before a final newline: a real gap


def test_the_arena_declaration_uses_the_train_splits_valid_addresses() -> None:
    task = IpValidationTask()
    declared = task.arena()
    assert isinstance(declared, ArenaSpec) and declared.input_key == "ip"
    assert "MUTATORS" in declared.mutators and not declared.seeds
    spec = task.arena_spec()
    train_valid = [i.inputs["ip"] for i in task.instances("train") if i.target["valid"]]
    assert list(spec.seeds) == train_valid[: len(spec.seeds)] and spec.seeds
    assert spec.generic == ("char", "splice")
    assert set("0123456789.:%") <= set(spec.alphabet)
