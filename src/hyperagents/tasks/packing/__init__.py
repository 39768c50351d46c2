"""The ``packing`` task: 26 circles in the unit square, maximising the sum of their radii.

Every instance asks for the same problem, ``inputs = {"n": 26, "seed": k}``; the seed is the
agent's source of randomness, so different instances are genuinely different runs of a
randomised solver. Instance seeds are ``10000 * task_seed + offset + i`` with offset 0 for
train, 1000 for val and 2000 for test (distinct across splits); ids are ``"train-0"`` and so on.

Output: a list of exactly 26 ``[x, y, r]`` triples (JSON numbers; booleans are not numbers).
Validity is checked strictly in IEEE double precision, with no tolerance in the agent's favour:

* every value is finite and ``r >= 0`` (a zero radius is allowed and adds nothing);
* every circle lies in the square: ``x - r >= 0``, ``x + r <= 1``, ``y - r >= 0``,
  ``y + r <= 1``;
* no two circles overlap: ``math.hypot(xi - xj, yi - yj) >= ri + rj`` (touching is allowed).

Any violation scores 0 with feedback naming the offending circle(s). A valid packing scores the
sum of its radii (``math.fsum``). ``score_range`` is ``(0, sqrt(26 / pi))`` ≈ (0, 2.877): since the
circles are disjoint inside the unit square, ``sum(pi r^2) <= 1``, and by Cauchy-Schwarz
``sum(r) <= sqrt(n * sum(r^2)) <= sqrt(n / pi)``. The best published packing reaches ≈ 2.635.

With the defaults the seed task agent scores ≈ 2.36-2.43 per instance (mean ≈ 2.40) in ≈ 10 ms;
tuning its declared parameters (more steps, a decaying step size, a growing penalty, restarts)
reaches ≈ 2.60 in 0.1 s and ≈ 2.61-2.63 in about a second per instance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from hyperagents.program import Program
from hyperagents.tasks._base import Instance, Score, Split
from hyperagents.tasks._generated import SeededTask
from hyperagents.tasks._seeds import seed_files

__all__ = ["BEST_KNOWN", "N_CIRCLES", "PackingTask", "check_packing"]

#: Number of circles.
N_CIRCLES = 26
#: Best published sum of radii for 26 circles (approximate).
BEST_KNOWN = 2.635

_SPLIT_OFFSET = {Split.TRAIN: 0, Split.VAL: 1000, Split.TEST: 2000}
_MAX_PER_SPLIT = 1000


def _fmt(value: float) -> str:
    return repr(float(value))


def check_packing(output: Any, n: int = N_CIRCLES) -> tuple[list[tuple[float, float, float]], str]:
    """Validate a packing strictly.

    Args:
        output: The agent's output after a JSON round trip.
        n: The required number of circles.

    Returns:
        ``(circles, "")`` when valid, else ``([], reason)`` naming the first offending circle(s)
        (and how many violations there are in all, for overlaps and walls).
    """
    circles, reason = _parse_circles(output, n)
    reason = reason or _wall_problem(circles) or _overlap_problem(circles)
    return ([], reason) if reason else (circles, "")


def _parse_circles(output: Any, n: int) -> tuple[list[tuple[float, float, float]], str]:
    """``n`` circles read from ``output``, or ``([], why not)``."""
    if not isinstance(output, (list, tuple)):
        return [], (
            f"expected a list of {n} [x, y, r] triples, got {type(output).__name__}"
            + ("" if output is None else f" {repr(output)[:60]}")
        )
    if len(output) != n:
        return [], f"expected exactly {n} circles, got {len(output)}"
    circles: list[tuple[float, float, float]] = []
    for i, item in enumerate(output):
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            return [], f"circle {i}: expected [x, y, r], got {repr(item)[:60]}"
        values = []
        for v in item:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return [], f"circle {i}: {v!r} is not a number"
            f = float(v)
            if not math.isfinite(f):
                return [], f"circle {i}: {v!r} is not finite"
            values.append(f)
        x, y, r = values
        if r < 0.0:
            return [], f"circle {i}: negative radius {_fmt(r)}"
        circles.append((x, y, r))
    return circles, ""


def _wall_problem(circles: list[tuple[float, float, float]]) -> str:
    """The first circle outside the unit square and how many are ("": none)."""
    walls = []
    for i, (x, y, r) in enumerate(circles):
        if x - r < 0.0:
            walls.append(f"circle {i} crosses the left side (x - r = {_fmt(x - r)} < 0)")
        elif x + r > 1.0:
            walls.append(f"circle {i} crosses the right side (x + r = {_fmt(x + r)} > 1)")
        elif y - r < 0.0:
            walls.append(f"circle {i} crosses the bottom side (y - r = {_fmt(y - r)} < 0)")
        elif y + r > 1.0:
            walls.append(f"circle {i} crosses the top side (y + r = {_fmt(y + r)} > 1)")
    if not walls:
        return ""
    more = f" ({len(walls)} circles outside the square in all)" if len(walls) > 1 else ""
    return f"{walls[0]}{more}"


def _overlap_problem(circles: list[tuple[float, float, float]]) -> str:
    """The first overlapping pair and how many pairs overlap ("": none)."""
    overlaps = []
    for i, (xi, yi, ri) in enumerate(circles):
        for j in range(i + 1, len(circles)):
            xj, yj, rj = circles[j]
            d = math.hypot(xi - xj, yi - yj)
            if d < ri + rj:
                overlaps.append((i, j, d, ri + rj))
    if not overlaps:
        return ""
    i, j, d, s = overlaps[0]
    more = f" ({len(overlaps)} overlapping pairs in all)" if len(overlaps) > 1 else ""
    return (
        f"circles {i} and {j} overlap: distance {_fmt(d)} < r{i} + r{j} = {_fmt(s)} "
        f"(by {s - d:.3g}){more}"
    )


class PackingTask(SeededTask):
    """Circle packing: 26 circles in the unit square (see the module docstring).

    Options: ``seed`` (selects the instance seeds) and the split sizes, each in 1..1000 (see
    :class:`~hyperagents.tasks.SeededTask`).
    """

    name: ClassVar[str] = "packing"
    description: ClassVar[str] = (
        "Place 26 non-overlapping circles in the unit square maximising the sum of radii "
        "(strict validity; best published ≈ 2.635)."
    )
    score_range: ClassVar[tuple[float, float]] = (0.0, math.sqrt(N_CIRCLES / math.pi))
    instance_timeout: ClassVar[float] = 20.0
    sandbox_preload: ClassVar[tuple[str, ...]] = ("numpy",)
    default_sizes: ClassVar[tuple[int, int, int] | None] = (4, 3, 3)
    max_size: ClassVar[int | None] = _MAX_PER_SPLIT

    def instances(self, split: Split) -> Sequence[Instance]:
        """Return the instances of ``split``."""
        split = Split(split)
        base = 10000 * self.seed + _SPLIT_OFFSET[split]
        return tuple(
            Instance(id=f"{split.value}-{i}", inputs={"n": N_CIRCLES, "seed": base + i})
            for i in range(self._sizes[split])
        )

    def score(self, instance: Instance, output: Any) -> Score:
        """Sum of radii of a strictly valid packing, else 0 with the reason."""
        circles, reason = check_packing(output, N_CIRCLES)
        if reason:
            return Score(0.0, f"invalid packing: {reason}")
        total = min(math.fsum(c[2] for c in circles), self.score_range[1])
        return Score(
            total,
            f"valid packing: sum of radii {total:.6f} "
            f"({total / BEST_KNOWN:.1%} of the best known ≈ {BEST_KNOWN})",
        )

    def seed_program(self) -> Program:
        """The seed hyperagent: constructor + optimiser task agent and the offline meta agent."""
        return Program(seed_files("hyperagents.tasks.packing", "seed/task_agent.py"))
