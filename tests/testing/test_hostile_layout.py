"""The hostile cases' modules: one public face, private parts that only it uses."""

from __future__ import annotations

import re
from pathlib import Path

from hyperagents.sandbox import Limits, Outcome
from hyperagents.testing import hostile

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = re.compile(r"hyperagents\.testing\._hostile_|from hyperagents\.testing import _hostile_")


def test_only_hyperagents_testing_imports_the_private_hostile_modules() -> None:
    testing = ROOT / "src" / "hyperagents" / "testing"
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("src", "tests", "benchmarks", "scripts")
        for path in (ROOT / folder).rglob("*.py")
        if path.parent != testing and PRIVATE.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_public_names_resolve_and_are_unique() -> None:
    assert len(hostile.__all__) == len(set(hostile.__all__))
    for name in hostile.__all__:
        assert hasattr(hostile, name), name


def test_every_case_is_listed_under_its_name_with_its_checks() -> None:
    assert list(hostile.HOSTILE_CASES)[:3] == ["infinite_loop", "sleep_forever", "fork_bomb"]
    for name, case in hostile.HOSTILE_CASES.items():
        assert case.name == name
        assert callable(case.setup) and callable(case.observe)
        assert set(case.needs_any) <= set(hostile.TRAITS)
        assert isinstance(case.limits, Limits)
        assert "def solve(inputs)" in case.render(
            token="t", port="1", db="d", outside="o", home="h", canary="c", labels="l"
        )


def test_an_unsafe_case_is_not_run_where_nothing_contains_it(tmp_path: Path) -> None:
    class NeverRun:
        name = "none"

        def run(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("an unsafe case must not run")

    case = hostile.HOSTILE_CASES["fork_bomb"]
    report = hostile.run_case(case, NeverRun(), tmp_path, traits=frozenset())  # type: ignore[arg-type]
    assert (report.ran, report.expected_contained, report.contained) == (False, False, None)
    assert report.note == "not contained by the none sandbox here (not run: unsafe)"
    assert report.kill_bound == case.wall_time + hostile.KILL_MARGIN
    assert case.outcome is Outcome.TIMEOUT
