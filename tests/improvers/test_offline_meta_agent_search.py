"""The offline meta agent is a genuine improver: an in-process archive loop on a synthetic task.

No engine is involved: the loop keeps ``(files, scores, meta_info)`` per variant, picks parents by
best-of-random-3, runs the parent's own meta agent (``meta_agent.py`` and its ``meta_*.py``) on a
copy of its files (hyperagent mode: the child inherits the edited meta agent) and scores the
child's task agent by calling its ``solve`` on a small regression task whose optimum the meta
agent never sees.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from seed_agents import load_meta_agent, seed_files

META_FILES = seed_files("offline")

#: A parametrised predictor: the meta agent only sees PARAMS, PARAM_SPACE and per-instance scores.
TASK_AGENT = '''"""Synthetic regression agent."""

PARAMS = {
    "slope": 0.0,
    "intercept": 0.0,
    "group_b_offset": 0.0,
    "curvature": 0.0,
    "use_curvature": False,
    "clip_at": 5.0,
    "shape": "linear",
    "smoothing": 1,
}

PARAM_SPACE = {
    "slope": {"type": "float", "low": -5.0, "high": 5.0, "feature": "x"},
    "intercept": {"type": "float", "low": -5.0, "high": 5.0},
    "group_b_offset": {"type": "float", "low": -5.0, "high": 5.0, "feature": "group"},
    "curvature": {"type": "float", "low": -2.0, "high": 2.0, "feature": "x"},
    "use_curvature": {"type": "bool", "feature": "x"},
    "clip_at": {"type": "float", "low": 0.1, "high": 100.0, "scale": "log"},
    "shape": {"type": "choice", "choices": ["linear", "abs", "sqrt"]},
    "smoothing": {"type": "int", "low": 1, "high": 5},
}


def solve(inputs):
    x = inputs["x"]
    if PARAMS["shape"] == "abs":
        x = abs(x)
    elif PARAMS["shape"] == "sqrt":
        x = abs(x) ** 0.5
    y = PARAMS["slope"] * x + PARAMS["intercept"]
    if PARAMS["use_curvature"]:
        y += PARAMS["curvature"] * x * x
    if inputs["group"] == "b":
        y += PARAMS["group_b_offset"]
    y = y / PARAMS["smoothing"] ** 0.1
    return max(-PARAMS["clip_at"], min(PARAMS["clip_at"], y))
'''


def hidden_target(x: float, group: str) -> float:
    """The function to learn (never shown to the meta agent)."""
    return 1.3 * abs(x) - 0.7 + 0.4 * x * x + (2.0 if group == "b" else 0.0)


def make_split(rng: random.Random, n: int, prefix: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        x, group = rng.uniform(-2.0, 2.0), rng.choice("ab")
        out.append(
            {"id": f"{prefix}{i}", "inputs": {"x": x, "group": group}, "y": hidden_target(x, group)}
        )
    return out


def score_one(output: Any, target: float) -> float:
    """Score in [0, 1]: 1 for an exact prediction, 0 when off by 4 or more."""
    try:
        return max(0.0, 1.0 - abs(float(output) - target) / 4.0)
    except (TypeError, ValueError):
        return 0.0


def evaluate(source: str, split: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "task_agent.py", "exec"), namespace)
    results = []
    for item in split:
        output = namespace["solve"](item["inputs"])
        value = score_one(output, item["y"])
        results.append(
            {
                "id": item["id"],
                "score": value,
                "feedback": f"off by {1 - value:.2f}",
                "output": output,
            }
        )
    return sum(r["score"] for r in results) / len(results), results


def run_loop(tmp_path: Path, generations: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    data_rng = random.Random(1234)
    train, val = make_split(data_rng, 60, "t"), make_split(data_rng, 40, "v")
    train_inputs = [{"id": item["id"], "inputs": item["inputs"]} for item in train]
    files = {"task_agent.py": TASK_AGENT, **META_FILES}
    train_score, results = evaluate(TASK_AGENT, train)
    archive: list[dict[str, Any]] = [
        {
            "variant_id": 0,
            "generation": 0,
            "parent_id": None,
            "state": "complete",
            "scores": {"train": train_score, "val": evaluate(TASK_AGENT, val)[0]},
            "meta_info": {},
            "files": files,
            "results": results,
        }
    ]
    for generation in range(1, generations + 1):
        valid = [v for v in archive if v["state"] == "complete"]
        parent = max((rng.choice(valid) for _ in range(3)), key=lambda v: v["scores"]["val"])
        workspace = tmp_path / f"g{generation}"
        workspace.mkdir()
        for name, text in parent["files"].items():
            (workspace / name).write_text(text, encoding="utf-8")
        public = ("variant_id", "generation", "parent_id", "state", "scores", "meta_info")
        report = {
            "task": {"name": "synthetic", "description": "", "score_range": [0.0, 1.0]},
            "mode": "hyperagent",
            "generation": generation,
            "generations_left": generations - generation,
            "seed": rng.randrange(2**31),
            "parent": {k: parent[k] for k in ("variant_id", "generation", "scores", "meta_info")},
            "evaluation": {
                "stage": "train",
                "score": parent["scores"]["train"],
                "results": parent["results"],
            },
            "train_inputs": train_inputs,
            "archive": [{k: v[k] for k in public} for v in archive],
        }
        meta_info = load_meta_agent(workspace).improve(str(workspace), report)
        meta_info = json.loads(json.dumps(meta_info))
        child = {p.name: p.read_text(encoding="utf-8") for p in workspace.iterdir() if p.is_file()}
        entry = {
            "variant_id": generation,
            "generation": generation,
            "parent_id": parent["variant_id"],
            "state": "complete",
            "scores": {},
            "meta_info": meta_info,
            "files": child,
            "results": [],
        }
        try:  # a structural edit may break the agent at run time: the child failed
            train_score, entry["results"] = evaluate(child["task_agent.py"], train)
            entry["scores"] = {
                "train": train_score,
                "val": evaluate(child["task_agent.py"], val)[0],
            }
        except Exception:
            entry["state"] = "failed"
        archive.append(entry)
    return archive


def parent_files(archive: list[dict[str, Any]], entry: dict[str, Any]) -> dict[str, str]:
    """The files of ``entry``'s parent."""
    files: dict[str, str] = archive[entry["parent_id"]]["files"]
    return files


def test_archive_loop_improves_well_beyond_the_seed(tmp_path: Path) -> None:
    archive = run_loop(tmp_path, generations=40, seed=0)
    seed_val = archive[0]["scores"]["val"]
    best = max(archive, key=lambda v: v["scores"].get("val", -1.0))
    # The seed predicts 0 everywhere; the best child must close a large part of the gap to 1.
    assert best["scores"]["val"] >= seed_val + 0.5 * (1.0 - seed_val), (seed_val, best["scores"])
    assert best["scores"]["train"] > archive[0]["scores"]["train"]
    # Every child differs from its parent, and the history is self-describing: a structural
    # edit says what it changed in the code, the others which parameters they changed.
    for entry in archive[1:]:
        assert entry["meta_info"]["operator"] != "none"
        if entry["meta_info"]["operator"] == "structure":
            assert entry["files"]["task_agent.py"] != parent_files(archive, entry)["task_agent.py"]
            assert entry["meta_info"]["structure"]["kind"]
        else:
            assert entry["meta_info"]["changes"]
    # Self-reference: the best child's own meta agent carries an adapted state, in its state
    # file; its code is the seed's, byte for byte.
    meta = json.loads(best["files"]["meta_state.json"])
    assert meta == best["meta_info"]["meta"]
    assert {name: best["files"][name] for name in META_FILES} == META_FILES
    assert meta["successes"] + meta["failures"] > 0
    operators = {entry["meta_info"]["operator"] for entry in archive[1:]}
    assert len(operators) >= 3
    assert math.isfinite(best["scores"]["val"])
