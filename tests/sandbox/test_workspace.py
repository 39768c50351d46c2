"""Workspaces: whatever agent code leaves in one, the engine removes it, and reads it safely."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyperagents.exceptions import ProgramError
from hyperagents.program import Program
from hyperagents.sandbox import remove_tree, sweep_stale_workspaces, workspace


def _deep_tree(root: Path, depth: int) -> None:
    """A chain of ``depth`` directories, built with relative steps (the path outgrows PATH_MAX)."""
    here = os.getcwd()
    os.chdir(root)
    try:
        for _ in range(depth):
            os.mkdir("d")
            os.chdir("d")
        with open("payload", "wb") as handle:
            handle.write(b"x" * 1024)
        os.chmod(".", 0)
    finally:
        os.chdir(here)


def test_remove_tree_removes_a_tree_3000_levels_deep(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    _deep_tree(root, 3000)
    (root / "sibling").mkdir(mode=0)
    remove_tree(root)
    assert not root.exists()


def test_remove_tree_of_a_missing_directory_is_a_no_op(tmp_path: Path) -> None:
    remove_tree(tmp_path / "nothing")


def test_reading_a_deep_tree_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "task_agent.py").write_text("x = 1\n")
    _deep_tree(root, 3000)
    with pytest.raises(ProgramError, match="deeper than 32"):
        Program.from_directory(root)
    remove_tree(root)


@pytest.mark.parametrize(
    "name",
    [b"bad-\xff\xfe.py", b"evil\nname.py", "cod\u202eyp.py".encode(), b"bell\x07.py"],
)
def test_reading_odd_file_names_is_a_clear_error(tmp_path: Path, name: bytes) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    with open(os.fsencode(root) + b"/" + name, "wb") as handle:
        handle.write(b"x = 1\n")
    with pytest.raises(ProgramError, match=r"not valid UTF-8|control or format character"):
        Program.from_directory(root)


def test_a_workspace_is_removed_whatever_is_left_in_it() -> None:
    with workspace(Program({"a.py": "x = 1\n"})) as path:
        parent = path.parent
        _deep_tree(path, 1500)
    assert not parent.exists()


def test_workspaces_of_dead_engines_are_swept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f"hyperagents-ws-{dead_pid}-abc"
    stale.mkdir()
    _deep_tree(stale, 50)
    mine = tmp_path / f"hyperagents-ws-{os.getpid()}-abc"
    mine.mkdir()
    other = tmp_path / "unrelated-dir"
    other.mkdir()
    assert sweep_stale_workspaces(str(tmp_path)) == 1
    assert not stale.exists() and mine.exists() and other.exists()
