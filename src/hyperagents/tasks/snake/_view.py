"""Frames of a snake game for the terminal (rich): the board, the snake, the food and a status
line; used by ``hyperagents play`` to replay a variant's game.

The frames come from the trusted rules (:mod:`hyperagents.tasks.snake._game`) replaying the
moves an agent returned: nothing of the agent runs here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from hyperagents.tasks.snake._game import Game, steps

__all__ = ["render_frame", "replay_frames"]

_HEAD, _BODY, _FOOD, _EMPTY = "@", "o", "*", "."


def render_frame(game: Game, *, title: str = "") -> Panel:
    """The board of ``game`` as it is now, with its food eaten, moves and how it ended."""
    board = Text()
    head = game.body[0] if game.body else None
    for y in range(game.height):
        for x in range(game.width):
            cell = (x, y)
            if cell == head:
                board.append(_HEAD + " ", style="bold red" if game.dead else "bold green")
            elif cell in game.cells:
                board.append(_BODY + " ", style="green")
            elif cell == game.food:
                board.append(_FOOD + " ", style="bold yellow")
            else:
                board.append(_EMPTY + " ", style="dim")
        if y < game.height - 1:
            board.append("\n")
    status = Text(f"food {game.eaten}/{game.capacity}  moves {game.steps}  length {len(game.body)}")
    if game.ended:
        status.append(f"  — {game.ended}", style="bold red" if game.dead else "bold")
    return Panel(Group(board, status), title=title or None, expand=False)


def replay_frames(game: Game, moves: Iterable[str], *, title: str = "") -> Iterator[Panel]:
    """The frames of ``game`` from its start, one after each move, until it ends (a game whose
    moves run out ends then, as the scorer ends it).

    Raises:
        ValueError: An unknown move.
    """
    yield render_frame(game, title=title)
    for _ in steps(game, moves):
        yield render_frame(game, title=title)
