"""The dashboard shows a variant's model: its files with sizes and hashes, its config
pretty-printed, weights as binary in the diff and the file view (never their bytes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hyperagents.dashboard import create_app
from hyperagents.storages import RDBStorage

from model_helpers import CONFIG, WEIGHTS, ModelRun, store_model_run


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, ModelRun]]:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    storage = RDBStorage(url)
    made = store_model_run(storage)
    app = create_app(storage, storage_url=url, log_dir=tmp_path / "logs")
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        client.get("/")
        yield client, made
    storage.close()


def test_the_variant_detail_shows_the_model(site: tuple[TestClient, ModelRun]) -> None:
    client, made = site
    model = client.get(f"/api/variants/{made.child}").json()["model"]
    assert model["files"] == [
        {
            "path": "model/config.json",
            "size": len(CONFIG),
            "sha256": made.program.blobs["model/config.json"],
            "binary": False,
        },
        {
            "path": "model/model.safetensors",
            "size": len(WEIGHTS),
            "sha256": made.program.blobs["model/model.safetensors"],
            "binary": True,
        },
    ]
    assert model["size"] == len(CONFIG) + len(WEIGHTS)
    assert model["config"] == json.dumps(json.loads(CONFIG), indent=2)
    assert client.get(f"/api/variants/{made.seed}").json()["model"] is None


def test_weights_are_binary_in_the_diff_and_the_file_view(
    site: tuple[TestClient, ModelRun],
) -> None:
    client, made = site
    diff = client.get(f"/api/variants/{made.child}/diff").json()
    files = {f["path"]: f for f in diff["files"]}
    weights = files["model/model.safetensors"]
    assert weights["binary"] is True and weights["hunks"] == []
    assert weights["note"] == "Binary files /dev/null and b/model/model.safetensors differ"
    assert weights["size"] == len(WEIGHTS)
    assert files["model/config.json"]["added"] == 1  # the config is text
    assert "shape" not in json.dumps(weights)
    view = client.get(
        f"/api/variants/{made.child}/file", params={"path": "model/model.safetensors"}
    ).json()
    assert view["binary"] is True and view["lines"] == []
    assert view["sha256"] == made.program.blobs["model/model.safetensors"]
