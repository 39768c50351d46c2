"""The seeded addition problems behind the ``arith`` task.

A problem of length ``n`` adds two numbers of exactly ``n`` digits (no leading zero; length 1
draws from 1..9, so that no sum equals an operand: 81 problems). Each stream is its own
``random.Random`` seeded by a string of the task's seed and the stream's name, so changing one
split's size never changes another split.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["Problem", "draw", "problems_of_lengths", "spread_lengths"]

#: A problem: the two operands, as digit strings (most significant digit first).
Problem = tuple[str, str]


def stream(seed: int, name: str | int) -> random.Random:
    """The generator of one stream of a task seed (train 0, val 1, test 2, examples, ...)."""
    return random.Random(f"arith:{seed}:{name}")


def draw(rng: random.Random, n: int) -> Problem:
    """Two random numbers of exactly ``n`` digits (1..9 for ``n = 1``)."""
    low = 10 ** (n - 1)
    return str(rng.randint(low, 10**n - 1)), str(rng.randint(low, 10**n - 1))


def spread_lengths(count: int, shortest: int, longest: int) -> Iterator[int]:
    """``count`` lengths cycling through ``shortest..longest``, so each is as common as the
    others (the first ones, by one, when ``count`` does not divide evenly)."""
    span = longest - shortest + 1
    for index in range(count):
        yield shortest + index % span


def problems_of_lengths(rng: random.Random, lengths: Iterator[int]) -> Iterator[Problem]:
    """One distinct problem per length (a problem drawn before is drawn again; a length whose
    problems are all taken already gives the next longer length's)."""
    seen: set[Problem] = set()
    for length in lengths:
        n = length
        while True:
            problem = next((p for p in (draw(rng, n) for _ in range(50)) if p not in seen), None)
            if problem is not None:
                break
            n += 1
        seen.add(problem)
        yield problem
