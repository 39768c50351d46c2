"""The rules of the ``snake`` task's game: deterministic from a game's settings and seed.

Standalone (standard library only) on purpose: the trusted scorer plays every game with this
module, and the seed task agent carries a verbatim copy of it (``snake_game.py``) to plan its
moves with the same rules. The agent's copy is the agent's to change; the scorer's never is.

The game
--------
A ``width`` x ``height`` board (x to the right, y downwards). The snake starts with three
cells in the middle row, its head at ``(width // 2, height // 2)`` heading right (``R``), its
body to the left. Each step it moves one cell: ``U`` (y - 1), ``D`` (y + 1), ``L`` (x - 1) or
``R`` (x + 1). It dies on leaving the board or entering its body (the cell its tail leaves in
the same step is free, unless it grows; turning back onto its neck is entering its body). On
the food cell it grows by one and new food appears on a free cell:
``random.Random(f"snake:{seed}:{k}").choice(free)`` for the ``k``-th food (``k`` from 0) over
the free cells in row-major order, so food is a function of the seed and the snake's body.

A game ends when the snake dies, fills the board (no free cell for food: a win), has made
``max_steps`` moves, has gone ``starve_after`` moves without eating, or its moves run out.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator

__all__ = ["MOVES", "Game", "play", "steps"]

#: The moves and their ``(dx, dy)``.
MOVES = {"U": (0, -1), "D": (0, 1), "L": (-1, 0), "R": (1, 0)}


class Game:
    """One game in progress (see the module docstring).

    Args:
        width: Board width (at least 4).
        height: Board height (at least 4).
        seed: The game's seed (food placement).
        max_steps: Moves after which the game ends.
        starve_after: Moves without food after which the game ends.

    Raises:
        ValueError: A board smaller than 4 x 4 or a limit below 1.
    """

    def __init__(
        self, width: int, height: int, seed: str, max_steps: int, starve_after: int
    ) -> None:
        if width < 4 or height < 4 or max_steps < 1 or starve_after < 1:
            raise ValueError("the board must be at least 4 x 4 and the limits at least 1")
        self.width, self.height, self.seed = width, height, seed
        self.max_steps, self.starve_after = max_steps, starve_after
        head = (width // 2, height // 2)
        #: The snake's cells, head first.
        self.body: deque[tuple[int, int]] = deque((head[0] - i, head[1]) for i in range(3))
        self.cells: set[tuple[int, int]] = set(self.body)
        self.direction = "R"
        self.eaten = 0
        self.steps = 0
        self.since_food = 0
        self.dead = False
        #: Why the game ended ("" while it goes on).
        self.ended = ""
        self.food: tuple[int, int] | None = self._place_food()

    @property
    def capacity(self) -> int:
        """The most food a game can hold: the board less the starting snake."""
        return self.width * self.height - 3

    @property
    def over(self) -> bool:
        """Whether the game has ended."""
        return bool(self.ended)

    def _place_food(self) -> tuple[int, int] | None:
        free = [
            (x, y)
            for y in range(self.height)
            for x in range(self.width)
            if (x, y) not in self.cells
        ]
        if not free:
            return None
        return random.Random(f"snake:{self.seed}:{self.eaten}").choice(free)

    def state(self) -> dict[str, object]:
        """The game as plain data (what a task agent sees at the start)."""
        return {
            "width": self.width,
            "height": self.height,
            "snake": [list(cell) for cell in self.body],
            "direction": self.direction,
            "food": None if self.food is None else list(self.food),
            "eaten": self.eaten,
            "steps": self.steps,
        }

    def step(self, move: str) -> None:
        """Make one move (``U``, ``D``, ``L`` or ``R``); the game must not be over.

        Raises:
            ValueError: An unknown move, or the game is over.
        """
        if self.ended:
            raise ValueError("the game is over")
        dx, dy = MOVES[move]
        x, y = self.body[0]
        head = (x + dx, y + dy)
        self.steps += 1
        self.direction = move
        grows = head == self.food
        if not grows:
            self.cells.discard(self.body.pop())
        if not (0 <= head[0] < self.width and 0 <= head[1] < self.height):
            self.dead, self.ended = True, "hit the wall"
        elif head in self.cells:
            self.dead, self.ended = True, "ran into itself"
        if self.dead:
            return
        self.body.appendleft(head)
        self.cells.add(head)
        if grows:
            self.eaten += 1
            self.since_food = 0
            self.food = self._place_food()
            if self.food is None:
                self.ended = "filled the board"
                return
        else:
            self.since_food += 1
        if self.steps >= self.max_steps:
            self.ended = f"reached the limit of {self.max_steps} moves"
        elif self.since_food >= self.starve_after:
            self.ended = f"starved ({self.starve_after} moves without food)"


def steps(game: Game, moves: Iterable[str]) -> Iterator[Game]:
    """Make ``moves`` on ``game`` one by one, yielding it after each, until it ends (moves past
    its end are ignored); a game whose moves run out before it ends is ended then (and yielded
    once more).

    Raises:
        ValueError: An unknown move.
    """
    for move in moves:
        if game.over:
            return
        game.step(move)
        yield game
    if not game.over:
        game.ended = f"moves ran out after {game.steps}"
        yield game


def play(game: Game, moves: Iterable[str]) -> Game:
    """Play ``moves`` on ``game`` to its end (see :func:`steps`); returns ``game``.

    Raises:
        ValueError: An unknown move.
    """
    for _ in steps(game, moves):
        pass
    return game
