"""The ``snake`` task: play seeded games of snake; scored by the food eaten.

Each instance is one game; ``inputs`` are its settings: ``width``, ``height``, ``seed`` (a
string), ``max_steps`` and ``starve_after`` (see :mod:`hyperagents.tasks.snake._game` for the
rules). The task agent's ``solve(inputs)`` returns the game's moves, a string of
``U``/``D``/``L``/``R`` (or a list of those letters), at most ``max_steps`` of them.

Scoring (trusted, in the engine): the scorer plays the game itself from the instance's own
settings with the returned moves, so the score is a function of the moves alone and the agent
cannot claim food it did not eat. A game's score is ``eaten / capacity`` (``capacity`` is the
board less the starting snake: filling the board scores 1), times ``1 - DEATH_PENALTY`` when
the snake died. A malformed output (not moves, or more than ``max_steps`` of them) scores 0
with the reason. A split's score is the mean over its games. Train feedback tells how the game
went (food eaten, moves, how it ended).

Design: why moves, and what the agent knows
-------------------------------------------
The task protocol calls the task agent once per instance, in the sandbox, and scores what it
returned; the engine does not call agent code step by step. So the agent returns a whole game's
moves, and food placement must be something it can know: it is published (a function of the
game's seed and the snake's body), and the seed agent carries a copy of the rules to plan with.
The game is therefore one of perfect information: an agent may look ahead at where food will
appear. That is the trade-off for honest, deterministic scoring without a step-by-step channel
into the sandbox; an agent that mis-simulates the rules only hurts itself (its moves are
replayed by the scorer's rules). Train, val, test and the holdout draws use disjoint game seeds
(``"<task seed>-<split stream>-<index>"``).

The seed agent is a one-step greedy snake with weights for food distance, reachable space,
tail reachability, going straight and a trap penalty (``PARAMS``), only the food weight on.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable
from typing import Any, ClassVar

from hyperagents.exceptions import TaskError
from hyperagents.program import Program
from hyperagents.tasks._base import Instance, Score
from hyperagents.tasks._generated import GeneratedTask
from hyperagents.tasks._seeds import seed_files
from hyperagents.tasks.snake._game import MOVES, Game, play
from hyperagents.tasks.snake._view import render_frame, replay_frames

__all__ = ["DEATH_PENALTY", "MOVES", "Game", "SnakeTask", "play", "render_frame", "replay_frames"]

#: The share of a game's score a death costs.
DEATH_PENALTY = 0.5


class SnakeTask(GeneratedTask):
    """Seeded games of snake, scored by food eaten (see the module docstring).

    Options: ``seed`` and the split sizes (see :class:`~hyperagents.tasks.SeededTask`).
    """

    name: ClassVar[str] = "snake"
    description: ClassVar[str] = (
        "Play seeded games of snake on an 8 x 8 board: return each game's moves; scored by "
        "the food eaten (a share of the board), halved for a death."
    )
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    instance_timeout: ClassVar[float] = 10.0
    default_sizes: ClassVar[tuple[int, int, int] | None] = (12, 12, 12)
    max_size: ClassVar[int | None] = 1000
    target_score: ClassVar[float | None] = 1.0
    #: The board and the limits of every game.
    width: ClassVar[int] = 8
    height: ClassVar[int] = 8
    max_steps: ClassVar[int] = 1000
    starve_after: ClassVar[int] = 128

    def generate(self, split_index: int, n: int) -> Iterable[tuple[Any, Any]]:
        """The settings of ``n`` games; their seeds are unique to the split's stream."""
        for i in range(n):
            inputs = {
                "width": self.width,
                "height": self.height,
                "seed": f"{self.seed}-{split_index}-{i}",
                "max_steps": self.max_steps,
                "starve_after": self.starve_after,
            }
            yield inputs, None

    def new_game(self, instance: Instance) -> Game:
        """The game of ``instance``, at its start (from the instance's own settings)."""
        s = instance.inputs
        return Game(s["width"], s["height"], s["seed"], s["max_steps"], s["starve_after"])

    def moves_of(self, instance: Instance, output: Any) -> list[str]:
        """The moves an output holds.

        Raises:
            TaskError: The output is not moves, or has more than ``max_steps`` of them.
        """
        limit = int(instance.inputs["max_steps"])
        if isinstance(output, list) and len(output) <= limit:
            moves = output
        elif isinstance(output, str) and len(output) <= limit:
            moves = list(output)
        else:
            shown = repr(output)[:60]
            raise TaskError(f"expected at most {limit} moves (a string of U/D/L/R), got {shown}")
        for move in moves:
            if not (isinstance(move, str) and move in MOVES):
                raise TaskError(f"{repr(move)[:20]} is not a move (U, D, L or R)")
        return moves

    def score(self, instance: Instance, output: Any) -> Score:
        """Replay the moves on the game; score its food eaten, halved for a death."""
        try:
            moves = self.moves_of(instance, output)
        except TaskError as exc:
            return Score(0.0, f"invalid output: {exc}")
        game = play(self.new_game(instance), moves)
        value = game.eaten / game.capacity
        if game.dead:
            value *= 1.0 - DEATH_PENALTY
        return Score(
            value,
            f"ate {game.eaten}/{game.capacity} in {game.steps} moves; {game.ended}"
            + (f" (death: score x{1.0 - DEATH_PENALTY:g})" if game.dead else ""),
        )

    def seed_program(self) -> Program:
        """The seed hyperagent: the greedy snake, its copy of the rules and the offline meta
        agent.

        Raises:
            TaskError: A seed file is missing.
        """
        files = seed_files("hyperagents.tasks.snake", "seed/task_agent.py")
        try:
            rules = importlib.resources.files(__name__).joinpath("_game.py").read_text("utf-8")
        except OSError as exc:  # pragma: no cover - broken installation
            raise TaskError(f"the snake rules are missing: {exc}") from exc
        return Program({**files, "snake_game.py": rules})
