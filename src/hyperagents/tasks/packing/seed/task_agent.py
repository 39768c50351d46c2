"""Seed task agent of the ``packing`` task: a parametrised constructor plus a local optimiser.

``solve({"n": 26, "seed": k})`` returns ``n`` circles ``[x, y, r]`` inside the unit square, not
overlapping, trying to maximise the sum of the radii. Steps:

1. **Construct** centres on a pattern (``"grid"``: ``rows`` rows of equal cells; ``"hex"``: rows
   shifted by half a cell every other row; ``"random"``: uniform), move them by ``jitter``
   (Gaussian, from the instance seed) and give every circle ``init_radius_scale`` times half the
   cell size.
2. **Optimise** positions and radii with Adam for ``steps`` steps, the step size decaying
   geometrically from ``learning_rate`` to ``learning_rate * lr_decay``, on
   ``-sum(r) + mu * (squared overlaps + squared wall violations)``, where the penalty weight ``mu``
   grows geometrically from ``penalty_start`` to ``penalty_start * penalty_growth``.
3. **Repair** strictly: clip the centres into the square, cap every radius by its walls, shrink
   every overlapping pair proportionally until none is left, subtract ``margin``, and check every
   constraint with the same floating-point expressions the scorer uses; the result is valid.

``restarts`` repeats 1-3 from fresh random jitter and keeps the best valid packing. Deterministic
given the inputs; numpy and the standard library only; reads ``PARAMS`` at call time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PARAMS = {
    "pattern": "grid",
    "rows": 5,
    "jitter": 0.01,
    "init_radius_scale": 0.5,
    "steps": 100,
    "learning_rate": 0.001,
    "lr_decay": 1.0,
    "penalty_start": 10.0,
    "penalty_growth": 10.0,
    "restarts": 1,
    "margin": 1e-9,
}

PARAM_SPACE = {
    "pattern": {"type": "choice", "choices": ["grid", "hex", "random"]},
    "rows": {"type": "int", "low": 2, "high": 9},
    "jitter": {"type": "float", "low": 0.0, "high": 0.2},
    "init_radius_scale": {"type": "float", "low": 0.05, "high": 1.2},
    "steps": {"type": "int", "low": 50, "high": 4000},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 0.05, "scale": "log"},
    "lr_decay": {"type": "float", "low": 1e-3, "high": 1.0, "scale": "log"},
    "penalty_start": {"type": "float", "low": 1.0, "high": 1e4, "scale": "log"},
    "penalty_growth": {"type": "float", "low": 1.0, "high": 1e4, "scale": "log"},
    "restarts": {"type": "int", "low": 1, "high": 4},
    "margin": {"type": "float", "low": 1e-12, "high": 1e-4, "scale": "log"},
}


def _initial(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres (n, 2) and radii (n,) of the starting configuration."""
    params: dict[str, Any] = PARAMS
    pattern = params["pattern"]
    rows = max(1, int(params["rows"]))
    cols = max(1, math.ceil(n / rows))
    centres: np.ndarray
    if pattern == "random":
        centres = rng.random((n, 2))
        cell = 1.0 / math.sqrt(n)
    else:
        shift = pattern == "hex"
        points = []
        for k in range(n):
            row, col = divmod(k, cols)
            offset = 0.25 if (shift and row % 2 == 1) else 0.0
            x = (col + 0.5 + offset) / (cols + (0.5 if shift else 0.0))
            y = (row + 0.5) / rows
            points.append((x, y))
        centres = np.array(points, dtype=float)
        cell = min(1.0 / (cols + (0.5 if shift else 0.0)), 1.0 / rows)
    centres = centres + float(params["jitter"]) * rng.normal(size=(n, 2))
    centres = np.clip(centres, 0.01, 0.99)
    radii = np.full(n, float(params["init_radius_scale"]) * cell / 2.0)
    return centres, radii


def _optimise(centres: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adam on the penalised objective; returns the (not yet strictly valid) configuration."""
    params: dict[str, Any] = PARAMS
    n = len(radii)
    steps = max(0, int(params["steps"]))
    lr0 = float(params["learning_rate"])
    decay = float(params["lr_decay"])
    mu0 = float(params["penalty_start"])
    growth = float(params["penalty_growth"])
    z = np.concatenate([centres.ravel(), radii])
    m = np.zeros_like(z)
    v = np.zeros_like(z)
    b1, b2, eps = 0.9, 0.999, 1e-12
    for t in range(1, steps + 1):
        frac = (t - 1) / max(1, steps - 1)
        mu = mu0 * growth**frac
        lr = lr0 * decay**frac
        p = z[: 2 * n].reshape(n, 2)
        r = z[2 * n :]
        diff = p[:, None, :] - p[None, :, :]
        dist = np.sqrt((diff**2).sum(-1) + 1e-18)
        over = r[:, None] + r[None, :] - dist
        np.fill_diagonal(over, 0.0)
        over = np.maximum(over, 0.0)
        low = np.maximum(r[:, None] - p, 0.0)
        high = np.maximum(p + r[:, None] - 1.0, 0.0)
        grad_r = -1.0 + 2.0 * mu * (over.sum(1) + low.sum(1) + high.sum(1))
        unit = diff / dist[:, :, None]
        grad_p = 2.0 * mu * (-(over[:, :, None] * unit).sum(1) - low + high)
        g = np.concatenate([grad_p.ravel(), grad_r])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        z = z - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        z[: 2 * n] = np.clip(z[: 2 * n], 0.0, 1.0)
        z[2 * n :] = np.maximum(z[2 * n :], 0.0)
    return z[: 2 * n].reshape(n, 2).copy(), z[2 * n :].copy()


def _valid(circles: list[list[float]]) -> list[int]:
    """Indices of circles that break a constraint (same expressions as the scorer)."""
    bad = set()
    for i, (x, y, r) in enumerate(circles):
        if not (r >= 0.0 and x - r >= 0.0 and x + r <= 1.0 and y - r >= 0.0 and y + r <= 1.0):
            bad.add(i)
    for i in range(len(circles)):
        xi, yi, ri = circles[i]
        for j in range(i + 1, len(circles)):
            xj, yj, rj = circles[j]
            if math.hypot(xi - xj, yi - yj) < ri + rj:
                bad.add(i)
                bad.add(j)
    return sorted(bad)


def _repair(centres: np.ndarray, radii: np.ndarray) -> list[list[float]]:
    """Shrink radii until the packing is strictly valid in floating point."""
    params: dict[str, Any] = PARAMS
    margin = float(params["margin"])
    p = np.clip(centres, 0.0, 1.0)
    r = np.maximum(radii, 0.0)
    r = np.minimum.reduce([r, p[:, 0], 1.0 - p[:, 0], p[:, 1], 1.0 - p[:, 1]])
    n = len(r)
    dist = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
    for _ in range(10 * n):
        total = r[:, None] + r[None, :]
        np.fill_diagonal(total, 0.0)
        ratio = np.where(total > dist, dist / np.where(total > 0, total, 1.0), 1.0)
        np.fill_diagonal(ratio, 1.0)
        worst = ratio.min(1)
        if worst.min() >= 1.0:
            break
        r = r * np.minimum(worst, 1.0)
    r = np.maximum(r - margin, 0.0)
    circles = [[float(x), float(y), float(rr)] for (x, y), rr in zip(p, r, strict=True)]
    for _ in range(100):
        bad = _valid(circles)
        if not bad:
            break
        for i in bad:
            circles[i][2] = max(0.0, circles[i][2] * (1.0 - 1e-9) - 1e-12)
    else:  # pragma: no cover - never seen; give up on the offending circles
        for i in _valid(circles):
            circles[i][2] = 0.0
    return circles


def solve(inputs: dict[str, Any]) -> list[list[float]]:
    """Return ``n`` valid circles ``[x, y, r]`` for ``inputs = {"n": n, "seed": k}``."""
    n = int(inputs.get("n", 26))
    rng = np.random.default_rng(int(inputs.get("seed", 0)))
    params: dict[str, Any] = PARAMS
    best: list[list[float]] = []
    best_sum = -1.0
    for _ in range(max(1, int(params["restarts"]))):
        centres, radii = _initial(n, rng)
        centres, radii = _optimise(centres, radii)
        circles = _repair(centres, radii)
        total = math.fsum(c[2] for c in circles)
        if total > best_sum:
            best, best_sum = circles, total
    return best
