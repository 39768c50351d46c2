"""Behaviour of the LLM meta agent (``hyperagents/improvers/seeds/llm/``).

The agent (``meta_agent.py`` and its ``meta_*.py`` modules) is copied into a temporary workspace
next to a small ``task_agent.py`` and loaded from there; a fake ``llm`` module in
``sys.modules`` replays scripted replies and records every prompt, so the runs are
deterministic.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import types
from pathlib import Path
from typing import Any

import pytest

from seed_agents import load_meta_agent, seed_files, write_meta_agent

AGENT_FILES = seed_files("llm")

TASK_AGENT = '''"""Tiny task agent."""

THRESHOLD = 5


def solve(inputs):
    if inputs["x"] > THRESHOLD:
        return "big"
    return "small"
'''

_counter = itertools.count()


class FakeLLMError(Exception):
    """Stands in for ``llm.LLMError``."""


class FakeLLM:
    """Scripted replies (a reply that is an exception is raised); records every call."""

    def __init__(self, replies: list[str | BaseException]) -> None:
        self.replies = list(replies)
        self.calls: list[list[dict[str, str]]] = []
        self.purposes: list[str] = []

    def complete(
        self,
        messages: Any,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        purpose: str = "",
    ) -> str:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        self.calls.append([dict(m) for m in messages])
        self.purposes.append(purpose)
        if not self.replies:
            raise FakeLLMError("script exhausted")
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def prompt(self, k: int) -> str:
        """All the text sent in call ``k``."""
        return "\n".join(m["content"] for m in self.calls[k])


def make_report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "task": {
            "name": "size",
            "description": "Label numbers big or small.",
            "score_range": [0, 1],
        },
        "mode": "hyperagent",
        "generation": 3,
        "generations_left": 7,
        "seed": 11,
        "parent": {
            "variant_id": 4,
            "generation": 2,
            "scores": {"train": 0.5, "test": 0.123456},
            "meta_info": {"operator": "llm:search_replace", "summary": "raised the bar"},
        },
        "evaluation": {
            "stage": "train",
            "score": 0.5,
            "results": [
                {"id": "t1", "score": 1.0, "feedback": "ok", "output": "small"},
                {"id": "t2", "score": 0.0, "feedback": "x=4 should be big", "output": "small"},
                {"id": "t3", "score": 1.0, "feedback": "ok", "output": "big", "target": "big"},
            ],
        },
        "train_inputs": [
            {"id": "t1", "inputs": {"x": 1}},
            {"id": "t2", "inputs": {"x": 4}},
            {"id": "t3", "inputs": {"x": 9}},
        ],
        "archive": [
            {
                "variant_id": 1,
                "generation": 0,
                "parent_id": None,
                "state": "evaluated",
                "scores": {"train": 0.3},
                "meta_info": {},
            },
            {
                "variant_id": 4,
                "generation": 2,
                "parent_id": 1,
                "state": "evaluated",
                "scores": {"train": 0.5, "test": 0.654321},
                "meta_info": {"operator": "llm:whole_file", "summary": "lowered THRESHOLD"},
            },
        ],
    }
    report.update(overrides)
    return report


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "task_agent.py").write_text(TASK_AGENT, encoding="utf-8")
    write_meta_agent(ws, "llm")
    monkeypatch.chdir(ws)
    return ws


def snapshot(ws: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(ws)): p.read_bytes()
        for p in sorted(ws.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def run_agent(
    ws: Path,
    monkeypatch: pytest.MonkeyPatch,
    replies: list[str | BaseException],
    report: dict[str, Any] | None = None,
    **config: Any,
) -> tuple[dict[str, Any], FakeLLM]:
    fake = FakeLLM(replies)
    module = types.ModuleType("llm")
    module.complete = fake.complete  # type: ignore[attr-defined]
    module.LLMError = FakeLLMError  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "llm", module)
    agent = load_meta_agent(ws)
    agent.CONFIG.update({"review": False, **config})
    info = agent.improve(str(ws), make_report() if report is None else report)
    json.dumps(info)  # always JSON-able
    return info, fake


SR_REPLY = """SUMMARY: lower the threshold and return upper-case labels.
<<<<<<< SEARCH task_agent.py
THRESHOLD = 5
=======
THRESHOLD = 3
>>>>>>> REPLACE

<<<<<<< SEARCH task_agent.py
if inputs["x"] > THRESHOLD:
    return "big"
=======
if inputs["x"] > THRESHOLD:
    return "BIG"
>>>>>>> REPLACE
"""


# ---------------------------------------------------------------------------------------------
# search_replace
# ---------------------------------------------------------------------------------------------
def test_search_replace_applies_exact_and_indentation_tolerant(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info, fake = run_agent(workspace, monkeypatch, [SR_REPLY])
    text = (workspace / "task_agent.py").read_text()
    assert "THRESHOLD = 3\n" in text
    # The unindented block matched the indented code and the replacement was re-indented.
    assert '    if inputs["x"] > THRESHOLD:\n        return "BIG"\n' in text
    assert info["operator"] == "llm:search_replace"
    assert info["applied"] == 2
    assert info["files"] == ["task_agent.py"]
    assert info["summary"] == "lower the threshold and return upper-case labels."
    assert info["review"] is None
    assert info["rounds"] == 1 == len(fake.calls)
    compile(text, "task_agent.py", "exec")


def test_trailing_whitespace_and_over_indented_search(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = (
        "<<<<<<< SEARCH task_agent.py\n"
        "        def solve(inputs):   \n"
        '            if inputs["x"] > THRESHOLD:\n'
        "=======\n"
        "        def solve(inputs):\n"
        "            # tuned\n"
        '            if inputs["x"] >= THRESHOLD:\n'
        ">>>>>>> REPLACE\n"
    )
    info, _ = run_agent(workspace, monkeypatch, [reply])
    text = (workspace / "task_agent.py").read_text()
    assert 'def solve(inputs):\n    # tuned\n    if inputs["x"] >= THRESHOLD:\n' in text
    assert info["applied"] == 1


def test_nonmatching_block_gets_diagnostic_then_repair_applies(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = (
        "SUMMARY: tweak\n"
        "<<<<<<< SEARCH task_agent.py\nTHRESHOLD = 50\n=======\nTHRESHOLD = 2\n>>>>>>> REPLACE\n"
    )
    good = "<<<<<<< SEARCH task_agent.py\nTHRESHOLD = 5\n=======\nTHRESHOLD = 2\n>>>>>>> REPLACE\n"
    info, fake = run_agent(workspace, monkeypatch, [bad, good])
    assert "THRESHOLD = 2\n" in (workspace / "task_agent.py").read_text()
    diagnostic = fake.calls[1][-1]["content"]
    assert fake.calls[1][-1]["role"] == "user"
    assert "did not match" in diagnostic
    assert "closest lines" in diagnostic and "THRESHOLD = 5" in diagnostic
    assert info["rounds"] == 2 and info["repair_rounds"] == 1
    assert info["summary"] == "tweak"
    assert "unapplied" not in info


def test_unrepaired_block_gives_error_and_unchanged_workspace(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(workspace)
    bad = "<<<<<<< SEARCH task_agent.py\nNOPE = 1\n=======\nNOPE = 2\n>>>>>>> REPLACE\n"
    info, fake = run_agent(workspace, monkeypatch, [bad, bad, bad], repair_rounds=2)
    assert info["applied"] == 0 and info["operator"] == "llm" and "did not match" in info["error"]
    assert len(fake.calls) == 3
    assert snapshot(workspace) == before


def test_empty_search_creates_file_and_meta_agent_may_edit_itself(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = (
        "SUMMARY: helper + switch my own format\n"
        "<<<<<<< SEARCH helpers.py\n=======\nSCALE = 2\n>>>>>>> REPLACE\n"
        '<<<<<<< SEARCH meta_agent.py\n    "format": "search_replace",\n=======\n'
        '    "format": "tool_loop",\n>>>>>>> REPLACE\n'
    )
    info, _ = run_agent(workspace, monkeypatch, [reply])
    assert (workspace / "helpers.py").read_text() == "SCALE = 2\n"
    assert '    "format": "tool_loop",' in (workspace / "meta_agent.py").read_text()
    assert info["files"] == ["helpers.py", "meta_agent.py"]


# ---------------------------------------------------------------------------------------------
# whole_file and paths
# ---------------------------------------------------------------------------------------------
def test_whole_file_rewrite_and_create(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reply = (
        "SUMMARY: rewrite\n"
        "=== FILE: task_agent.py ===\n```python\ndef solve(inputs):\n    return 'big'\n```\n"
        "=== END FILE ===\n"
        "=== FILE: pkg/util.py ===\nX = 1\n=== END FILE ===\n"
    )
    info, _ = run_agent(workspace, monkeypatch, [reply], format="whole_file")
    assert (workspace / "task_agent.py").read_text() == "def solve(inputs):\n    return 'big'\n"
    assert (workspace / "pkg" / "util.py").read_text() == "X = 1\n"
    assert info["operator"] == "llm:whole_file"
    assert info["files"] == ["pkg/util.py", "task_agent.py"]
    assert info["summary"] == "rewrite"


def test_path_escapes_are_rejected(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = snapshot(workspace)
    escape = (
        "=== FILE: ../evil.py ===\nBAD = 1\n=== END FILE ===\n"
        f"=== FILE: {tmp_path}/abs.py ===\nBAD = 1\n=== END FILE ===\n"
    )
    info, fake = run_agent(workspace, monkeypatch, [escape] * 3, format="whole_file", retries=2)
    assert info["applied"] == 0 and "rejected path" in info["error"]
    assert "rejected path" in fake.calls[1][-1]["content"]
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "abs.py").exists()
    assert snapshot(workspace) == before

    mixed = escape + "=== FILE: ok.py ===\nOK = 1\n=== END FILE ===\n"
    info, _ = run_agent(workspace, monkeypatch, [mixed], format="whole_file")
    assert info["files"] == ["ok.py"] and len(info["rejected_paths"]) == 2
    assert not (tmp_path / "evil.py").exists()

    sr = "<<<<<<< SEARCH ../evil.py\n=======\nBAD = 1\n>>>>>>> REPLACE\n"
    info, _ = run_agent(workspace, monkeypatch, [sr, sr], repair_rounds=1)
    assert info["applied"] == 0 and "rejected path" in info["error"]
    assert not (tmp_path / "evil.py").exists()


# ---------------------------------------------------------------------------------------------
# tool_loop
# ---------------------------------------------------------------------------------------------
def test_tool_loop_view_replace_sample_done(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies: list[str | BaseException] = [
        'Let me look. {"tool": "view", "path": "task_agent.py"}',
        '```json\n{"tool": "str_replace", "path": "task_agent.py", "old": "THRESHOLD = 5", '
        '"new": "THRESHOLD = 3"}\n```',
        '{"tool": "str_replace", "path": "task_agent.py", "old": "return", "new": "return"}',
        '{"tool": "run_sample", "n": 2}',
        '{"tool": "done", "summary": "threshold 3"}',
    ]
    info, fake = run_agent(workspace, monkeypatch, replies, format="tool_loop")
    assert "    3| THRESHOLD = 5" in fake.calls[1][-1]["content"]  # the view, numbered
    assert "Replaced 1 occurrence" in fake.calls[2][-1]["content"]
    assert "occurs 2 times" in fake.calls[3][-1]["content"]  # ambiguous str_replace refused
    sample = fake.calls[4][-1]["content"]
    assert "t1" in sample and "t2" in sample and '"big"' in sample and "t3" not in sample
    assert "THRESHOLD = 3\n" in (workspace / "task_agent.py").read_text()
    assert info["operator"] == "llm:tool_loop" and info["summary"] == "threshold 3"
    assert info["files"] == ["task_agent.py"] and info["rounds"] == 5 and info["steps"] == 5


def test_tool_loop_step_cap_and_errors(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replies: list[str | BaseException] = [
        '{"tool": "create", "path": "notes.txt", "content": "idea"}',
        '{"tool": "view", "path": "../x"}',
        '{"tool": "view", "path": "task_agent.py"}',
        '{"tool": "done", "summary": "never reached"}',
    ]
    info, fake = run_agent(workspace, monkeypatch, replies, format="tool_loop", max_steps=3)
    assert len(fake.calls) == 3 and info["stopped"] == "step cap"
    assert "rejected path" in fake.calls[2][-1]["content"]
    assert (workspace / "notes.txt").read_text() == "idea"
    assert info["files"] == ["notes.txt"]


def test_tool_loop_sample_reports_errors(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replies: list[str | BaseException] = [
        '{"tool": "create", "path": "task_agent.py", "content": "def solve(inputs):\\n    1/0\\n"}',
        '{"tool": "run_sample", "n": 1}',
        '{"tool": "done", "summary": "oops"}',
    ]
    _, fake = run_agent(workspace, monkeypatch, replies, format="tool_loop")
    assert "ZeroDivisionError" in fake.calls[2][-1]["content"]


def test_tool_loop_failure_after_sample_restores_workspace(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(workspace)
    replies: list[str | BaseException] = [
        '{"tool": "create", "path": "new.py", "content": "A = 1"}',
        '{"tool": "str_replace", "path": "task_agent.py", "old": "5", "new": "6"}',
        '{"tool": "run_sample", "n": 1}',  # writes the edits to disk
        FakeLLMError("budget spent"),
    ]
    info, _ = run_agent(workspace, monkeypatch, replies, format="tool_loop")
    assert info["applied"] == 0 and "budget spent" in info["error"]
    assert snapshot(workspace) == before


# ---------------------------------------------------------------------------------------------
# Reviewer
# ---------------------------------------------------------------------------------------------
def test_reviewer_json_is_parsed_and_stored(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    review = (
        'Here is my review:\n```json\n{"issue_type": "overfitting", "severity": "Medium", '
        '"suggested_fix": "derive the threshold from data", "confidence": "80%"}\n```'
    )
    info, fake = run_agent(workspace, monkeypatch, [SR_REPLY, review], review=True)
    assert info["review"] == {
        "issue_type": "overfitting",
        "severity": "medium",
        "suggested_fix": "derive the threshold from data",
        "confidence": 0.8,
    }
    assert info["rounds"] == 2 and fake.purposes == ["meta:propose", "meta:review"]
    assert "-THRESHOLD = 5" in fake.prompt(1) and "+THRESHOLD = 3" in fake.prompt(1)


def test_reviewer_tolerates_loose_or_failed_replies(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loose = "issue_type: bug\nseverity: high\nsuggested_fix: check x\nconfidence: 0.9"
    info, _ = run_agent(workspace, monkeypatch, [SR_REPLY, loose], review=True)
    assert info["review"]["issue_type"] == "bug" and info["review"]["confidence"] == 0.9
    (workspace / "task_agent.py").write_text(TASK_AGENT)
    info, _ = run_agent(workspace, monkeypatch, [SR_REPLY, FakeLLMError("down")], review=True)
    assert info["applied"] == 2 and info["review"] is None and "down" in info["review_error"]
    (workspace / "task_agent.py").write_text(TASK_AGENT)
    info, _ = run_agent(workspace, monkeypatch, [SR_REPLY, "looks fine"], review=True)
    assert info["review"] is None and info["review_error"]


def test_parent_review_reaches_the_next_prompt(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = make_report()
    report["parent"]["meta_info"]["review"] = {
        "issue_type": "bug",
        "severity": "high",
        "suggested_fix": "handle negative x",
        "confidence": 0.7,
    }
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY], report=report)
    assert "Reviewer feedback" in fake.prompt(0) and "handle negative x" in fake.prompt(0)
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY])
    # No such section (the words are in the agent's own code, which the prompt shows whole).
    assert "\n## Reviewer feedback" not in fake.prompt(0)


def test_the_run_reviewers_latest_reviews_reach_the_prompt(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reviews = [
        {"generation": g, "issue_type": issue, "severity": "high", "fix_suggestion": fix,
         "confidence": 0.9, "pattern_detected": pattern}
        for g, issue, fix, pattern in [
            (5, "regression", "undo the threshold drop", None),
            (6, "plateau", "try a structural change", "no new best score for 4 generations"),
        ]
    ]  # fmt: skip
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY], report=make_report(reviews=reviews))
    prompt = fake.prompt(0)
    assert "\n## Latest reviews" in prompt
    assert "generation 6: high plateau" in prompt and "no new best score" in prompt
    assert "undo the threshold drop" in prompt
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY], report=make_report(reviews=[]))
    assert "\n## Latest reviews" not in fake.prompt(0)


# ---------------------------------------------------------------------------------------------
# Failures and the prompt
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["search_replace", "whole_file", "tool_loop"])
def test_malformed_replies_give_graceful_unchanged_result(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    before = snapshot(workspace)
    info, fake = run_agent(workspace, monkeypatch, ["no idea"] * 5, format=fmt, retries=2)
    assert info["operator"] == "llm" and info["applied"] == 0 and "malformed" in info["error"]
    assert len(fake.calls) == 3  # one try + two retries, each with a diagnostic
    assert fake.calls[1][-1]["role"] == "user"
    assert snapshot(workspace) == before


def test_llm_error_gives_graceful_unchanged_result(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(workspace)
    info, _ = run_agent(workspace, monkeypatch, [FakeLLMError("budget spent")])
    assert info == {"operator": "llm", "applied": 0, "error": "LLMError: budget spent", "rounds": 1}
    assert snapshot(workspace) == before


def test_prompt_carries_code_failures_archive_and_budget(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY])
    prompt = fake.prompt(0)
    assert "--- task_agent.py ---" in prompt and 'return "small"' in prompt
    assert "--- meta_agent.py ---" in prompt and "CONFIG" in prompt
    assert "x=4 should be big" in prompt  # the failing instance's feedback
    assert prompt.index("instance t2") < prompt.index("instance t1")  # worst first
    assert "generations left: 7" in prompt
    assert "lowered THRESHOLD" in prompt and "improved on parent: yes" in prompt
    assert "0.123456" not in prompt and "0.654321" not in prompt  # no test-split score
    assert "target" not in prompt.lower()


def test_prompt_says_how_to_ask_for_a_weight_update_only_where_there_is_a_trainer(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY])
    assert "\n## Model" not in fake.prompt(0)
    (workspace / "trainer.py").write_text("def train(request, progress=None):\n    return {}\n")
    (workspace / "model").mkdir()
    (workspace / "model" / "model.safetensors").write_bytes(
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}\x00"
    )
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY])
    prompt = fake.prompt(0)
    assert "\n## Model" in prompt and "training_plan.json" in prompt
    assert '"lever": "weights"' in prompt and '"self"' in prompt
    assert "--- model/model.safetensors ---" not in prompt  # weights are never shown as text


def test_prompt_truncates_long_files(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workspace / "big.txt").write_text("".join(f"line {i}\n" for i in range(5000)))
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY], max_file_chars=2000)
    prompt = fake.prompt(0)
    assert "characters omitted" in prompt and "line 0\n" in prompt and "line 4999" in prompt
    assert "line 2500\n" not in prompt


# ---------------------------------------------------------------------------------------------
# The agent reads itself
# ---------------------------------------------------------------------------------------------
def _config_literal(source: str) -> dict[str, Any]:
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "CONFIG":
            assert node.value is not None
            value = ast.literal_eval(node.value)
            assert isinstance(value, dict)
            return value
    raise AssertionError("meta_agent.py has no CONFIG literal")


def test_every_file_of_the_agent_fits_in_what_it_shows_the_model() -> None:
    config = _config_literal(AGENT_FILES["meta_agent.py"])
    assert set(AGENT_FILES) >= {"meta_agent.py", "meta_prompt.py", "meta_review.py"}
    for name, text in AGENT_FILES.items():
        assert len(text) <= config["max_file_chars"], (name, len(text))
    assert len(AGENT_FILES) + 1 <= config["max_files"]  # with task_agent.py
    assert sum(len(text) for text in AGENT_FILES.values()) < config["max_prompt_chars"] // 2


def test_the_prompt_shows_every_file_of_the_agent_whole(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY])
    prompt = fake.prompt(0)
    for name, text in AGENT_FILES.items():
        assert f"--- {name} ---\n{text}\n--- end of {name} ---" in prompt, name
    # (The words are in the agent's own code: a cut or a list of files left out looks so.)
    assert not re.search(r"\[\.\.\. \d+ characters omitted", prompt)
    assert "\nNot shown (the prompt is full): " not in prompt


def test_files_that_do_not_fit_the_prompt_are_named_and_the_instructions_kept(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / "zz_data.txt").write_text("z" * 7000)
    _, fake = run_agent(workspace, monkeypatch, [SR_REPLY], max_prompt_chars=30000)
    prompt = fake.prompt(0)
    assert len(prompt) < 31000
    assert "--- task_agent.py ---" in prompt and "--- meta_agent.py ---" in prompt
    shown = [line for line in prompt.splitlines() if line.startswith("Not shown (the prompt")]
    assert len(shown) == 1 and shown[0].endswith(", zz_data.txt"), shown
    assert "--- zz_data.txt ---" not in prompt
    assert "## Instructions" in prompt and prompt.rstrip().endswith("program root.")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"max_steps": "many"}, "'max_steps' must be a int"),
        ({"format": "diff"}, "'format' must be one of search_replace, whole_file, tool_loop"),
        ({"review": None}, "'review' must be a bool"),
    ],
)
def test_a_broken_config_fails_the_proposal_and_names_the_key(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, Any], problem: str
) -> None:
    before = snapshot(workspace)
    info, fake = run_agent(workspace, monkeypatch, [SR_REPLY], **config)
    assert (
        info["applied"] == 0 and info["error"].startswith("CONFIG: ") and problem in info["error"]
    )
    assert fake.calls == [] and snapshot(workspace) == before


def test_a_missing_config_key_is_named(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = (workspace / "meta_agent.py").read_text()
    (workspace / "meta_agent.py").write_text(source.replace('    "max_steps": 12,\n', ""))
    info, fake = run_agent(workspace, monkeypatch, [SR_REPLY])
    assert info["error"] == "CONFIG: 'max_steps' is missing" and fake.calls == []


def test_config_numbers_are_coerced_as_before(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A float where an int is expected is truncated; a negative count is 0; max_steps >= 1.
    replies: list[str | BaseException] = ['{"tool": "view", "path": "task_agent.py"}'] * 3
    info, fake = run_agent(
        workspace, monkeypatch, replies, format="tool_loop", max_steps=-4, retries=1.9
    )
    assert len(fake.calls) == 1 and info["stopped"] == "step cap"
