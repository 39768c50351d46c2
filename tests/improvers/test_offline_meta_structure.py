"""The offline meta agent's ``structure`` mechanism (``meta_structure.py``): edits of the task
agent's code, made on source spans so that every other byte of the file is kept."""

from __future__ import annotations

import ast
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hyperagents.tasks import param_space_errors

from seed_agents import offline_modules

SAMPLE = '''"""A sample task agent."""

PARAMS = {
    "w": 0.5,
}

PARAM_SPACE = {
    "w": {"type": "float", "low": 0.0, "high": 1.0},
}


def score(x, y):
    s = PARAMS["w"] * x
    s += min(y, 3.0)
    if x > 2.5:
        s -= 0.75
    if y < 1 and x < 0:
        s += 2
    return s


def solve(inputs):
    return "yes" if score(inputs["x"], inputs["y"]) >= 0.0 else "no"
'''
POINTS = [(x / 2.0, y / 2.0) for x in range(-2, 12) for y in range(-2, 10)]


@pytest.fixture(scope="module")
def mods(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    ws = tmp_path_factory.mktemp("structure")
    names = {"structure": "meta_structure", "source": "meta_source", "history": "meta_history"}
    return offline_modules(ws, **names)


def _edits(mods: dict[str, Any], source: str, kind: str) -> list[Any]:
    """Every checked edit of ``kind`` on ``source`` (one per site)."""
    task = mods["source"].Literals(source)
    params = task.value("PARAMS")
    editor = mods["structure"].Editor(task, params)
    out = []
    for seed in range(4):
        for site in editor.sites[kind]:
            change = editor.build(site, random.Random(seed))
            if change is not None:
                checked = mods["structure"]._check(task, params, change)
                if checked is not None and checked.source not in [e.source for e in out]:
                    out.append(checked)
    return out


def _functions(source: str) -> dict[str, str]:
    return {
        node.name: ast.dump(node)
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef)
    }


def _run(source: str) -> list[Any]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "task_agent.py", "exec"), namespace)
    return [namespace["score"](x, y) for x, y in POINTS]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("compare", ["x >= 2.5", "x < 2.5", "y <= 1", "y > 1", "x <= 0", ") > 0.0", ") <= 0.0"]),
        ("binop", ['PARAMS["w"] / x', "s -= min(y, 3.0)", "s += 0.75", "s -= 2"]),
        ("minmax", ["max(y, 3.0)"]),
        (
            "drop_term",
            ["    pass\n    if x > 2.5", "        pass\n    if y", "        pass\n    return"],
        ),
        ("negate_if", ["if not (x > 2.5):", "if not (y < 1 and x < 0):"]),
        ("drop_cond", ["if y < 1:", "if x < 0:"]),
        (
            "drop_rule",
            ["s += min(y, 3.0)\n    pass\n    if y", "s -= 0.75\n    pass\n    return s"],
        ),
    ],
)
def test_each_edit_kind_changes_one_function_where_intended(
    mods: dict[str, Any], kind: str, expected: list[str]
) -> None:
    edits = _edits(mods, SAMPLE, kind)
    assert edits
    found = set()
    for edit in edits:
        compile(edit.source, "task_agent.py", "exec")
        begin = SAMPLE.index(f"def {edit.record['function']}")
        end = SAMPLE.find("\n\n\ndef", begin) % (len(SAMPLE) + 1)
        assert edit.source.startswith(SAMPLE[:begin]) and edit.source.endswith(SAMPLE[end:])
        before, after = _functions(SAMPLE), _functions(edit.source)
        changed = [name for name in before if before[name] != after[name]]
        assert changed == [edit.record["function"]]
        assert edit.params == {"w": 0.5}
        assert edit.record["kind"] == kind and edit.record["old"] in SAMPLE
        found.update(text for text in expected if text in edit.source)
    assert found == set(expected)


LOOP = """PARAMS = {"w": 0.5}


def solve(inputs):
    n, total = 0, 0.0
    while n < inputs["k"] and total + 1.5 < 100:
        total += PARAMS["w"] * n
        n += 1
    return total > 2.0
"""


def test_a_loops_condition_is_never_edited_and_its_body_is(mods: dict[str, Any]) -> None:
    task = mods["source"].Literals(LOOP)
    editor = mods["structure"].Editor(task, task.value("PARAMS"))
    condition = LOOP.splitlines()[5]
    for kind in ("compare", "binop", "drop_cond", "drop_term"):
        for edit in _edits(mods, LOOP, kind):
            assert condition in edit.source, (kind, edit.record)  # never a runaway
    body = [e for kind in ("binop", "compare") for e in _edits(mods, LOOP, kind)]
    assert {e.record["old"] for e in body} >= {'total += PARAMS["w"] * n', "total > 2.0"}
    assert editor.sites["compare"]  # (the return's comparison)


def test_a_lifted_constant_becomes_a_declared_parameter_with_the_same_behaviour(
    mods: dict[str, Any],
) -> None:
    edits = _edits(mods, SAMPLE, "lift")
    assert {edit.record["param"]["value"] for edit in edits} == {3.0, 2.5, 0.75, 2, 0.0}
    for edit in edits:
        name = edit.record["param"]["name"]
        assert name.startswith(edit.record["function"])
        assert param_space_errors(edit.source) == []
        task = mods["source"].Literals(edit.source)
        assert (
            task.value("PARAMS") == edit.params == {"w": 0.5, name: edit.record["param"]["value"]}
        )
        assert task.value("PARAM_SPACE")[name] == edit.record["param"]["space"]
        assert f'PARAMS["{name}"]' in edit.source
        assert _run(edit.source) == _run(SAMPLE)  # the same number, now tunable
        # The rest of PARAM_SPACE's text is kept: the entry is added after the last one.
        assert '"w": {"type": "float", "low": 0.0, "high": 1.0},\n    "' in edit.source


def test_a_copied_rule_adds_a_scaled_threshold(mods: dict[str, Any]) -> None:
    (edit,) = _edits(mods, SAMPLE, "copy_rule")
    name = edit.record["param"]["name"]
    assert param_space_errors(edit.source) == []
    copy = (
        f'if x > 2.5:\n        s -= 0.75\n    if x > 2.5 * PARAMS["{name}"]:\n        s -= 0.75\n'
    )
    assert copy in edit.source
    before, after = _run(SAMPLE), _run(edit.source)
    for (x, _y), old, new in zip(POINTS, before, after, strict=True):
        assert new == (old - 0.75 if x > 2.5 * 1.5 else old)


def test_a_transplant_remakes_an_improving_edit_of_another_member(mods: dict[str, Any]) -> None:
    (lifted, *_) = _edits(mods, SAMPLE, "lift")
    archive = [
        {"variant_id": 0, "parent_id": None, "scores": {"val": 0.5}, "meta_info": {}},
        {"variant_id": 1, "parent_id": 0, "scores": {"val": 0.6}, "meta_info": {}},
        {
            "variant_id": 2,
            "parent_id": 0,
            "scores": {"val": 0.7},
            "meta_info": {"operator": "structure", "structure": lifted.record},
        },
    ]
    report = {"parent": {"variant_id": 1}, "archive": archive}
    history = mods["history"].History.from_report(report)
    task = mods["source"].Literals(SAMPLE)
    weights = {"transplant": 1.0}
    edit = mods["structure"].propose_structure(task, {"w": 0.5}, history, random.Random(0), weights)
    assert edit is not None and edit.record["kind"] == "transplant"
    assert edit.source == lifted.source
    # An edit that made its child worse is not transplanted.
    archive[2]["scores"] = {"val": 0.4}
    history = mods["history"].History.from_report(report)
    assert (
        mods["structure"].propose_structure(task, {"w": 0.5}, history, random.Random(0), weights)
        is None
    )


def test_an_edit_that_does_not_compile_is_not_proposed(mods: dict[str, Any]) -> None:
    task = mods["source"].Literals(SAMPLE)
    at = len(SAMPLE[: SAMPLE.index("return s")].encode())
    broken = mods["structure"].Change(
        "binop", "score", [mods["source"].Edit(at, at, "((")], "", "(("
    )
    assert mods["structure"]._check(task, {"w": 0.5}, broken) is None


ODD = """PARAMS = {"w": 1.0}
PARAM_SPACE = {"w": {"type": "float", "low": 0.0, "high": 2.0}}


class Agent:
    @staticmethod
    def run(x: float = 2.5, *, k: int = 3) -> float:
        y: "int" = 7
        label = f"{x + 2:.3f} é"
        table = [1, 2, 3][2]
        if (n := len(label)) > 4:
            return (lambda z=5.0: z * 2)() + n + table + k
        match y:
            case 7:
                return x - 1.5
        return x


def solve(inputs):
    return Agent.run(PARAMS["w"])
"""


@pytest.mark.parametrize("seed", range(30))
def test_odd_sources_give_compiling_edits_or_none(mods: dict[str, Any], seed: int) -> None:
    task = mods["source"].Literals(ODD)
    weights = dict.fromkeys(mods["structure"].KINDS, 1.0)
    history = mods["history"].History.from_report({})
    edit = mods["structure"].propose_structure(
        task, {"w": 1.0}, history, random.Random(seed), weights
    )
    assert edit is not None
    compile(edit.source, "task_agent.py", "exec")
    assert param_space_errors(edit.source) == []
    # No number inside the f-string, an annotation, a default or an index is lifted.
    if edit.record["kind"] == "lift":
        for kept in (
            'f"{x + 2:.3f} é"',
            'y: "int"',
            "x: float = 2.5",
            "k: int = 3",
            "z=5.0",
            "][2]",
        ):
            assert kept in edit.source
    # A source with nothing to edit, or one that does not parse, gives no edit.
    for source in ('PARAMS = {"w": 1.0}\n', "def f(:\n"):
        task = mods["source"].Literals(source)
        assert (
            mods["structure"].propose_structure(task, {}, history, random.Random(seed), weights)
            is None
        )


def test_every_kind_gives_valid_edits_of_the_built_in_seed_agents(mods: dict[str, Any]) -> None:
    for name in ("review", "packing", "support"):
        path = Path(__file__).parents[2] / "src/hyperagents/tasks" / name / "seed/task_agent.py"
        source = path.read_text(encoding="utf-8")
        for kind in mods["structure"].KINDS:
            for edit in _edits(mods, source, kind)[:12]:
                compile(edit.source, "task_agent.py", "exec")
                assert param_space_errors(edit.source) == []
