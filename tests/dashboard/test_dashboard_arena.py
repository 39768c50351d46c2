"""The dashboard's arena series: suite growth and score drops and recoveries per round."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hyperagents.arena import ArenaConfig, run_arena
from hyperagents.dashboard import create_app
from hyperagents.storages import RDBStorage

from dashboard_helpers import make_run


def test_the_arena_series_and_the_runs_list(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    storage = RDBStorage(url)
    config = ArenaConfig(rounds=2, proposals=8, children=1, heldout_size=20)
    result = run_arena(config, storage=storage)
    make_run(storage, "toy", 1)
    app = create_app(storage, storage_url=url, log_dir=tmp_path / "logs")
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        client.get("/")
        listed = client.get("/api/runs")
        assert listed.status_code == 200
        assert result.name in {row["name"] for row in listed.json()["runs"]}
        answer = client.get(f"/api/runs/{result.run_id}/arena")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rounds = body["rounds"]
        assert [r["round"] for r in rounds] == [1, 2]
        assert rounds[0]["added"] > 0  # the seed agent gets some proposals wrong
        assert rounds[0]["before"] == {"c0": None}  # not scored before its first round
        if rounds[1]["added"]:  # cases it gets wrong joined the suite: its score drops
            assert rounds[1]["drop"]["c0"] < rounds[1]["before"]["c0"]
        assert rounds[1]["suite_size"] == rounds[0]["suite_size"] + rounds[1]["added"]
        assert rounds[1]["before"] == rounds[0]["after"]
        assert rounds[-1]["after"] == {"c0": result.champion["score"]}
        assert body["heldout"]["champion"] == result.heldout["champion"]
        other = client.get("/api/runs/toy/arena")
        assert other.status_code == 400 and "not an arena" in other.json()["error"]
    storage.close()
