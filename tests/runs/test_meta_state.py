"""Manual approval tells a meta agent adapting its own state from a change of its code."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperagents import Run
from hyperagents.runs import RunConfig
from hyperagents.runs._meta_change import state_change, state_only_change
from hyperagents.storages import InMemoryStorage, VariantState

from toytask import TUNABLE_TASK_AGENT, ToyTask

BEFORE = '''"""A meta agent."""
from typing import Any

META: dict[str, Any] = {"step": 0.5, "ops": ["a", "b"]}
LIMIT = 3


def improve(x):
    return x + META["step"]
'''


@pytest.mark.parametrize(
    ("after", "state_only"),
    [
        (BEFORE, True),
        (BEFORE.replace('"step": 0.5', '"step": 0.25, "new": -1'), True),
        (BEFORE.replace("LIMIT = 3", "LIMIT = (1, 2)"), True),
        (BEFORE.replace("x + META", "x - META"), False),  # code
        (BEFORE.replace("LIMIT = 3", "LIMIT = len('abc')"), False),  # a call is code
        (BEFORE + "\nimport os\n", False),
        (BEFORE.replace('"""A meta agent."""', '"""Another."""'), False),  # text, not state
        (BEFORE.replace("def improve(x):", "def improve(x"), False),  # does not parse
    ],
)
def test_state_only_change(after: str, state_only: bool) -> None:
    assert state_only_change(BEFORE, after) is state_only


def test_added_deleted_or_undecodable_files_are_code() -> None:
    assert not state_only_change(None, BEFORE)
    assert not state_only_change(BEFORE, None)
    assert not state_only_change(b"\xff\xfe", BEFORE.encode())
    assert state_only_change(BEFORE.encode(), BEFORE)


def test_any_change_of_the_state_file_is_state() -> None:
    """The state file is data: added, rewritten, removed or garbled, it is adaptation."""
    for before, after in ((None, '{"a": 1}'), ('{"a": 1}', '{"a": 2}'), ("{}", None)):
        assert state_change("meta_state.json", before, after)
    assert state_change("meta_state.json", b"\xff", "not json")
    # Elsewhere the source rule holds.
    assert not state_change("meta_agent.py", None, BEFORE)
    assert state_change("meta_agent.py", BEFORE, BEFORE.replace("LIMIT = 3", "LIMIT = 4"))
    assert not state_change("meta_state.py", BEFORE, BEFORE.replace("x + META", "x - META"))


def test_manual_approval_does_not_hold_the_offline_agents_state_updates(tmp_path: Path) -> None:
    """The offline meta agent writes its adapted state (meta_state.json) in every child, its
    code files unchanged: under --approval manual such children are not held for "changing the
    meta agent" (only would-be champions wait), and each says so in a variant.meta_state
    event."""
    run = Run.create(
        task="review",
        storage=f"sqlite:///{tmp_path / 'r.db'}",
        config={"approval": "manual", "sandbox": "auto"},
        seed=0,
    )
    run.optimize(4)
    store = run.storage
    pending = run.variants([VariantState.PENDING])
    assert all("meta agent" not in (v.reason or "") for v in pending)
    adapted = store.list_events(run.id, kinds=["variant.meta_state"])
    assert adapted, "no child adapted only its state"
    assert all("its code is unchanged" in e.message for e in adapted)
    assert all("(meta_state.json)" in e.message for e in adapted)
    for event in adapted:
        variant = store.get_variant(event.variant_id or 0)
        assert variant.state is not VariantState.PENDING


def test_a_code_change_of_the_meta_agent_still_waits(tmp_path: Path) -> None:
    from hyperagents.improvers import ImproveResult

    run = Run.create(
        task="review",
        storage=f"sqlite:///{tmp_path / 'r.db'}",
        config={"approval": "manual", "sandbox": "auto"},
        seed=0,
    )
    run.optimize(0)
    job = run.ask()
    source = job.request.program["meta_agent.py"].decode()
    changed = job.request.program.with_files({"meta_agent.py": source + "\nX = len('ab')\n"})
    child = run.tell(job, ImproveResult(program=changed))
    assert child.state is VariantState.PENDING
    assert "changes the meta agent's code (meta_agent.py)" in (child.reason or "")


def test_children_store_only_their_state_and_params_anew() -> None:
    """The offline agent's code files stay byte-identical in every child, so storage keeps one
    copy of each: a child adds at most two blobs (its task_agent.py and meta_state.json)."""
    run = Run.create(
        task=ToyTask(task_agent=TUNABLE_TASK_AGENT),
        seed=0,
        storage=InMemoryStorage(),
        config=RunConfig.parse({"subset_size": 10, "meta_agent": "offline"}),
    )
    run.optimize(4)
    seed, *children = [run.program(v) for v in run.variants() if v.program_id is not None]
    assert len(children) == 4
    code = {path: seed[path] for path in seed if path.startswith("meta_")}
    for child in children:
        assert all(child[path] == text for path, text in code.items())
        assert sorted(seed.changed_paths(child)) == ["meta_state.json", "task_agent.py"]
    distinct = {digest for program in (seed, *children) for digest in program.blobs.values()}
    assert run.storage.count_blobs() == len(distinct) <= len(seed.blobs) + 2 * len(children)
