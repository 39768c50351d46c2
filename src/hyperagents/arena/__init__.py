"""The arena: test agents that propose inputs and code agents that solve them, co-evolving.

Every proposed input is labelled by the task's trusted oracle, here in the engine; the growing
suite takes the inputs some code agent got wrong; robustness is measured on a held-out
adversarial suite no agent ever sees. :func:`run_arena` with an :class:`ArenaConfig` is the one
entry: one code agent against one test agent (4a), or a tournament (4b) whose worst agents are
replaced by mutated winners every ``replace_every`` rounds. :func:`compare_level3` scores a
level-3 (hyperagent) champion on the same held-out suite at the same evaluation budget.
"""

from __future__ import annotations

from hyperagents.arena._compare import compare_level3
from hyperagents.arena._config import ArenaConfig, parse_tournament
from hyperagents.arena._engine import (
    Agents,
    ArenaResult,
    arena_series,
    arena_suite,
    run_arena,
    seed_code_agent,
    seed_test_agent,
)
from hyperagents.arena._suite import heldout_cases, heldout_suite, label_inputs, oracle_of

__all__ = [
    "Agents",
    "ArenaConfig",
    "ArenaResult",
    "arena_series",
    "arena_suite",
    "compare_level3",
    "heldout_cases",
    "heldout_suite",
    "label_inputs",
    "oracle_of",
    "parse_tournament",
    "run_arena",
    "seed_code_agent",
    "seed_test_agent",
]
