"""Seed task agent of the ``snake`` task: a one-step greedy snake.

``solve(inputs)`` receives one game's settings (``width``, ``height``, ``seed``, ``max_steps``,
``starve_after``) and returns its moves as a string of ``U``/``D``/``L``/``R``. It plays the
game with its own copy of the rules (``snake_game.py``: food is a function of the seed and the
snake's body) and, at each step, takes the move whose score is highest::

    score = - food * distance to the food (Manhattan, over width + height)
            + space * share of the free cells reachable from the new head
            + tail * (1 if the tail is reachable from the new head)
            + straight * (1 if the move keeps the direction)
            - trap * (1 if fewer cells are reachable than the snake is long)

Moves into a wall or the body are never taken while another is possible. ``PARAMS`` holds the
weights (the seed: greedy towards the food, nothing else); ``PARAM_SPACE`` declares their
ranges for the meta agent that tunes them. Standalone: standard library only, deterministic.
"""

from __future__ import annotations

from typing import Any

from snake_game import MOVES, Game

PARAMS = {
    "food": 1.0,
    "space": 0.0,
    "tail": 0.0,
    "straight": 0.0,
    "trap": 0.0,
}

PARAM_SPACE = {
    "food": {"type": "float", "low": -1.0, "high": 5.0, "feature": "food"},
    "space": {"type": "float", "low": -1.0, "high": 5.0, "feature": "space"},
    "tail": {"type": "float", "low": -1.0, "high": 5.0, "feature": "tail"},
    "straight": {"type": "float", "low": -1.0, "high": 1.0, "feature": "direction"},
    "trap": {"type": "float", "low": -1.0, "high": 10.0, "feature": "space"},
}


def _flood(
    game: Game,
    head: tuple[int, int],
    blocked: set[tuple[int, int]],
    goals: set[tuple[int, int]] | None = None,
) -> tuple[int, bool]:
    """A flood fill from ``head`` over the free cells (``blocked`` excluded): how many it
    reaches, and whether it touches a cell of ``goals`` (it stops there when it does)."""
    seen = {head}
    todo = [head]
    while todo:
        x, y = todo.pop()
        for dx, dy in MOVES.values():
            cell = (x + dx, y + dy)
            if goals is not None and cell in goals:
                return len(seen), True
            if (
                cell not in seen
                and cell not in blocked
                and 0 <= cell[0] < game.width
                and 0 <= cell[1] < game.height
            ):
                seen.add(cell)
                todo.append(cell)
    return len(seen), False


def _value(game: Game, move: str, p: dict[str, Any]) -> float | None:
    """The score of ``move`` (None: it kills the snake)."""
    dx, dy = MOVES[move]
    x, y = game.body[0]
    head = (x + dx, y + dy)
    if not (0 <= head[0] < game.width and 0 <= head[1] < game.height):
        return None
    grows = head == game.food
    tail = game.body[-1]
    blocked = set(game.cells)
    if not grows:
        blocked.discard(tail)
    if head in blocked:
        return None
    value = 0.0
    if game.food is not None:
        distance = abs(head[0] - game.food[0]) + abs(head[1] - game.food[1])
        value -= p["food"] * distance / (game.width + game.height)
    if p["space"] or p["trap"] or p["tail"]:
        reached, _ = _flood(game, head, blocked)
        free = game.width * game.height - len(blocked)
        value += p["space"] * reached / max(free, 1)
        if reached < len(game.body):
            value -= p["trap"]
        if p["tail"]:
            near = {(tail[0] + ddx, tail[1] + ddy) for ddx, ddy in MOVES.values()}
            seen_tail = head in near or _flood(game, head, blocked, near)[1]
            value += p["tail"] * (1.0 if seen_tail else 0.0)
    if move == game.direction:
        value += p["straight"]
    return value


def choose(game: Game) -> str:
    """The move with the highest score (the first of ``U D L R`` on a tie; ``direction`` when
    every move kills)."""
    best: str = str(game.direction)
    best_value: float | None = None
    for move in MOVES:
        value = _value(game, move, PARAMS)
        if value is not None and (best_value is None or value > best_value):
            best, best_value = move, value
    return best


def solve(inputs: dict[str, Any]) -> str:
    """The moves of one game, from its start to its end."""
    game = Game(
        int(inputs["width"]),
        int(inputs["height"]),
        str(inputs["seed"]),
        int(inputs["max_steps"]),
        int(inputs["starve_after"]),
    )
    moves: list[str] = []
    while not game.over:
        move = choose(game)
        moves.append(move)
        game.step(move)
    return "".join(moves)
