"""End to end with the real embedded model: ``hyperagents run --llm local`` for two generations.

The LLM task's agent routes requests with the local model and the seed LLM meta agent asks it
for edits; everything runs offline on the CPU. The bundled model is tiny (135M parameters), so
the test asserts that the run works and is accounted for, not that the model's edits are good.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyperagents.storages import get_storage

from tests_local import local_model

HERE = Path(__file__).resolve().parent

#: The model's replies are cut after LLM_TIMEOUT seconds, and the seed LLM meta agent takes at
#: most 12 steps: a meta agent call lasts at most about 12 x 20 s however busy the machine (a
#: busy machine writes fewer tokens in that time). Its own limit is far past that, so it is never
#: killed halfway (its replay would then ask for a reply its record does not hold).
LLM_TIMEOUT = 20
META_TIMEOUT = 900
#: Seconds for one command (and, twice that, for the test): only a hang outlasts them.
COMMAND_TIMEOUT = 1800


def hyperagents(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERAGENTS_")}
    return subprocess.run(
        [sys.executable, "-m", "hyperagents", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


@local_model
@pytest.mark.slow
@pytest.mark.timeout(2 * COMMAND_TIMEOUT)
def test_two_generations_with_the_local_model_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'local.db'}"
    config = tmp_path / "config.json"
    # Bound the tiny model's rambling (each reply is cut); the meta agent ends by itself.
    config.write_text(json.dumps({"llm_timeout": LLM_TIMEOUT, "meta_timeout": META_TIMEOUT}))
    task = f"{HERE / 'small_support.py'}:SmallSupport"
    common = ("--storage", url, "-q")
    proc = hyperagents(
        "run", "-t", task, "--llm", "local", "--meta", "llm", "-g", "2", "-w", "1",
        "--subset-size", "3", "--config", str(config), "-n", "local", *common, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    store = get_storage(url)
    run = store.get_run_by_name("local")
    variants = store.list_variants(run.id)
    assert [v.generation for v in variants] == [0, 1, 2]
    assert all(v.state.is_terminal for v in variants)
    assert variants[0].scores["val"] >= 0.0  # the seed was evaluated with the model's routing
    calls = store.list_llm_calls(run.id)
    assert {c.provider for c in calls} == {"local"}
    purposes = {c.purpose.split("/")[-1] for c in calls}
    assert "route" in purposes and any(p.startswith("meta:") for p in purposes)
    assert all(c.cost == 0.0 for c in calls)
    assert sum(c.completion_tokens for c in calls) > 0
    # The recorded run replays exactly, without the model.
    proc = hyperagents("run", "--replay", "local", *common, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    replay = store.list_variants(store.get_run_by_name("local-replay").id)
    assert [(v.generation, v.state, v.program_id, v.scores) for v in replay] == [
        (v.generation, v.state, v.program_id, v.scores) for v in variants
    ]
