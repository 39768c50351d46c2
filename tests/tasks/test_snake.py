"""The ``snake`` task: its rules, deterministic scoring that the agent's output cannot forge, the
seed agent, a hostile agent as the candidate's failure, and the frames of the viewer."""

from __future__ import annotations

import importlib.resources
import io
import json
import sys
from types import ModuleType
from typing import Any

import pytest
from rich.console import Console

from hyperagents.evaluation import evaluate_stage
from hyperagents.sandbox import Limits, get_sandbox
from hyperagents.tasks import Split, load_task
from hyperagents.tasks.snake import DEATH_PENALTY, Game, SnakeTask, play, replay_frames

from task_checks import (
    assert_registered,
    assert_seed_space_valid,
    assert_splits_disjoint_and_deterministic,
    load_agent,
    mean_score,
    seed_source,
)

SEED_SOURCE = seed_source(SnakeTask)


@pytest.fixture(scope="module")
def task() -> SnakeTask:
    return SnakeTask()


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The seed agent, importing its own copy of the rules (as it does in the sandbox)."""
    rules = SnakeTask().seed_program().text("snake_game.py")
    monkeypatch.setitem(sys.modules, "snake_game", load_agent(rules, "snake_game"))
    return load_agent(SEED_SOURCE, "snake_seed_agent")


def test_registered_with_disjoint_deterministic_game_seeds(task: SnakeTask) -> None:
    assert_registered(task, (12, 12, 12))
    assert_splits_disjoint_and_deterministic(task, SnakeTask(seed=0), SnakeTask(seed=1))
    seeds = {i.inputs["seed"] for s in Split for i in task.instances(s)}
    seeds |= {i.inputs["seed"] for i in task.holdout_instances(0)}
    assert len(seeds) == 36 + 12  # train, val, test and the holdout draw share no game


def test_the_agents_copy_of_the_rules_is_the_scorers() -> None:
    package = importlib.resources.files("hyperagents.tasks.snake")
    assert SnakeTask().seed_program().text("snake_game.py") == package.joinpath(
        "_game.py"
    ).read_text("utf-8")


def test_rules_walls_body_food_and_the_end() -> None:
    game = Game(8, 8, "x", 1000, 128)
    assert list(game.body) == [(4, 4), (3, 4), (2, 4)] and game.food not in game.cells
    play(game, "RRRR")  # the head leaves the board on the fourth move right
    assert game.dead and game.ended == "hit the wall" and game.steps == 4
    turned_back = play(Game(8, 8, "x", 1000, 128), "L")
    assert turned_back.dead and turned_back.ended == "ran into itself"
    ran_out = play(Game(8, 8, "x", 1000, 128), "UU")
    assert not ran_out.dead and ran_out.ended == "moves ran out after 2"
    starved = play(Game(8, 8, "x", 1000, 4), "URDLURDL")
    assert starved.steps == 4 and starved.ended.startswith("starved")
    limited = play(Game(8, 8, "x", 3, 128), "UUUUU")
    assert limited.steps == 3 and not limited.dead


def test_food_is_a_function_of_the_seed_and_the_body(agent: ModuleType) -> None:
    a, b = Game(8, 8, "s1", 1000, 128), Game(8, 8, "s1", 1000, 128)
    assert a.food == b.food
    settings = {"width": 8, "height": 8, "seed": "s1", "max_steps": 1000, "starve_after": 128}
    moves = agent.solve(settings)
    play(a, moves)
    play(b, moves)
    assert (a.eaten, a.steps, a.ended, list(a.body)) == (b.eaten, b.steps, b.ended, list(b.body))
    assert a.eaten > 0
    foods = {Game(8, 8, f"s{k}", 1000, 128).food for k in range(20)}
    assert len(foods) > 5  # the seed places it


def test_score_replays_the_moves_and_halves_a_death(task: SnakeTask, agent: ModuleType) -> None:
    inst = task.instances(Split.TRAIN)[0]
    moves = agent.solve(inst.inputs)
    game = play(task.new_game(inst), moves)
    expected = game.eaten / 61 * (1 - DEATH_PENALTY if game.dead else 1)
    verdict = task.score(inst, moves)
    assert verdict.value == pytest.approx(expected) and f"ate {game.eaten}/61" in verdict.feedback
    assert task.score(inst, list(moves)).value == verdict.value  # a list of letters too
    assert task.score(inst, moves).value == verdict.value  # deterministic
    # Stopping just before the fatal move keeps the food and loses the penalty.
    if game.dead:
        alive = task.score(inst, moves[: game.steps - 1])
        assert alive.value == pytest.approx(game.eaten / 61) and "ran out" in alive.feedback


def test_the_output_cannot_forge_the_score(task: SnakeTask, agent: ModuleType) -> None:
    inst = task.instances(Split.TRAIN)[1]
    honest = task.score(inst, agent.solve(inst.inputs)).value
    forged: list[Any] = [
        {"score": 1.0, "eaten": 61},
        1.0,
        None,
        "RRUX",
        ["R", "RR"],
        ["R", 1],
        "R" * (inst.inputs["max_steps"] + 1),
        {"moves": "RRRR", "width": 100},
    ]
    for output in forged:
        verdict = task.checked_score(inst, output)
        assert verdict.value == 0.0 and verdict.feedback.startswith("invalid output"), output
    # Only moves count, replayed on the instance's own game: moves planned for another game
    # (a bigger board, another seed) score what they do on this one.
    other = agent.solve(dict(inst.inputs, width=12, height=12, seed="other"))
    replayed = play(task.new_game(inst), other)
    verdict = task.score(inst, other)
    factor = 1 - DEATH_PENALTY if replayed.dead else 1
    assert verdict.value == pytest.approx(replayed.eaten / 61 * factor)
    assert verdict.value < honest


def test_the_seed_is_greedy_and_its_weights_matter(task: SnakeTask, agent: ModuleType) -> None:
    assert_seed_space_valid(SEED_SOURCE)
    val = task.instances(Split.VAL)
    seed = mean_score(task, agent, val)
    agent.PARAMS.update(space=1.0, tail=1.0)
    tuned = mean_score(task, agent, val)
    assert 0.05 < seed < 0.2 and tuned > seed + 0.08


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("    raise RuntimeError('boom')\n", "exception: RuntimeError: boom"),
        ("    while True:\n        pass\n", "timeout"),
        ("    import os\n    os._exit(3)\n", ""),
    ],
)
def test_a_hostile_policy_is_the_candidates_failure(body: str, reason: str) -> None:
    task = load_task("snake", {"n_train": 2})
    program = task.seed_program().with_files({"task_agent.py": "def solve(inputs):\n" + body})
    result = evaluate_stage(
        program,
        task=task,
        instances=list(task.instances(Split.TRAIN)),
        stage="train",
        split="train",
        sandbox=get_sandbox("auto"),
        limits=Limits(wall_time=25),
    )
    assert result.score == 0.0
    for entry in result.results:
        assert entry["score"] == 0.0 and entry["error"]
        assert reason in entry["error"]


def test_frames_show_the_board_food_and_end(agent: ModuleType, task: SnakeTask) -> None:
    inst = task.instances(Split.TEST)[0]
    moves = agent.solve(json.loads(json.dumps(inst.inputs)))
    frames = list(replay_frames(task.new_game(inst), moves, title="t"))
    game = play(task.new_game(inst), moves)
    assert len(frames) == game.steps + 1
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    console.print(frames[0])
    console.print(frames[-1])
    text = out.getvalue()
    assert text.count("@") == 2 and "*" in text and "food 0/61  moves 0  length 3" in text
    assert f"food {game.eaten}/61  moves {game.steps}" in text and game.ended in text
    rows = [line for line in text.splitlines() if line.startswith("│ ") and "food" not in line]
    assert len([r for r in rows if set(r[2:18]) <= set("@o*. ")]) >= 16
