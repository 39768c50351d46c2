"""Checkpoints a sandboxed trainer writes are read at once, safely, while it runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hyperagents.program import Program
from hyperagents.sandbox import CHECKPOINT_DIR, get_sandbox
from hyperagents.sandbox._checkpoint import checkpoint_name, read_checkpoint
from hyperagents.weights import TrainingLimits, run_trainer

MB = 1 << 20


def _folder(root: Path, name: str = "step-3") -> Path:
    folder = root / CHECKPOINT_DIR / name
    folder.mkdir(parents=True)
    return folder


def test_a_flat_folder_of_regular_files_is_read(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "state.pt").write_bytes(b"weights")
    (folder / "meta.json").write_text("{}")
    files = read_checkpoint(tmp_path, "step-3", max_bytes=MB)
    assert files == {"meta.json": b"{}", "state.pt": b"weights"}


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "/etc", "x" * 65, "-x", 3, None])
def test_a_name_that_is_not_plain_is_refused(name: Any, tmp_path: Path) -> None:
    assert checkpoint_name(name) is None
    assert read_checkpoint(tmp_path, name, max_bytes=MB) is None


def test_links_fifos_subfolders_and_size_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("the engine's")
    folder = _folder(tmp_path)
    (folder / "state.pt").symlink_to(secret)
    assert read_checkpoint(tmp_path, "step-3", max_bytes=MB) is None  # a file that is a link
    (folder / "state.pt").unlink()
    os.mkfifo(folder / "state.pt")
    assert read_checkpoint(tmp_path, "step-3", max_bytes=MB) is None  # never blocks on a FIFO
    (folder / "state.pt").unlink()
    (folder / "inner").mkdir()
    assert read_checkpoint(tmp_path, "step-3", max_bytes=MB) is None
    (folder / "inner").rmdir()
    (folder / "state.pt").write_bytes(b"x" * 100)
    assert read_checkpoint(tmp_path, "step-3", max_bytes=99) is None
    assert read_checkpoint(tmp_path, "step-3", max_bytes=100) == {"state.pt": b"x" * 100}
    (tmp_path / CHECKPOINT_DIR / "step-4").symlink_to(folder)  # a folder that is a link
    assert read_checkpoint(tmp_path, "step-4", max_bytes=MB) is None
    os.rename(tmp_path / CHECKPOINT_DIR, tmp_path / "elsewhere")
    (tmp_path / CHECKPOINT_DIR).symlink_to(tmp_path / "elsewhere")  # the parent a link
    assert read_checkpoint(tmp_path, "step-3", max_bytes=MB) is None


TRAINER = """import json
import os


def train(request, progress):
    assert request["checkpoint_seconds"] == 30.0
    for step in (1, 2):
        folder = os.path.join(request["checkpoint_dir"], "step-%d" % step)
        os.makedirs(folder)
        with open(os.path.join(folder, "state.json"), "w") as handle:
            json.dump({"step": step, "resumed": request["resume_dir"]}, handle)
        progress({"step": step, "loss": 1.0 / step, "checkpoint": "step-%d" % step})
    os.symlink("/etc/hostname", os.path.join(request["checkpoint_dir"], "step-3"))
    progress({"step": 3, "loss": 0.1, "checkpoint": "step-3"})
    progress({"step": 4, "loss": 0.1, "checkpoint": "../model"})
    with open(os.path.join(request["out_dir"], "config.json"), "w") as handle:
        handle.write("{}")
    with open(os.path.join(request["out_dir"], "model.safetensors"), "wb") as handle:
        handle.write(b"\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x00{}")
    return {"resumed": open(os.path.join(request["resume_dir"], "state.json")).read()
            if request["resume_dir"] else None}
"""


@pytest.mark.parametrize("warm", [False, True])
def test_the_sandbox_hands_each_checkpoint_over_as_it_comes(warm: bool) -> None:
    sandbox = get_sandbox("auto")
    if warm:
        sandbox.set_warm(1)  # type: ignore[attr-defined]
    kept: list[tuple[int, dict[str, bytes]]] = []
    try:
        outcome = run_trainer(
            Program({"trainer.py": TRAINER}),
            [{"inputs": {}, "output": "x"}],
            sandbox=sandbox,
            limits=TrainingLimits(seconds=60),
            seed=0,
            options={},
            resume={"state.json": b'{"step": 2}'},
            on_checkpoint=lambda step, files: kept.append((step, files)),
        )
    finally:
        sandbox.close()  # type: ignore[attr-defined]
    assert outcome.ok, outcome.reason + outcome.log
    assert [(step, sorted(files)) for step, files in kept] == [
        (1, ["state.json"]),
        (2, ["state.json"]),
    ]  # the link and the path that leaves the folder are skipped
    assert b'"resumed": "_resume"' in kept[0][1]["state.json"]
