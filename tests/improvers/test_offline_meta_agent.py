"""Behaviour of the offline meta agent (``hyperagents/improvers/seeds/offline/``).

The agent is loaded from its files in a temporary workspace as the engine does (its
``meta_agent.py`` and ``meta_*.py`` modules next to a ``task_agent.py``) and called with crafted
reports.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import pytest

from hyperagents.tasks import param_space_errors

from seed_agents import load_meta_agent, load_meta_module, seed_files, write_meta_agent

META_SOURCE = seed_files("offline")["meta_agent.py"]
STATE_FILE = "meta_state.json"

FAKE_AGENT = '''"""A fake task agent — with non-ASCII text before the literal (é, ü)."""

import math  # this comment must survive

PARAMS = {"alpha": 0.5, "count": 3, "flag": False, "mode": "a", "rate": 0.01}

PARAM_SPACE = {
    "alpha": {"type": "float", "low": 0.0, "high": 1.0, "feature": "size"},
    "count": {"type": "int", "low": 1, "high": 10, "feature": "kind"},
    "flag": {"type": "bool", "feature": "color"},
    "mode": {"type": "choice", "choices": ["a", "b", "c"]},
    "rate": {"type": "float", "low": 0.0001, "high": 1.0, "scale": "log"},
}


def solve(inputs):
    return math.floor(PARAMS["alpha"] * inputs.get("size", 0))  # trailing text
'''


def literal(source: str, name: str) -> Any:
    """The value of the top-level literal ``name`` in ``source``."""
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            assert node.value is not None  # type: ignore[attr-defined]
            return ast.literal_eval(node.value)  # type: ignore[attr-defined]
    raise KeyError(name)


def make_workspace(tmp_path: Path, name: str = "ws", agent: str = FAKE_AGENT, **meta: Any) -> Path:
    """A workspace with the fake task agent and the meta agent (with a state file holding
    ``META`` with ``meta``'s keys overridden, when given)."""
    ws = tmp_path / name
    ws.mkdir()
    (ws / "task_agent.py").write_text(agent, encoding="utf-8")
    write_meta_agent(ws, "offline")
    if meta:
        (ws / STATE_FILE).write_text(json.dumps({**SEED_META, **meta}), encoding="utf-8")
    return ws


def tuning_workspace(tmp_path: Path, name: str, weights: dict[str, float], **meta: Any) -> Path:
    """A workspace whose meta agent only tunes numbers, with these ``operator_weights``."""
    return make_workspace(
        tmp_path, name, operator_weights=weights, weight_floor=0.0, portfolio=TUNE_ONLY, **meta
    )


def state(ws: Path) -> Any:
    """The state the workspace's meta agent wrote."""
    return json.loads((ws / STATE_FILE).read_text(encoding="utf-8"))


def improve(ws: Path, report: Any) -> dict[str, Any]:
    """Run the workspace's meta agent like the engine does; check the result is JSON-able."""
    info = load_meta_agent(ws).improve(str(ws), report)
    assert isinstance(info, dict)
    assert len(json.dumps(info)) <= 64_000
    return info


SPACE = literal(FAKE_AGENT, "PARAM_SPACE")
SEED_META = literal(META_SOURCE, "META")
#: A portfolio that only tunes numbers (for the tests of the ``tune`` operators).
TUNE_ONLY = {
    **SEED_META["portfolio"],
    "shares": {"tune": 1.0, "surrogate": 0.0, "structure": 0.0, "restart": 0.0},
    "share_floor": 0.0,
}


def in_space(name: str, value: Any) -> bool:
    spec = SPACE[name]
    if spec["type"] == "bool":
        return isinstance(value, bool)
    if spec["type"] == "choice":
        return value in spec["choices"]
    if spec["type"] == "int":
        return isinstance(value, int) and spec["low"] <= value <= spec["high"]
    return isinstance(value, float) and spec["low"] <= value <= spec["high"]


def variant(vid: int, parent: int | None, val: float, **meta_info: Any) -> dict[str, Any]:
    return {
        "variant_id": vid,
        "generation": vid,
        "parent_id": parent,
        "state": "complete",
        "scores": {"train_subset": val, "train": val, "val": val},
        "meta_info": meta_info,
    }


def report_with(archive: list[dict[str, Any]], parent_id: int, seed: int = 0) -> dict[str, Any]:
    parent = next(v for v in archive if v["variant_id"] == parent_id)
    return {
        "task": {"name": "fake", "description": "", "score_range": [0.0, 1.0]},
        "mode": "hyperagent",
        "generation": max(v["generation"] for v in archive) + 1,
        "generations_left": 10,
        "seed": seed,
        "parent": {k: parent[k] for k in ("variant_id", "generation", "scores", "meta_info")},
        "evaluation": {"stage": "train", "score": parent["scores"]["train"], "results": []},
        "train_inputs": [],
        "archive": archive,
    }


# ---------------------------------------------------------------------------------------------
def test_edits_params_within_bounds_and_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    before = FAKE_AGENT.encode()
    start = before.index(b"{", before.index(b"PARAMS = "))
    end = before.index(b"}", start) + 1
    for seed in range(25):
        ws = make_workspace(tmp_path, f"ws{seed}", portfolio=TUNE_ONLY)
        info = improve(ws, {"seed": seed})
        after = (ws / "task_agent.py").read_bytes()
        assert after[:start] == before[:start]
        assert after.endswith(before[end:])
        params = literal(after.decode(), "PARAMS")
        assert params != literal(FAKE_AGENT, "PARAMS")
        assert all(in_space(name, value) for name, value in params.items()), params
        assert info["params"] == params
        assert info["changes"] == {
            name: [old, params[name]]
            for name, old in literal(FAKE_AGENT, "PARAMS").items()
            if params[name] != old
        }
        assert info["operator"] in ("perturb", "focus", "follow", "crossover", "reset")
        for value in params.values():
            if isinstance(value, float):
                assert float(f"{value:.6g}") == value
        # One key per line, and the module still imports.
        block = after[start:].decode().split("\n}\n")[0]
        assert block.count("\n") == len(params)
        namespace: dict[str, Any] = {}
        exec(compile(after, "task_agent.py", "exec"), namespace)
        assert namespace["PARAMS"] == params


def test_state_is_written_to_its_file_and_the_code_is_left_byte_identical(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path)
    code = {path.name: path.read_bytes() for path in ws.glob("meta_*.py")}
    assert not (ws / STATE_FILE).exists()  # the seed: META's defaults
    infos = [improve(ws, {"seed": seed}) for seed in range(3)]
    assert {path.name: path.read_bytes() for path in ws.glob("meta_*.py")} == code
    assert state(ws) == infos[-1]["meta"]
    assert (ws / STATE_FILE).read_text().count("\n") > len(SEED_META)  # one key per line
    assert all(info["meta_self_edited"] for info in infos)
    # The step size is self-mutated log-normally, so it changed; other strategy keys are kept.
    assert state(ws)["step_scale"] != SEED_META["step_scale"]
    assert set(state(ws)) >= set(SEED_META)


def test_a_program_with_its_state_in_meta_only_still_works(tmp_path: Path) -> None:
    """An older program keeps its adapted state in ``META`` (no state file): it is read."""
    old = META_SOURCE.replace('"step_scale": 0.15,', '"step_scale": 0.4,', 1)
    old = old.replace('"self_adapt_tau": 0.15,', '"self_adapt_tau": 0.0,', 1)
    assert old.count("0.4,") == META_SOURCE.count("0.4,") + 1
    ws = tmp_path / "old"
    ws.mkdir()
    (ws / "task_agent.py").write_text(FAKE_AGENT, encoding="utf-8")
    write_meta_agent(ws, "offline", old)
    info = improve(ws, {"seed": 2})
    assert info["meta"]["step_scale"] == 0.4 and info["operator"] != "none"
    assert (ws / "meta_agent.py").read_text() == old
    assert state(ws) == info["meta"]


def test_one_call_parses_the_task_agent_once_and_its_own_source_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path)
    agent = load_meta_agent(ws)
    parsed: list[str] = []
    real_parse = ast.parse

    def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(source if isinstance(source, str) else source.decode())
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting)
    report = report_with(_lineage(0.6, 0.5, "perturb"), parent_id=1)
    for seed in range(3):
        before = (ws / "task_agent.py").read_text(encoding="utf-8")
        parsed.clear()
        info = agent.improve(str(ws), {**report, "seed": seed})
        assert info["operator"] != "none"
        assert parsed == [before]


@pytest.mark.parametrize("content", ["not json", "[1, 2]", ""])
def test_a_malformed_state_file_falls_back_to_the_defaults(tmp_path: Path, content: str) -> None:
    ws = make_workspace(tmp_path)
    (ws / STATE_FILE).write_text(content, encoding="utf-8")
    info = improve(ws, {"seed": 5})
    reference = make_workspace(tmp_path, "reference")
    assert info == improve(reference, {"seed": 5})
    assert state(ws) == info["meta"]


def _lineage(parent_val: float, grand_val: float, operator: str) -> list[dict[str, Any]]:
    return [
        variant(0, None, grand_val),
        variant(
            1,
            0,
            parent_val,
            operator=operator,
            changes={"alpha": [0.4, 0.5]},
            params={**literal(FAKE_AGENT, "PARAMS")},
        ),
    ]


def test_step_scale_grows_after_a_successful_parent(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, self_adapt_tau=0.0)
    info = improve(ws, report_with(_lineage(0.6, 0.5, "focus"), parent_id=1))
    assert info["evidence"][0]["outcome"] == "success"
    assert info["meta"]["step_scale"] > SEED_META["step_scale"]
    assert info["meta"]["explore"] < SEED_META["explore"]
    assert info["meta"]["successes"] == 1.0
    weights, seed_weights = info["meta"]["operator_weights"], SEED_META["operator_weights"]
    assert weights["focus"] > seed_weights["focus"]
    assert all(weights[op] < seed_weights[op] for op in seed_weights if op != "focus")
    assert math.isclose(sum(weights.values()), 1.0, abs_tol=1e-3)
    assert state(ws) == info["meta"]


def test_step_scale_shrinks_after_failures_and_weights_keep_a_floor(tmp_path: Path) -> None:
    archive = _lineage(0.4, 0.5, "focus")
    # The parent was tried before: its children all did worse.
    archive += [variant(vid, 1, 0.3, operator="focus", changes={"count": [3, 4]}) for vid in (2, 3)]
    ws = make_workspace(tmp_path, self_adapt_tau=0.0)
    info = improve(ws, report_with(archive, parent_id=1))
    assert [e["outcome"] for e in info["evidence"]] == ["failure"] * 3
    assert info["meta"]["step_scale"] < SEED_META["step_scale"]
    assert info["meta"]["explore"] > SEED_META["explore"]
    assert info["meta"]["stagnation"] == 1
    assert info["meta"]["operator_weights"]["focus"] < SEED_META["operator_weights"]["focus"]
    # Many failures: the step is clamped and no operator weight falls below the floor.
    archive += [variant(vid, 1, 0.3, operator="focus", changes={}) for vid in range(4, 60)]
    ws = make_workspace(tmp_path, "many", self_adapt_tau=0.0, context_weight=100.0)
    info = improve(ws, report_with(archive, parent_id=1))
    assert info["meta"]["step_scale"] >= 0.01
    assert min(info["meta"]["operator_weights"].values()) >= SEED_META["weight_floor"] - 1e-9


def test_adaptation_compounds_along_a_lineage(tmp_path: Path) -> None:
    """META written into the child is the starting point of the child's own call."""
    ws = make_workspace(tmp_path, self_adapt_tau=0.0)
    first = improve(ws, report_with(_lineage(0.6, 0.5, "perturb"), parent_id=1))
    archive = [*_lineage(0.6, 0.5, "perturb"), variant(2, 1, 0.7, **first)]
    second = improve(ws, report_with(archive, parent_id=2, seed=1))
    assert second["meta"]["step_scale"] > first["meta"]["step_scale"] > SEED_META["step_scale"]
    assert second["meta"]["successes"] == 2.0


def test_no_evidence_leaves_the_strategy_unchanged(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, self_adapt_tau=0.0)
    info = improve(ws, {"seed": 4})
    for key, value in {**SEED_META, "self_adapt_tau": 0.0}.items():
        assert info["meta"][key] == value, key


def test_same_inputs_give_the_same_outputs(tmp_path: Path) -> None:
    report = report_with(_lineage(0.6, 0.5, "perturb"), parent_id=1, seed=7)
    runs = []
    for name in ("a", "b", "c"):
        ws = make_workspace(tmp_path, name)
        info = improve(ws, json.loads(json.dumps(report)) if name != "c" else {**report, "seed": 8})
        runs.append((info, (ws / "task_agent.py").read_bytes(), (ws / STATE_FILE).read_bytes()))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def _focus_report(failing: str) -> dict[str, Any]:
    """Train inputs with three features; the low scores go with ``failing``."""
    inputs: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for i in range(60):
        record: dict[str, Any] = {"size": float(i % 10), "kind": "xyz"[i % 3], "color": i % 2 == 0}
        bad = record["kind"] == "x" if failing == "kind" else record["size"] >= 8
        inputs.append({"id": f"t{i}", "inputs": record})
        results.append({"id": f"t{i}", "score": 0.0 if bad else 1.0, "feedback": "", "output": 1})
    return {
        "seed": 0,
        "task": {"score_range": [0, 1]},
        "evaluation": {"stage": "train", "score": 0.7, "results": results},
        "train_inputs": inputs,
    }


@pytest.mark.parametrize(("failing", "param"), [("kind", "count"), ("size", "alpha")])
def test_focus_targets_the_feature_over_represented_among_failures(
    tmp_path: Path, failing: str, param: str
) -> None:
    weights = {"perturb": 0.0, "focus": 1.0, "follow": 0.0, "crossover": 0.0, "reset": 0.0}
    focused = 0
    for seed in range(12):
        ws = tuning_workspace(tmp_path, f"ws{seed}", weights, explore=0.0)
        info = improve(ws, {**_focus_report(failing), "seed": seed})
        if info["operator"] != "focus":
            assert info["explored"]  # only the minimum exploration may divert it
            continue
        focused += 1
        assert info["detail"]["feature"]["feature"] == failing
        assert info["detail"]["ranking"][0] == failing
        assert list(info["changes"]) == [param]
    assert focused >= 9


def test_focus_reads_a_list_input_by_its_length_and_numbers(tmp_path: Path) -> None:
    report = _focus_report("size")
    for item in report["train_inputs"]:  # the same sizes, as lists of that many numbers
        item["inputs"]["size"] = [1.5] * int(item["inputs"]["size"])
    weights = {"perturb": 0.0, "focus": 1.0, "follow": 0.0, "crossover": 0.0, "reset": 0.0}
    focused = 0
    for seed in range(8):
        ws = tuning_workspace(tmp_path, f"ws{seed}", weights, explore=0.0)
        info = improve(ws, {**report, "seed": seed})
        if info["operator"] == "focus":
            focused += 1
            assert info["detail"]["feature"]["feature"] == "size"  # the tag names the list
            assert list(info["changes"]) == ["alpha"]
    assert focused >= 6


def test_focus_falls_back_to_perturb_without_failures(tmp_path: Path) -> None:
    report = _focus_report("kind")
    for result in report["evaluation"]["results"]:
        result["score"] = 1.0
    weights = {"perturb": 0.0, "focus": 1.0, "follow": 0.0, "crossover": 0.0, "reset": 0.0}
    ws = tuning_workspace(tmp_path, "ws", weights, explore=0.0)
    info = improve(ws, report)
    assert info["operator"] in ("perturb", "reset")
    if info["operator"] == "perturb":
        assert info["detail"]["fallback_from"] == "focus"


def test_follow_reapplies_a_successful_direction(tmp_path: Path) -> None:
    params = literal(FAKE_AGENT, "PARAMS")
    archive = [
        variant(0, None, 0.5, params={**params, "alpha": 0.3}),
        variant(1, 0, 0.6, operator="perturb", changes={"alpha": [0.3, 0.5]}, params=dict(params)),
    ]
    weights = {"perturb": 0.0, "focus": 0.0, "follow": 1.0, "crossover": 0.0, "reset": 0.0}
    followed = 0
    for seed in range(10):
        ws = tuning_workspace(tmp_path, f"ws{seed}", weights, explore=0.0)
        info = improve(ws, report_with(archive, parent_id=1, seed=seed))
        if info["operator"] != "follow":
            continue
        followed += 1
        assert info["detail"]["source"] == 1
        assert list(info["changes"]) == ["alpha"]
        new_alpha = info["changes"]["alpha"][1]
        # Direction +0.2 scaled by alpha in [0.5, 1.5] from 0.5.
        assert 0.6 - 1e-9 <= new_alpha <= 0.8 + 1e-9
    assert followed >= 8


def test_crossover_takes_values_from_a_good_archive_member(tmp_path: Path) -> None:
    params = literal(FAKE_AGENT, "PARAMS")
    donor = {**params, "alpha": 0.9, "mode": "c", "count": 7}
    archive = [
        variant(0, None, 0.5, params=dict(params)),
        variant(1, 0, 0.5, operator="perturb", changes={"rate": [0.1, 0.01]}, params=params),
        variant(2, 0, 0.8, operator="perturb", changes={"alpha": [0.5, 0.9]}, params=donor),
    ]
    weights = {"perturb": 0.0, "focus": 0.0, "follow": 0.0, "crossover": 1.0, "reset": 0.0}
    ws = tuning_workspace(tmp_path, "ws", weights, explore=0.0)
    info = improve(ws, report_with(archive, parent_id=1, seed=3))
    assert info["operator"] == "crossover"
    assert info["detail"]["donor"] == 2
    assert info["changes"]
    for name, (_, new) in info["changes"].items():
        assert new == donor[name]


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"seed": "abc"},
        {"archive": "junk", "evaluation": 5, "parent": [], "task": {"score_range": "x"}},
        {
            "parent": {"variant_id": 3, "scores": None, "meta_info": "?"},
            "archive": [{"variant_id": 3, "parent_id": 99}, {"no_id": 1}, 7],
            "evaluation": {"results": [{"id": 1}, None, {"score": "x"}]},
            "train_inputs": [None, {"id": "a", "inputs": [1, 2]}],
            "generations_left": -3,
        },
    ],
)
def test_malformed_reports_are_tolerated(tmp_path: Path, report: dict[str, Any]) -> None:
    ws = make_workspace(tmp_path)
    info = improve(ws, report)
    assert info["operator"] != "none"
    assert all(
        in_space(n, v) for n, v in literal((ws / "task_agent.py").read_text(), "PARAMS").items()
    )


@pytest.mark.parametrize(
    "agent",
    [
        'PARAMS = {"alpha": 0.5}\n\ndef solve(inputs):\n    return 1\n',
        "def solve(inputs):\n    return 1\n",
        "this is not python (\n",
        'PARAMS = {"n": 2, "m": "x"}\nPARAM_SPACE = {"n": {"type": "int", "low": 2, "high": 2},'
        ' "m": {"type": "choice", "choices": ["x"]}}\n',
    ],
    ids=["no-space", "no-params", "syntax-error", "exhausted-space"],
)
def test_no_possible_edit_leaves_every_file_unchanged(tmp_path: Path, agent: str) -> None:
    ws = make_workspace(tmp_path, agent=agent)
    before = {p.name: p.read_bytes() for p in ws.iterdir()}
    info = improve(ws, {"seed": 1})
    assert info["operator"] == "none"
    assert info["reason"]
    assert {p.name: p.read_bytes() for p in ws.iterdir()} == before


def test_child_always_differs_from_its_parent_in_a_tiny_space(tmp_path: Path) -> None:
    agent = 'PARAMS = {"flag": True}\nPARAM_SPACE = {"flag": {"type": "bool"}}\n'
    params = {"flag": True}
    archive = [variant(0, None, 0.5, params={"flag": False}), variant(1, 0, 0.5, params=params)]
    for seed in range(10):
        ws = make_workspace(tmp_path, f"ws{seed}", agent=agent)
        info = improve(ws, report_with(archive, parent_id=1, seed=seed))
        assert info["params"] == {"flag": False}
        assert literal((ws / "task_agent.py").read_text(), "PARAMS") == {"flag": False}


def test_inert_parameters_are_picked_less_often(tmp_path: Path) -> None:
    """Edits that changed only ``mode`` never changed the score: ``mode`` loses credit."""
    params = literal(FAKE_AGENT, "PARAMS")
    archive = [variant(0, None, 0.5, params=params)]
    for vid in range(1, 13):
        archive.append(variant(vid, 0, 0.5, operator="perturb", changes={"mode": ["a", "b"]}))
    weights = {"perturb": 1.0, "focus": 0.0, "follow": 0.0, "crossover": 0.0, "reset": 0.0}
    picked = 0
    for seed in range(40):
        ws = tuning_workspace(tmp_path, f"ws{seed}", weights, n_mutations=1.0)
        info = improve(ws, report_with(archive, parent_id=0, seed=seed))
        picked += "mode" in info["changes"]
    assert picked <= 3  # uniform picking would choose it about 8 times in 40


def test_meta_info_stays_small_with_a_large_archive(tmp_path: Path) -> None:
    params = literal(FAKE_AGENT, "PARAMS")
    archive = [variant(0, None, 0.5, params=params)]
    archive += [
        variant(vid, 0, 0.4 + vid % 7 / 100, operator="perturb", changes={"alpha": [0.5, 0.6]})
        for vid in range(1, 800)
    ]
    ws = make_workspace(tmp_path)
    info = improve(ws, report_with(archive, parent_id=0))
    assert info["operator"] != "none"
    assert len(json.dumps(info)) <= 60_000


# -- the strategy portfolio (meta_portfolio.py) -------------------------------------------------
def _only(mechanism: str) -> dict[str, Any]:
    """A portfolio that always draws ``mechanism``."""
    shares = {name: float(name == mechanism) for name in SEED_META["portfolio"]["shares"]}
    return {**SEED_META["portfolio"], "shares": shares, "share_floor": 0.0}


def _credited(operator: str, outcome: float, **info: Any) -> list[dict[str, Any]]:
    """A parent made by ``operator`` (val 0.6 over its parent's 0.5) and two children of it
    made by the same operator, scoring ``outcome``."""
    archive = _lineage(0.6, 0.5, operator)
    archive[1]["meta_info"].update(info)
    archive += [variant(vid, 1, outcome, operator=operator, **info) for vid in (2, 3)]
    return archive


def test_portfolio_shares_move_toward_a_mechanism_with_credit(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, self_adapt_tau=0.0)
    info = improve(ws, report_with(_credited("surrogate", 0.7), parent_id=1))
    shares, seed_shares = info["meta"]["portfolio"]["shares"], SEED_META["portfolio"]["shares"]
    assert shares["surrogate"] > seed_shares["surrogate"]
    assert all(shares[m] < seed_shares[m] for m in seed_shares if m != "surrogate")
    assert math.isclose(sum(shares.values()), 1.0, abs_tol=1e-3)
    assert state(ws)["portfolio"] == info["meta"]["portfolio"]  # inherited by the child
    assert info["adaptation"]["portfolio"]["shares"] == [seed_shares, shares]
    # The child's own call starts from it: the credit compounds along the lineage.
    archive = [
        *_credited("surrogate", 0.7),
        variant(4, 1, 0.8, **{**info, "operator": "surrogate"}),
    ]
    again = improve(ws, report_with(archive, parent_id=4, seed=1))
    assert again["meta"]["portfolio"]["shares"]["surrogate"] > shares["surrogate"]


def test_structural_failures_lower_its_share_and_successes_raise_their_kind(
    tmp_path: Path,
) -> None:
    seed_portfolio = SEED_META["portfolio"]
    failed = _credited("structure", 0.7, structure={"kind": "lift"})
    for entry in failed[2:]:
        entry["state"], entry["scores"] = "invalid", {}
    failed[1]["scores"] = {"train": 0.4, "val": 0.4}
    info = improve(make_workspace(tmp_path, "bad"), report_with(failed, parent_id=1))
    assert info["meta"]["portfolio"]["shares"]["structure"] < seed_portfolio["shares"]["structure"]
    good = _credited("structure", 0.7, structure={"kind": "compare"})
    info = improve(make_workspace(tmp_path, "good"), report_with(good, parent_id=1))
    kinds = info["meta"]["portfolio"]["structure_kinds"]
    assert kinds["compare"] > seed_portfolio["structure_kinds"]["compare"]
    assert kinds["lift"] < seed_portfolio["structure_kinds"]["lift"]


def test_a_stagnant_lineage_restarts_and_the_restart_starts_afresh(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, stagnation=20, step_scale=0.02, explore=0.4)
    info = improve(ws, {"seed": 3})
    assert info["operator"] == "restart" and info["forced_restart"] is True
    assert info["changes"] and all(in_space(n, v) for n, v in info["params"].items())
    assert state(ws)["stagnation"] == 0
    assert state(ws)["step_scale"] == 0.15 and state(ws)["explore"] == 0.1
    # A restart that did not pay off makes the next one wait longer.
    archive = _lineage(0.4, 0.5, "restart")
    info = improve(make_workspace(tmp_path, "after"), report_with(archive, parent_id=1))
    assert info["meta"]["portfolio"]["restart_after"] > SEED_META["portfolio"]["restart_after"]


def test_a_portfolio_read_from_the_state_file_decides_the_mechanism(tmp_path: Path) -> None:
    """A state evolved elsewhere (another task, another run) is used as it is."""
    for seed in range(8):
        ws = make_workspace(tmp_path, f"ws{seed}", portfolio=_only("structure"))
        code = {p.name: p.read_bytes() for p in ws.glob("meta_*.py")}
        info = improve(ws, {"seed": seed})
        source = (ws / "task_agent.py").read_text(encoding="utf-8")
        assert info["operator"] == "structure" and info["mechanism"] == "structure"
        assert info["structure"]["function"] == "solve" and source != FAKE_AGENT
        compile(source, "task_agent.py", "exec")
        assert param_space_errors(source) == []
        assert literal(source, "PARAMS") == info["params"]
        assert state(ws)["portfolio"]["shares"]["structure"] == 1.0
        assert {p.name: p.read_bytes() for p in ws.glob("meta_*.py")} == code


def test_the_surrogate_proposes_from_a_history_and_falls_back_without_one(tmp_path: Path) -> None:
    archive = [variant(0, None, 0.5, params=literal(FAKE_AGENT, "PARAMS"))]
    for vid in range(1, 13):
        params = {**literal(FAKE_AGENT, "PARAMS"), "alpha": vid / 13, "count": vid % 10 + 1}
        archive.append(
            variant(vid, 0, 1.0 - abs(vid / 13 - 0.3), operator="perturb", params=params)
        )
    ws = make_workspace(tmp_path, portfolio=_only("surrogate"))
    info = improve(ws, report_with(archive, parent_id=0))
    assert info["operator"] == "surrogate" and info["detail"]["points"] == 13
    assert all(in_space(n, v) for n, v in info["params"].items())
    ws = make_workspace(tmp_path, "few", portfolio=_only("surrogate"))
    info = improve(ws, report_with(archive[:4], parent_id=0))
    assert info["operator"] in ("perturb", "focus", "follow", "crossover", "reset")
    assert info["detail"]["fallback_from"] == "surrogate"


@pytest.mark.parametrize("portfolio", ["junk", {"shares": {"tune": "x"}, "restart_after": -5}])
def test_a_malformed_portfolio_falls_back_to_the_defaults(tmp_path: Path, portfolio: Any) -> None:
    info = improve(make_workspace(tmp_path, portfolio=portfolio), {"seed": 2})
    assert info["operator"] != "none"
    got = info["meta"]["portfolio"]
    assert set(got["shares"]) == set(SEED_META["portfolio"]["shares"])
    assert set(got["structure_kinds"]) == set(SEED_META["portfolio"]["structure_kinds"])
    assert got["restart_after"] >= 3.0


_DECLARED = 'PARAMS = {"a": 0.5}\nPARAM_SPACE = {"a": {"type": "float", "low": 0, "high": 1}}\n'
ODD_AGENTS = {
    "no-functions": _DECLARED,
    "computed-space": 'PARAMS = {"a": 0.5}\nPARAM_SPACE = dict(a={"low": 0, "high": 1})\n\n'
    "def solve(x):\n    return x * 2.5 if x > 1 else min(x, 3)\n",
    "odd-syntax": _DECLARED + "\nclass A:\n    @property\n    def f(self, k=2.0):\n"
    "        return [i * 1.5 for i in range(3)][1:2] if (n := 3) > 2 and self else f'{k + 1}'\n\n"
    "async def g():\n    async with x as y:\n        return await y - 2.0\n",
}


@pytest.mark.parametrize("agent", list(ODD_AGENTS.values()), ids=list(ODD_AGENTS))
@pytest.mark.parametrize("mechanism", ["structure", "surrogate", "restart"])
def test_odd_task_agents_never_break_the_agent(tmp_path: Path, agent: str, mechanism: str) -> None:
    for seed in range(6):
        ws = make_workspace(tmp_path, f"ws{seed}", agent=agent, portfolio=_only(mechanism))
        info = improve(ws, {"seed": seed})
        source = (ws / "task_agent.py").read_text(encoding="utf-8")
        if info["operator"] == "none":
            assert source == agent
            continue
        compile(source, "task_agent.py", "exec")
        if info["operator"] == "structure":
            assert source != agent and info["structure"]["kind"]
        else:
            assert literal(source, "PARAMS") == info["params"]


def test_a_rarely_drawn_mechanism_gains_more_from_one_success(tmp_path: Path) -> None:
    """Only the drawn mechanism is observed: one outcome weighs by the inverse of its share."""
    ws = make_workspace(tmp_path)
    portfolio = load_meta_module(ws, "meta_portfolio")
    event = load_meta_module(ws, "meta_history").Event
    start = portfolio.sanitize_portfolio(SEED_META["portfolio"], SEED_META["portfolio"])

    def gain(operator: str, outcome: str) -> float:
        mechanism = portfolio.mechanism_of(operator)
        happened = [event(1, outcome, operator, 0.1, 1, 1.0, True)]
        new, _ = portfolio.adapt_portfolio(start, happened, 0.2)
        return float(new["shares"][mechanism] / start["shares"][mechanism])

    assert gain("restart", "success") > gain("perturb", "success") > 1.0
    assert gain("restart", "failure") < gain("perturb", "failure") < 1.0
    assert gain("surrogate", "tie") == 1.0
