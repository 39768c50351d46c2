"""Program: content addressing, diff and strict apply."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hyperagents.exceptions import PatchError, ProgramError
from hyperagents.program import ARTIFACT_MIN_SIZE, Program, blob_hash, is_artifact


def test_id_depends_on_content_not_order() -> None:
    a = Program({"a.py": "x = 1\n", "b/c.py": b"y = 2\n"})
    b = Program({"b/c.py": "y = 2\n", "a.py": b"x = 1\n"})
    assert a.id == b.id and a == b and hash(a) == hash(b)
    assert a.id != Program({"a.py": "x = 2\n", "b/c.py": "y = 2\n"}).id
    assert a.blobs["a.py"] == blob_hash(b"x = 1\n")
    assert list(a) == ["a.py", "b/c.py"]


def test_program_is_immutable() -> None:
    p = Program({"a.py": "1"})
    with pytest.raises(TypeError):
        p["a.py"] = b"2"  # type: ignore[index]
    q = p.with_files({"a.py": "2", "new.txt": "n"})
    assert p["a.py"] == b"1" and q["a.py"] == b"2" and "new.txt" in q
    assert "a.py" not in q.without("a.py")


@pytest.mark.parametrize("path", ["/abs.py", "../up.py", "a/../b.py", "", "a//b", "./a", "a\\b"])
def test_bad_paths_are_rejected(path: str) -> None:
    with pytest.raises(ProgramError):
        Program({path: "x"})


def test_file_and_directory_clash_is_rejected() -> None:
    with pytest.raises(ProgramError):
        Program({"a": "x", "a/b.py": "y"})


def test_diff_and_apply_round_trip_fuzz() -> None:
    rng = random.Random(7)

    def text() -> str:
        lines = [
            rng.choice(["a", "b", "c", "", "def f():", "    pass"])
            for _ in range(rng.randint(0, 12))
        ]
        body = "\n".join(lines)
        return body + ("\n" if rng.random() < 0.5 else "")

    for _ in range(800):
        a = Program({f"f{j}.py": text() for j in range(rng.randint(0, 3))})
        b = Program({f"f{j}.py": text() for j in range(rng.randint(0, 3))})
        assert a.apply(a.diff(b)) == b


def test_diff_format_is_git_style() -> None:
    a = Program({"x.py": "a\nb\n", "gone.py": "bye\n"})
    b = Program({"x.py": "a\nB\n", "new.py": "hi"})
    patch = a.diff(b)
    assert "--- a/x.py\n+++ b/x.py\n" in patch
    assert "--- /dev/null\n+++ b/new.py\n" in patch
    assert "--- a/gone.py\n+++ /dev/null\n" in patch
    assert "\\ No newline at end of file" in patch
    assert a.diff(a) == ""
    assert a.changed_paths(b) == ["gone.py", "new.py", "x.py"]


def test_apply_is_strict() -> None:
    a = Program({"x.py": "one\ntwo\nthree\n"})
    b = a.with_files({"x.py": "one\n2\nthree\n"})
    patch = a.diff(b)
    drifted = Program({"x.py": "one\nTWO\nthree\n"})
    with pytest.raises(PatchError, match="does not match"):
        drifted.apply(patch)
    with pytest.raises(PatchError):
        Program({}).apply(patch)
    with pytest.raises(PatchError):
        a.apply("@@ garbage")


def test_binary_files_are_listed_not_applied() -> None:
    a = Program({"blob.bin": b"\xff\x00"})
    b = Program({"blob.bin": b"\xfe\x00"})
    patch = a.diff(b)
    assert "Binary files a/blob.bin and b/blob.bin differ" in patch
    with pytest.raises(PatchError):
        a.apply(patch)


def test_directory_round_trip(tmp_path: Path) -> None:
    p = Program({"task_agent.py": "x=1\n", "pkg/mod.py": b"\x00binary"})
    p.write_to(tmp_path / "w")
    (tmp_path / "w" / "__pycache__").mkdir()
    (tmp_path / "w" / "__pycache__" / "junk.pyc").write_bytes(b"x")
    assert Program.from_directory(tmp_path / "w") == p


def test_from_directory_rejects_symlinks(tmp_path: Path) -> None:
    (tmp_path / "real.py").write_text("x")
    (tmp_path / "link.py").symlink_to(tmp_path / "real.py")
    with pytest.raises(ProgramError, match="only regular files"):
        Program.from_directory(tmp_path)


def test_from_directory_size_limit(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 2000)
    with pytest.raises(ProgramError, match="larger than"):
        Program.from_directory(tmp_path, max_bytes=1000)


# -- artifacts and binary files ----------------------------------------------------------------
def _safetensors(zeros: int) -> bytes:
    """A safetensors-like file: a JSON header, then weights (all zero: valid UTF-8 bytes)."""
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    return len(header).to_bytes(8, "little") + header + b"\x00" * zeros


def test_which_files_are_artifacts() -> None:
    assert is_artifact("model/model.safetensors", 10)
    assert is_artifact("model/sub/adapter.BIN", 0)
    assert is_artifact("model/m.gguf", 1) and is_artifact("model/m.pt", 1)
    assert not is_artifact("model/config.json", 10)
    assert not is_artifact("weights.safetensors", 10)  # outside model/: by size only
    assert is_artifact("data/table.csv", ARTIFACT_MIN_SIZE)
    assert not is_artifact("data/table.csv", ARTIFACT_MIN_SIZE - 1)


def test_binary_files_are_named_as_git_does_never_dumped() -> None:
    weights = _safetensors(16)
    weights.decode("utf-8")  # it is valid UTF-8: only the artifact rule makes it binary
    a = Program({"task_agent.py": "x = 1\n", "model/config.json": '{"d": 4}\n'})
    b = a.with_files({"model/model.safetensors": weights, "model/config.json": '{"d": 8}\n'})
    c = b.with_files({"model/model.safetensors": _safetensors(32), "notes.txt": b"a\x00b\n"})
    added = a.diff(b)
    assert "Binary files /dev/null and b/model/model.safetensors differ\n" in added
    assert '-{"d": 4}\n+{"d": 8}\n' in added  # the config stays a text diff
    changed = b.diff(c)
    assert "Binary files a/model/model.safetensors and b/model/model.safetensors differ" in changed
    assert "Binary files /dev/null and b/notes.txt differ" in changed  # a NUL byte: binary
    assert "\x00" not in added + changed and "dtype" not in added + changed
    assert "Binary files a/model/model.safetensors and /dev/null differ" in c.diff(a)


def test_a_diff_with_binary_changes_is_refused_whole_by_apply() -> None:
    a = Program({"task_agent.py": "x = 1\n", "model/model.safetensors": _safetensors(16)})
    b = a.with_files({"task_agent.py": "x = 2\n", "model/model.safetensors": _safetensors(32)})
    with pytest.raises(PatchError, match=r"binary file .* store the changed program whole"):
        a.apply(a.diff(b))
    # The text part alone still applies.
    text_only = a.with_files({"task_agent.py": "x = 2\n"})
    assert a.apply(a.diff(text_only)) == text_only


def test_python_sources_are_the_utf8_py_files_by_path() -> None:
    program = Program(
        {"b.py": "x = 1\n", "a.py": "y = 2\n", "kb.md": "text", "bad.py": b"\xff\xfe"}
    )
    assert program.python_sources() == {"a.py": "y = 2\n", "b.py": "x = 1\n"}
    assert list(program.python_sources()) == ["a.py", "b.py"]
