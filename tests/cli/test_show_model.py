"""``show`` prints a variant's model (files, sizes, hashes, the config pretty-printed); ``show
--file`` and ``diff`` name a weight file as binary, never print its bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperagents.cli import _app
from hyperagents.storages import RDBStorage

from model_helpers import WEIGHTS, ModelRun, store_model_run


@pytest.fixture
def made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ModelRun]:
    monkeypatch.setattr(_app.console, "width", 200)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    storage = RDBStorage(url)
    try:
        return url, store_model_run(storage)
    finally:
        storage.close()


def _cli(*args: str) -> str:
    result = CliRunner().invoke(_app.app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_show_prints_the_model(made: tuple[str, ModelRun]) -> None:
    url, run = made
    out = _cli("show", "m/1", "--storage", url)
    assert "model: 2 files" in out
    assert run.program.blobs["model/model.safetensors"] in out
    assert f"{len(WEIGHTS)} B" in out
    assert '"d_model": 32,' in out and '"n_layers": 2,' in out  # pretty-printed
    assert "model:" not in _cli("show", "m/0", "--storage", url)  # the seed has none


def test_show_file_and_diff_name_weights_as_binary(made: tuple[str, ModelRun]) -> None:
    url, run = made
    out = _cli("show", "m/1", "--storage", url, "--file", "model/model.safetensors")
    digest = run.program.blobs["model/model.safetensors"]
    assert out.split() == [
        "model/model.safetensors:", "binary", "file,", f"{len(WEIGHTS)}", "bytes,", "sha256",
        digest,
    ]  # fmt: skip
    diff = _cli("diff", "m/1", "--storage", url)
    assert "Binary files /dev/null and b/model/model.safetensors differ" in diff
    assert "+++ b/model/config.json" in diff and "shape" not in diff
