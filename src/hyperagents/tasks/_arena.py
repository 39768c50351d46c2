"""What a task declares to take part in an arena (:mod:`hyperagents.arena`).

An *arena-capable* task classifies one string: each instance's ``inputs`` is ``{key: str}``,
its ``target`` is ``{"valid": bool, "reason": str}`` and :meth:`~hyperagents.tasks.Task.score`
scores a bool output against it. The task opts in with two methods:

* :meth:`Task.arena() <hyperagents.tasks.Task.arena>` returns an :class:`ArenaSpec`: the key of
  the input, the seed material the test agents mutate, and optionally the source of its own
  trusted mutators, which generic string mutators the seed test agent uses and the characters
  it inserts;
* :meth:`Task.oracle() <hyperagents.tasks.Task.oracle>` is the trusted oracle: the
  :class:`Verdict` on any new input, run in the engine (never in the sandbox, never by an agent).

:meth:`Task.arena_spec() <hyperagents.tasks.Task.arena_spec>` checks the declaration and fills
its defaults; the arena calls it, and refuses a task without one with a
:class:`~hyperagents.exceptions.ConfigError`.

A task's mutators module (:attr:`ArenaSpec.mutators`) is standalone Python (standard library
only) defining ``MUTATORS``, an ordered ``dict`` of name → ``mutate(text, rng) -> str`` (``rng``
a :class:`random.Random`). It becomes the seed test agent's ``task_mutators.py`` (so test agents
run it in the sandbox), and the engine runs it as trusted code to draw the held-out
adversarial suite.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from hyperagents.exceptions import ConfigError

__all__ = [
    "DEFAULT_ALPHABET",
    "GENERIC_MUTATORS",
    "MAX_SEEDS",
    "MAX_SEED_CHARS",
    "ArenaSpec",
    "Verdict",
    "check_arena_spec",
    "default_alphabet",
]

#: The generic string mutators of the seed test agent: ``char`` (a character inserted,
#: removed, doubled or two swapped) and ``splice`` (the head of the input joined to the tail of
#: another seed input).
GENERIC_MUTATORS: tuple[str, ...] = ("char", "splice")

#: Characters the ``char`` mutator inserts besides the seeds' own: ASCII punctuation, spaces
#: and line breaks, control characters, a few letters and digits and non-ASCII ones.
DEFAULT_ALPHABET = string.punctuation + " \t\n\x00\x7f" + "aZ09" + "éü€ß例д\u200b\u200d😀١"

#: The most seed inputs a test agent is given (the first ones).
MAX_SEEDS = 64
#: The longest seed input kept.
MAX_SEED_CHARS = 400


@dataclass(frozen=True)
class Verdict:
    """The trusted oracle's label of one input.

    Attributes:
        valid: Whether the input is valid (the output a right answer gives).
        reason: Why it is not (empty when valid), shown in train feedback.
    """

    valid: bool
    reason: str = ""


@dataclass(frozen=True)
class ArenaSpec:
    """A task's arena declaration (see the module docstring).

    Attributes:
        input_key: The key of the one string input: instances' ``inputs`` are
            ``{input_key: str}``.
        seeds: Inputs the test agents start their mutations from (empty: the train split's
            valid inputs); the first :data:`MAX_SEEDS` of at most :data:`MAX_SEED_CHARS`
            characters are used.
        mutators: Source of the task's own mutators module (empty: none); see the module
            docstring.
        generic: Which of :data:`GENERIC_MUTATORS` the seed test agent also uses, in order
            (before the task's own).
        alphabet: Characters the ``char`` mutator inserts (empty: the seeds' own characters
            and :data:`DEFAULT_ALPHABET`).
        rule_features: Source of the feature library of the ``arena`` meta agent's rule
            synthesis: functions only (no ``__future__`` import), standard library only,
            defining ``arena_feature(name, arg, text) -> bool``; written into a code agent's
            task agent with its first rule (empty: the arena's generic string features).
        rule_candidates: Source of a module defining ``arena_candidates(texts)``, the
            ``(name, arg)`` features worth trying on inputs a code agent got wrong, run by the
            meta agent (given with ``rule_features``, or both empty).
    """

    input_key: str
    seeds: tuple[str, ...] = ()
    mutators: str = ""
    generic: tuple[str, ...] = GENERIC_MUTATORS
    alphabet: str = ""
    rule_features: str = ""
    rule_candidates: str = ""


def default_alphabet(seeds: tuple[str, ...]) -> str:
    """The seeds' own characters (sorted) and then :data:`DEFAULT_ALPHABET`'s others."""
    own = sorted({ch for seed in seeds for ch in seed})
    return "".join(own) + "".join(ch for ch in DEFAULT_ALPHABET if ch not in own)


def check_arena_spec(spec: object, *, task: str) -> ArenaSpec:
    """``spec`` if it is a well-formed :class:`ArenaSpec` of the task named ``task``.

    Raises:
        ConfigError: It is not, with what is wrong.
    """
    where = f"task {task!r}: arena()"
    if not isinstance(spec, ArenaSpec):
        raise ConfigError(f"{where} must return an ArenaSpec or None, not {spec!r}")
    if not isinstance(spec.input_key, str) or not spec.input_key:
        raise ConfigError(f"{where}: input_key must be a non-empty string")
    if not all(isinstance(seed, str) and seed for seed in spec.seeds):
        raise ConfigError(f"{where}: seeds must be non-empty strings")
    unknown = [name for name in spec.generic if name not in GENERIC_MUTATORS]
    if unknown:
        raise ConfigError(f"{where}: unknown generic mutators {unknown} ({GENERIC_MUTATORS})")
    if not isinstance(spec.mutators, str) or not isinstance(spec.alphabet, str):
        raise ConfigError(f"{where}: mutators and alphabet must be strings")
    if bool(spec.rule_features) != bool(spec.rule_candidates):
        raise ConfigError(f"{where}: give rule_features and rule_candidates together, or neither")
    if not spec.generic and not spec.mutators:
        raise ConfigError(f"{where}: no mutators (neither generic nor the task's own)")
    return spec
