"""Arenas for the dashboard's tests, played for real (``process`` sandbox, tiny rounds) into
one storage: a finished one-on-one arena, a finished tournament whose test agent proposes
HTML and over-long inputs to a code agent that gets everything wrong, an arena stopped after
its first round and marked running, and an arena of zero rounds (not a pytest module)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from hyperagents.arena import Agents, ArenaConfig, ArenaResult, run_arena, seed_code_agent
from hyperagents.program import Program
from hyperagents.storages import BaseStorage, RunStatus
from hyperagents.tasks import load_task

SMALL = {"proposals": 8, "children": 1, "heldout_size": 20, "sandbox": "process"}
#: Inputs the hostile test agent proposes: markup a page must never run, and one longer than
#: the page shows.
HOSTILE_INPUTS = (
    '<img src=x onerror="window.__pwned=1">@example.com',
    "<script>window.__pwned=2</script>" + "a" * 300 + "@example.com",
)
_HOSTILE = f"def propose(history, n, seed):\n    return {list(HOSTILE_INPUTS)!r}\n"
_WRONG = "def solve(inputs):\n    return None\n"


@dataclass(frozen=True)
class Arenas:
    """The arenas' names (and the finished ones' results)."""

    duel: ArenaResult
    tournament: ArenaResult
    partial: str
    empty: str


class _Stop(Exception):
    """Ends an arena after its first round (as a kill would)."""


def _stop_after_first(summary: dict[str, object]) -> None:
    raise _Stop(summary["round"])


def play_arenas(storage: BaseStorage) -> Arenas:
    """Play the four arenas into ``storage``."""
    duel = run_arena(ArenaConfig(rounds=2, **SMALL), storage=storage, name="arena-duel")
    seed = seed_code_agent(load_task("email_validation", {}), "arena")
    wrong = seed.with_files({"task_agent.py": _WRONG})
    hostile = Program({"test_agent.py": _HOSTILE})
    tournament = run_arena(
        ArenaConfig(rounds=2, code_agents=2, test_agents=2, replace_every=1, **SMALL),
        storage=storage,
        name="arena-tournament",
        agents=Agents(code=[seed, wrong], test=[hostile]),
    )
    partial = "arena-partial"
    with contextlib.suppress(_Stop):
        run_arena(
            ArenaConfig(rounds=3, **SMALL),
            storage=storage,
            name=partial,
            on_round=_stop_after_first,
        )
    storage.set_run_status(storage.get_run_by_name(partial).id, RunStatus.RUNNING)
    empty = "arena-empty"
    run_arena(ArenaConfig(rounds=0, **SMALL), storage=storage, name=empty)
    return Arenas(duel, tournament, partial, empty)
