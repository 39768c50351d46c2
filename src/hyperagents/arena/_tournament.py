"""The tournament's selection (4b): every ``replace_every`` rounds the worst code agent and the
worst test agent are replaced by mutated copies of the best.

A code agent's fitness is its accuracy on the current suite; a test agent's is the hard cases it
had accepted over the last ``replace_every`` rounds. The mutated code agent is a child of the
best one made by its own meta agent (evaluated on the suite; a copy of the best where the child
fails); the mutated test agent is the best one with one or two of its declared ``PARAMS``
redrawn within ``PARAM_SPACE`` (a copy where it declares none it can parse).
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any

from hyperagents.arena._round import RoundContext, add_spent, improve_slot
from hyperagents.arena._state import AgentSlot, ArenaState
from hyperagents.arena._steps import Raised
from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.tasks import declared_space

__all__ = ["mutate_test_agent", "replace_worst"]

_TEST_AGENT = "test_agent.py"


def mutate_test_agent(program: Program, rng: random.Random) -> tuple[Program, dict[str, Any]]:
    """``program`` with one or two declared parameters of its test agent redrawn.

    Returns:
        The mutated program (``program`` itself where nothing can be mutated) and the values
        changed.
    """
    try:
        source = program.text(_TEST_AGENT)
        space = declared_space(source)
    except (ConfigError, KeyError, UnicodeDecodeError):
        return program, {}
    if not space.params:
        return program, {}
    chosen = rng.sample(list(space.params), k=min(len(space.params), rng.randint(1, 2)))
    values = {param.name: param.uniform(rng) for param in chosen}
    return program.with_files({_TEST_AGENT: space.write(source, values)}), values


def _worst_and_best(slots: list[AgentSlot], fitness: Any) -> tuple[AgentSlot, AgentSlot]:
    """The worst (ties: the youngest) and the best (ties: the oldest) of ``slots``."""
    ranked = sorted(enumerate(slots), key=lambda item: (fitness(item[1]), -item[0]))
    return ranked[0][1], ranked[-1][1]


def _replace_code(ctx: RoundContext, state: ArenaState, round_no: int) -> dict[str, Any]:
    worst, best = _worst_and_best(state.code, lambda slot: slot.score)
    newcomer = AgentSlot(
        name=state.new_name("code"),
        program=best.program,
        born=round_no,
        score=best.score,
        lineage=list(best.lineage),
        generation=best.generation,
        answers=dict(best.answers),
    )
    # The mutated winner: one child of the best by its own meta agent, kept only if it scores.
    _, spent = ctx.pool.map(lambda slot: improve_slot(ctx, state, slot, round_no, 1), [newcomer])[0]
    add_spent(state, spent)
    state.code[state.code.index(worst)] = newcomer
    return {"kind": "code", "replaced": worst.name, "winner": best.name}


def _replace_test(ctx: RoundContext, state: ArenaState, round_no: int) -> dict[str, Any]:
    window = ctx.config.replace_every
    worst, best = _worst_and_best(state.test, lambda slot: slot.recent_hard(window))
    rng = random.Random(ctx.seed(round_no, "mutate", best.name))
    program, changed = mutate_test_agent(ctx.program(best.program), rng)
    newcomer = AgentSlot(name=state.new_name("test"), program=ctx.put(program), born=round_no)
    newcomer.history = list(best.history)
    state.test[state.test.index(worst)] = newcomer
    return {"kind": "test", "replaced": worst.name, "winner": best.name, "changed": changed}


def _announce(
    message: str, round_no: int, entry: dict[str, Any]
) -> tuple[dict[str, Any], list[Raised]]:
    """The step that records a replacement (once, however often the round is played)."""
    return {}, [("arena.replaced", message, {"round": round_no, **entry})]


def replace_worst(ctx: RoundContext, state: ArenaState, round_no: int) -> list[dict[str, Any]]:
    """Replace the worst code and test agents on the rounds that call for it (a tournament,
    every ``replace_every`` rounds); what was replaced, each with its newcomer."""
    every = ctx.config.replace_every
    if every <= 0 or round_no % every != 0:
        return []
    done: list[dict[str, Any]] = []
    if len(state.code) > 1:
        entry = _replace_code(ctx, state, round_no)
        entry["new"] = f"c{state.names['code'] - 1}"
        done.append(entry)
    if len(state.test) > 1:
        entry = _replace_test(ctx, state, round_no)
        entry["new"] = f"t{state.names['test'] - 1}"
        done.append(entry)
    for entry in done:
        message = (
            f"{entry['kind']} agent {entry['replaced']} replaced by {entry['new']}, "
            f"a mutated copy of {entry['winner']}"
        )
        ctx.log.step(f"replaced/{entry['kind']}", partial(_announce, message, round_no, entry))
    return done
