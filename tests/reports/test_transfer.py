"""Transfer: a meta agent evolved on one task starts runs on another; the report compares."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.reports import ExperimentSpec, build_report, run_experiment
from hyperagents.runs import Run
from hyperagents.storages import get_storage

from toytask import TUNABLE_TASK_AGENT as TUNABLE
from toytask import ToyTask


def task_a() -> ToyTask:
    return ToyTask(task_agent=TUNABLE, seed=0)


def task_b() -> ToyTask:
    return ToyTask(task_agent=TUNABLE, seed=7)  # other data: another task instance


@pytest.fixture(scope="module")
def donor(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Run]:
    url = f"sqlite:///{tmp_path_factory.mktemp('transfer') / 't.db'}"
    run = Run.create(
        task=task_a(),
        name="on-a",
        storage=url,
        config={"subset_size": 10, "meta_agent": "offline"},
    )
    run.optimize(generations=6)
    return url, run


def test_a_run_starts_with_the_transferred_meta_agent(donor: tuple[str, Run]) -> None:
    url, source = donor
    champion = source.champion()
    assert champion is not None and champion.generation > 0
    evolved = source.program(champion)
    run = Run.create(task=task_b(), name="b-with-a", storage=url, meta_from=evolved)
    seed = run.program(run.variants()[0])
    assert seed["meta_agent.py"] == evolved["meta_agent.py"]  # the evolved META included
    assert seed["task_agent.py"] == task_b().seed_program()["task_agent.py"]
    assert seed["meta_agent.py"] != task_b().seed_program()["meta_agent.py"]
    with pytest.raises(ConfigError, match="not both"):
        Run.create(task=task_b(), storage=url, config={"meta_agent": "offline"}, meta_from=evolved)
    with pytest.raises(ConfigError, match=r"no meta_agent\.py"):
        Run.create(task=task_b(), storage=url, meta_from=Program({"x.py": "pass\n"}))


def test_a_transfer_experiment_has_both_arms_and_the_report_gives_imp_at_k(
    donor: tuple[str, Run], tmp_path: Path
) -> None:
    url, _ = donor
    spec = ExperimentSpec.parse(
        name="ab",
        task="toy",
        modes="frozen-meta",
        seeds=2,
        generations=4,
        config={"subset_size": 10},
        meta_from="on-a/champion",
    )
    records = run_experiment(spec, storage=url, workers=2, task=task_b())
    assert [r.name for r in records] == [
        "ab-frozen-meta-s0",
        "ab-frozen-meta-s1",
        "ab-frozen-meta-transfer-s0",
        "ab-frozen-meta-transfer-s1",
    ]
    store = get_storage(url)
    source = Run.load("on-a", storage=url, task=task_a())
    evolved_meta = source.program(source.champion() or 0)["meta_agent.py"]
    for record in records[2:]:
        assert record.arm == "frozen-meta+transfer"
        assert record.attrs["meta_from"] == "on-a/champion"
        seed = store.get_program(store.list_variants(record.id)[0].program_id or "")
        assert seed["meta_agent.py"] == evolved_meta
    report = build_report("ab", storage=url, out=tmp_path, k=4)
    arms = report.statistics["modes"]
    assert set(arms) == {"frozen-meta", "frozen-meta+transfer"}
    for entry in arms.values():
        assert entry["imp_at_k"] is not None and len(entry["imp_at_k_values"]) == 2
    (pair,) = report.statistics["pairs"]
    assert pair["imp_p_value"] is not None
    assert "imp@4" in report.files["markdown"].read_text()


def test_the_cli_run_takes_a_meta_agent_from_another_run(
    donor: tuple[str, Run], tmp_path: Path
) -> None:
    url, source = donor
    toy = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERAGENTS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "hyperagents", "run", "-t", toy, "-g", "1", "-n", "cli-transfer",
         "--meta-from", "on-a/champion", "--storage", url, "-q", "-w", "1"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    store = get_storage(url)
    record = store.get_run_by_name("cli-transfer")
    seed = store.get_program(store.list_variants(record.id)[0].program_id or "")
    assert seed["meta_agent.py"] == source.program(source.champion() or 0)["meta_agent.py"]
    assert record.attrs["meta_from"] == "on-a/champion"
