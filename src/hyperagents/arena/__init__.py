"""The arena: test agents that propose inputs and code agents that solve them, co-evolving.

Every proposed input is labelled by the task's trusted oracle, here in the engine; the growing
suite takes the inputs some code agent got wrong; robustness is measured on a held-out
adversarial suite no agent ever sees. :func:`run_arena` with an :class:`ArenaConfig` is the one
entry: one code agent against one test agent (4a), or a tournament (4b) whose worst agents are
replaced by mutated winners every ``replace_every`` rounds. :func:`compare_level3` scores a
level-3 (hyperagent) champion on the same held-out suite at the same evaluation budget.

The arena is also level 4 of the level presets: :func:`level_preset` gives its driver
(:class:`ArenaLevel`), which plays a run of the level in any storage, experiment and arm,
recording a variant per round (see :mod:`hyperagents.arena._record`); :func:`champion_heldout`
scores any run's champion on the held-out suite, so ``hyperagents experiment --levels`` puts
every level side by side on it.
"""

from __future__ import annotations

from hyperagents.arena._compare import compare_level3
from hyperagents.arena._config import ArenaConfig, parse_tournament
from hyperagents.arena._engine import (
    Agents,
    ArenaResult,
    arena_name,
    arena_series,
    arena_suite,
    is_level_run,
    run_arena,
    seed_code_agent,
    seed_test_agent,
)
from hyperagents.arena._level import ArenaLevel, level_config, level_preset
from hyperagents.arena._record import HELDOUT_EVENT, champion_heldout
from hyperagents.arena._suite import heldout_cases, heldout_suite, label_inputs, oracle_of

__all__ = [
    "HELDOUT_EVENT",
    "Agents",
    "ArenaConfig",
    "ArenaLevel",
    "ArenaResult",
    "arena_name",
    "arena_series",
    "arena_suite",
    "champion_heldout",
    "compare_level3",
    "heldout_cases",
    "heldout_suite",
    "is_level_run",
    "label_inputs",
    "level_config",
    "level_preset",
    "oracle_of",
    "parse_tournament",
    "run_arena",
    "seed_code_agent",
    "seed_test_agent",
]
