"""The dashboard's arena series: suite growth and score drops and recoveries per round, the
test agents' hard cases (clipped), the tournament's replacements, the held-out result, and
arenas of zero rounds, partial arenas and runs that are no arena."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from arena_site import HOSTILE_INPUTS, Arenas, play_arenas
from fastapi.testclient import TestClient

from hyperagents.dashboard import create_app
from hyperagents.storages import RDBStorage

from dashboard_helpers import make_run


@pytest.fixture(scope="module")
def arenas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RDBStorage, Arenas, Path]]:
    tmp = tmp_path_factory.mktemp("arena")
    storage = RDBStorage(f"sqlite:///{tmp / 'runs.db'}")
    played = play_arenas(storage)
    make_run(storage, "toy", 1)
    yield storage, played, tmp
    storage.close()


@pytest.fixture
def client(arenas: tuple[RDBStorage, Arenas, Path]) -> Iterator[TestClient]:
    storage, _, tmp = arenas
    app = create_app(storage, storage_url=f"sqlite:///{tmp / 'runs.db'}", log_dir=tmp / "logs")
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        test_client.get("/")
        yield test_client


def _arena(client: TestClient, name: str) -> dict[str, Any]:
    answer = client.get(f"/api/runs/{name}/arena")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_arena_series_and_the_runs_list(
    client: TestClient, arenas: tuple[RDBStorage, Arenas, Path]
) -> None:
    result = arenas[1].duel
    listed = {row["name"]: row for row in client.get("/api/runs").json()["runs"]}
    assert listed[result.name]["arena"] is True and listed["toy"]["arena"] is False
    body = _arena(client, str(result.run_id))
    assert body["run"]["name"] == result.name and body["run"]["status"] == "complete"
    assert body["target_rounds"] == 2 and body["tournament"] == [1, 1]
    rounds = body["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[0]["added"] > 0  # the seed agent gets some proposals wrong
    assert rounds[0]["before"] == {"c0": None}  # not scored before its first round
    if rounds[1]["added"]:  # cases it gets wrong joined the suite: its score drops
        assert rounds[1]["drop"]["c0"] < rounds[1]["before"]["c0"]
    assert rounds[1]["suite_size"] == rounds[0]["suite_size"] + rounds[1]["added"]
    assert rounds[1]["before"] == rounds[0]["after"]
    assert rounds[-1]["after"] == {"c0": result.champion["score"]}
    assert body["code_agents"] == ["c0"] and body["test_agents"] == ["t0"]
    # The hard cases shown are the suite's, by the round that added them.
    first = rounds[0]
    assert first["hard_cases_in_suite"] == first["added"] == len(first["hard_cases"])
    assert {case["by"] for case in first["hard_cases"]} == {"t0"}
    assert body["heldout"] == {
        "round": 2,
        "size": 20,
        "champion_name": result.champion["name"],
        "champion": result.heldout["champion"],
        "seed": result.heldout["seed"],
    }
    assert body["replacements"] == []


def test_a_tournament_s_replacements_and_hostile_inputs_clipped(
    client: TestClient, arenas: tuple[RDBStorage, Arenas, Path]
) -> None:
    body = _arena(client, "arena-tournament")
    first = body["rounds"][0]
    # The code agent that answers nothing gets both inputs wrong: they join the suite.
    shown = {case["input"] for case in first["hard_cases"]}
    markup, long = HOSTILE_INPUTS
    assert markup in shown  # as text: the page puts it in as text
    clipped = next(case for case in first["hard_cases"] if case["chars"] == len(long))
    assert len(clipped["input"]) == 200 and clipped["input"].endswith("…")
    assert long.startswith(clipped["input"][:-1])
    kinds = {(r["round"], r["kind"]): r for r in body["replacements"]}
    assert kinds[(1, "code")]["replaced"] == "c1" and kinds[(1, "code")]["winner"] == "c0"
    assert kinds[(1, "code")]["new"] == "c2"
    assert first["replaced"] == [r for r in body["replacements"] if r["round"] == 1]
    assert set(first["after"]) == {"c0", "c2"}  # c1 left, its replacement scored
    assert body["code_agents"][:3] == ["c0", "c1", "c2"]
    assert body["tournament"] == [2, 2]


def test_a_running_arena_with_some_rounds_and_one_with_none(client: TestClient) -> None:
    partial = _arena(client, "arena-partial")
    assert partial["run"]["status"] == "running"
    assert [r["round"] for r in partial["rounds"]] == [1] and partial["target_rounds"] == 3
    assert partial["heldout"] is None  # measured when the arena has played its rounds
    empty = _arena(client, "arena-empty")
    assert empty["rounds"] == [] and empty["code_agents"] == [] and empty["target_rounds"] == 0
    assert empty["heldout"] is not None and empty["heldout"]["round"] == 0


def test_a_run_that_is_no_arena_and_a_missing_run(client: TestClient) -> None:
    other = client.get("/api/runs/toy/arena")
    assert other.status_code == 400
    assert other.json()["error"] == "run 'toy' is not an arena (mode hyperagent): it has no rounds"
    missing = client.get("/api/runs/no-such-run/arena")
    assert missing.status_code == 404
