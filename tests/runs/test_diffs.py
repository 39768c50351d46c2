"""Bounded program diffs: the same changes as a patch, computed only within the limits."""

from __future__ import annotations

import random

import pytest

from hyperagents.program import Program
from hyperagents.runs import DiffLimits, compare, unified_text


def _edited(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randrange(3)):
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["x", "q", "", "z = 1"]))
    if len(lines) > 1 and rng.random() < 0.5:
        del lines[rng.randrange(len(lines))]
    return "\n".join(lines)


@pytest.mark.parametrize("seed", range(40))
def test_the_unified_text_is_a_patch_that_applies(seed: int) -> None:
    rng = random.Random(seed)
    pool = ["x\n", "y\n", "z\n", "w", "\n", "x\r\n"]
    old = {
        f"f{i}.py": "".join(rng.choice(pool) for _ in range(rng.randrange(25)))
        for i in range(rng.randrange(1, 4))
    }
    new = {p: _edited(rng, t) for p, t in old.items() if rng.random() < 0.85}
    if rng.random() < 0.4:
        new["added.py"] = "hello\nworld"
    a, b = Program(old), Program(new)
    diff = compare(a, b)
    assert diff.complete
    text = unified_text(diff)
    assert text is not None and a.apply(text) == b
    for f in diff.files:
        assert f.added == sum(1 for _ in f.new_lines) - sum(1 for _ in f.old_lines) + f.removed


def test_sizes_are_checked_before_anything_is_compared() -> None:
    limits = DiffLimits(file_bytes=100, file_lines=10, total_bytes=1000, total_lines=100)
    old = Program({"small.py": "a\n", "wide.py": "x" * 50 + "\n", "long.py": "a\n"})
    new = Program({"small.py": "b\n", "wide.py": "y" * 150 + "\n", "long.py": "a\n" * 11})
    diff = compare(old, new, limits=limits)
    files = {f.path: f for f in diff.files}
    assert diff.too_large is None and not diff.complete
    assert files["small.py"].too_large is None and files["small.py"].added == 1
    assert "limit 100 B per file" in (files["wide.py"].too_large or "")
    assert files["long.py"].too_large == "11 lines (limit 10 per file)"
    assert files["wide.py"].groups == () and files["wide.py"].new_lines == ()
    over = compare(None, Program({f"f{i}": "z\n" * 10 for i in range(11)}), limits=limits)
    assert over.too_large == "the changed files hold 110 lines (limit 100)"
    assert all(f.too_large == over.too_large and not f.new_lines for f in over.files)
    assert unified_text(over) == ""


def test_a_changed_region_too_long_to_match_is_not_matched() -> None:
    # Matching lines costs the square of their number: a file changed all over is refused,
    # while one as long with a change in one place is compared.
    a = [f"line {i}\n" for i in range(3000)]
    scattered = [f"line {i}{'!' if i % 2 else ''}\n" for i in range(3000)]
    local = [*a[:1500], "new\n", *a[1500:]]
    old = Program({"s.py": "".join(a), "l.py": "".join(a)})
    new = Program({"s.py": "".join(scattered), "l.py": "".join(local)})
    files = {f.path: f for f in compare(old, new, limits=DiffLimits(changed_lines=2000)).files}
    assert files["s.py"].too_large is not None and "2000 changed lines" in files["s.py"].too_large
    assert files["l.py"].too_large is None and (files["l.py"].added, files["l.py"].removed) == (
        1,
        0,
    )


def test_the_output_limit_and_binary_files() -> None:
    old = Program({"b.bin": b"\xff\x00", "t.py": "a\n"})
    new = Program({"b.bin": b"\xfe\x00", "t.py": "".join(f"{i}\n" for i in range(500))})
    diff = compare(old, new)
    assert unified_text(diff, limit=200) is None
    text = unified_text(diff)
    assert text is not None and "Binary files a/b.bin and b/b.bin differ" in text
    assert compare(old, old).files == ()


def test_weights_and_large_artifacts_are_listed_as_binary_never_read() -> None:
    zeros = b"\x00" * 64  # valid UTF-8, but a weight file: binary by its path
    large = ("x = 1\n" * 400_000).encode()  # 2.4 MB of text: an artifact, binary by its size
    old = Program({"task_agent.py": "a\n", "model/model.safetensors": zeros})
    new = Program(
        {"task_agent.py": "b\n", "model/model.safetensors": zeros + b"\x01", "big.txt": large}
    )
    diff = compare(old, new)
    files = {f.path: f for f in diff.files}
    assert diff.complete  # binary files are not "too large": they are binary
    assert files["model/model.safetensors"].binary and files["big.txt"].binary
    assert files["big.txt"].too_large is None and files["big.txt"].new_size == len(large)
    text = unified_text(diff)
    assert text is not None
    assert "Binary files a/model/model.safetensors and b/model/model.safetensors differ\n" in text
    assert "Binary files /dev/null and b/big.txt differ\n" in text
    assert "-a\n+b\n" in text and "x = 1" not in text
