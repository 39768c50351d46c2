"""Seed test agent of the arena: seeded mutations of the task's seed inputs.

``propose(history, n, seed)`` returns ``n`` candidate inputs (strings), each a seed input
(``BASES``, or an input of ``history`` that broke a code agent) after one to ``max_edits``
edits, the kind of each edit drawn by the weights ``w_<kind>`` of ``PARAMS``:

* ``char`` (generic): a character inserted (from ``ALPHABET``), removed, doubled, or two
  neighbours swapped;
* ``splice`` (generic): the head of the input joined to the tail of another seed input;
* the task's own edits: ``MUTATORS`` of ``task_mutators.py``, where the task gives one.

``GENERIC`` names the generic edits in use. The arena writes ``PARAMS``, ``PARAM_SPACE``,
``BASES``, ``ALPHABET`` and ``GENERIC`` for each task from its declaration (see
:class:`hyperagents.tasks.ArenaSpec`); the values below are an example.

``history`` is a list of ``{"input": str, "hard": bool}`` (whether the input broke a code
agent); with probability ``PARAMS["exploit"]`` an edit starts from a hard input rather than a
base. No labels are given: the engine labels every input with the task's oracle.
Standalone: standard library only, deterministic given ``seed``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

PARAMS = {
    "w_char": 1.0,
    "w_splice": 1.0,
    "max_edits": 2,
    "exploit": 0.3,
}

PARAM_SPACE = {
    "w_char": {"type": "float", "low": 0.0, "high": 4.0},
    "w_splice": {"type": "float", "low": 0.0, "high": 4.0},
    "max_edits": {"type": "int", "low": 1, "high": 4},
    "exploit": {"type": "float", "low": 0.0, "high": 1.0},
}

#: Inputs the edits start from.
BASES = ("example", "sample-input")
#: Characters the ``char`` edit inserts.
ALPHABET = ".,;:-_ \t\x00é"
#: The generic edits in use (before the task's own).
GENERIC = ("char", "splice")
#: Longest input proposed (characters).
MAX_CHARS = 400

Mutator = Callable[[str, random.Random], str]


def char_edit(text: str, rng: random.Random, alphabet: str) -> str:
    """``text`` with a character of ``alphabet`` inserted, or one removed, doubled or swapped
    with the next."""
    i = rng.randrange(len(text) + 1)
    kind = rng.randrange(4)
    if kind == 0 or not text:
        return text[:i] + rng.choice(alphabet) + text[i:]
    i = min(i, len(text) - 1)
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    j = min(i + 1, len(text) - 1)
    return text[:i] + text[j] + text[i] + text[j + 1 :]


def splice_edit(text: str, rng: random.Random, bases: Sequence[str]) -> str:
    """The head of ``text`` (to a random cut) joined to the tail of one of ``bases``."""
    other = rng.choice(list(bases))
    return text[: rng.randrange(len(text) + 1)] + other[rng.randrange(len(other) + 1) :]


def build_table(
    generic: Sequence[str],
    bases: Sequence[str],
    alphabet: str,
    task_mutators: Mapping[str, Mutator] | None = None,
) -> dict[str, Mutator]:
    """The edits by name: the ``generic`` ones in order, then ``task_mutators``."""
    edits: dict[str, Mutator] = {
        "char": lambda text, rng: char_edit(text, rng, alphabet or ALPHABET),
        "splice": lambda text, rng: splice_edit(text, rng, bases or BASES),
    }
    table = {name: edits[name] for name in generic if name in edits}
    for name, edit in (task_mutators or {}).items():
        if callable(edit):
            table.setdefault(str(name), edit)
    return table


def own_table() -> dict[str, Mutator]:
    """This agent's edits: ``GENERIC`` and ``task_mutators.py``'s ``MUTATORS`` (if present)."""
    try:
        import task_mutators  # type: ignore[import-not-found]
    except ImportError:
        found = None
    else:
        found = getattr(task_mutators, "MUTATORS", None)
    return build_table(GENERIC, BASES, ALPHABET, found if isinstance(found, dict) else None)


def mutate(
    text: str,
    rng: random.Random,
    params: dict[str, Any] | None = None,
    table: Mapping[str, Mutator] | None = None,
) -> str:
    """``text`` after one to ``max_edits`` seeded edits of kinds drawn by the weights."""
    p = PARAMS if params is None else params
    edits = own_table() if table is None else table
    names = list(edits)
    weights = [max(0.0, float(p.get(f"w_{name}", 1.0))) for name in names]
    if sum(weights) <= 0:
        weights = [1.0] * len(names)
    for _ in range(rng.randint(1, max(1, int(p.get("max_edits", 1))))):
        text = edits[rng.choices(names, weights)[0]](text, rng)
    return text[:MAX_CHARS]


def propose(history: list[Any], n: int, seed: int) -> list[str]:
    """``n`` distinct non-empty candidate inputs (fewer if they keep repeating),
    deterministic in ``seed``; inputs in ``history`` that broke a code agent are starting
    points."""
    rng = random.Random(seed)
    table = own_table()
    hard = [h["input"] for h in history if isinstance(h, dict) and h.get("hard")]
    hard = [h for h in hard if isinstance(h, str)]
    seen = {h.get("input") for h in history if isinstance(h, dict)}
    found: list[str] = []
    for _ in range(max(0, n) * 20):
        if len(found) >= n:
            break
        exploit = hard and rng.random() < float(PARAMS.get("exploit", 0.0))
        start = rng.choice(hard) if exploit else rng.choice(BASES)
        candidate = mutate(start, rng, PARAMS, table)
        if candidate and candidate not in seen:
            seen.add(candidate)
            found.append(candidate)
    return found
