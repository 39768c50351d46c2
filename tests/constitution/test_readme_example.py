"""The README's constitution example, read from README.md itself, runs as printed on the
default task: its TOML and its ``my_rules.py`` are written to a fresh folder and given to
``hyperagents run``, whose seed must keep every rule."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from hyperagents._modules import import_file
from hyperagents.constitution import load_constitution
from hyperagents.storages import RDBStorage, VariantState
from hyperagents.tasks import load_task

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Constitution\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", _section(), flags=re.M | re.S)


def _example(folder: Path) -> tuple[Path, dict[str, Any]]:
    """Write the README's ``rules.toml`` and the custom rule's file into ``folder``."""
    (toml,) = _blocks("toml")
    custom = next(r for r in tomllib.loads(toml)["rule"] if r["kind"] == "custom")
    file_name, _, function = custom["function"].rpartition(":")
    source = next(b for b in _blocks("python") if f"\ndef {function}(" in b)
    (folder / "rules.toml").write_text(toml, encoding="utf-8")
    (folder / file_name).write_text(source, encoding="utf-8")
    return folder / "rules.toml", custom


def test_the_readme_example_runs_as_printed(tmp_path: Path) -> None:
    _example(tmp_path)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_STORAGE"}
    command = [
        *(sys.executable, "-m", "hyperagents", "run", "--task", "review"),
        *("--constitution", "rules.toml", "-g", "2", "--seed", "0", "--workers", "1"),
        *("--sandbox", "process", "--unsafe-process-sandbox", "--storage", url, "-q"),
    ]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    storage = RDBStorage(url)
    try:
        (run,) = storage.list_runs()
        assert run.config["constitution"]["rule"], run.config
        variants = storage.list_variants(run.id)
        seed = next(v for v in variants if v.parent_id is None)
        assert seed.state is VariantState.COMPLETE and "val" in seed.scores
        assert not any(v.state is VariantState.REJECTED for v in variants)
    finally:
        storage.close()


def test_the_readme_custom_rule_finds_magic_numbers(tmp_path: Path) -> None:
    policy, custom = _example(tmp_path)
    file_name, _, name = custom["function"].rpartition(":")
    rule = getattr(import_file(tmp_path / file_name, "_readme_rules_"), name)
    seed = load_task("review").seed_program()
    assert rule(seed, None, None, **custom.get("options", {})) == []  # the seed is the baseline
    source = seed.text("task_agent.py")
    edited = source.replace(
        'return "accept" if decision_score(inputs) >= 0.0 else "reject"',
        'return "accept" if decision_score(inputs) >= 0.37 else "reject"',
    )
    assert edited != source
    child = seed.with_files({"task_agent.py": edited})
    (found,) = rule(child, seed, None, **custom.get("options", {}))
    assert found["path"] == "task_agent.py" and "0.37" in found["message"]
    assert edited.splitlines()[found["line"] - 1].strip().startswith("return")
    # Through the policy file, as a run calls it: a soft rule lowers the alignment.
    verdict = load_constitution(policy).check(child, seed)
    assert not verdict.rejected and verdict.alignment < 1.0
    assert [v.rule for v in verdict.soft] == [custom.get("name") or "custom"]
