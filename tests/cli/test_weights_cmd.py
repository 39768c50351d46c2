"""``weights export-gguf``: a variant's LoRA-tuned model, from the storage, as a GGUF file the
local provider (``--llm local:FILE``) loads; a variant without a model is a clear error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperagents.cli import _app
from hyperagents.storages import RDBStorage

pytest.importorskip("gguf")
pytest.importorskip("peft")

from gguf_helpers import tiny_lora
from model_helpers import store_model_run


def test_export_gguf_writes_a_variant_s_merged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_app.console, "width", 300)
    tiny = tiny_lora(tmp_path)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    storage = RDBStorage(url)
    try:
        store_model_run(storage, "lora", model=tiny.files)
    finally:
        storage.close()
    out = tmp_path / "served.gguf"
    args = ["weights", "export-gguf", "lora/1", "-o", str(out), "--storage", url]
    result = CliRunner().invoke(_app.app, [*args, "--base", str(tiny.base)])
    assert result.exit_code == 0, result.output
    assert "6 tensors merged (f16)" in result.output
    assert f"--llm local:{out.resolve()}" in result.output
    assert out.read_bytes()[:4] == b"GGUF"
    again = CliRunner().invoke(_app.app, [*args, "--base", str(tiny.base)])
    assert again.exit_code == 1 and "exists" in again.output  # never overwritten silently
    seed = CliRunner().invoke(
        _app.app, [*args[:2], "lora/0", "-o", str(tmp_path / "s.gguf"), "--storage", url]
    )
    assert seed.exit_code == 1 and "carries no model" in seed.output
    if importlib.util.find_spec("llama_cpp") is not None:
        from hyperagents.llm import parse_llm_spec

        provider = parse_llm_spec(f"local:{out}")
        assert provider.model == "served"  # type: ignore[attr-defined]
