"""``hyperagents play`` replays a variant's snake game: moves from its task agent in the sandbox,
frames from the task's rules; an agent that fails is shown as its failure."""

from __future__ import annotations

import pytest

from hyperagents.program import Program
from hyperagents.storages import RDBStorage, RunSpec, VariantState
from hyperagents.tasks import Split, load_task
from hyperagents.tasks.snake import SnakeTask, play

from cli_helpers import invoke_wide, wrapped_task


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Run ``s`` on snake: the seed (generation 0) and a child whose agent crashes; run ``r``
    on another task."""
    url = f"sqlite:///{tmp_path_factory.mktemp('play') / 'p.db'}"
    store = RDBStorage(url)
    seed = SnakeTask().seed_program()
    crashing = seed.with_files({"task_agent.py": "def solve(inputs):\n    raise ValueError(7)\n"})
    ids = [store.put_program(p) for p in (seed, crashing)]
    run_id = store.create_run(
        RunSpec(
            name="s", task="snake", mode="hyperagent", seed=0, config={}, seed_program_id=ids[0]
        )
    )
    for generation, program in enumerate(ids):
        store.create_variant(
            run_id=run_id,
            generation=generation,
            parent_id=None if generation == 0 else 1,
            state=VariantState.COMPLETE,
            program_id=program,
        )
    other = store.put_program(Program({"task_agent.py": "def solve(x):\n    return 1\n"}))
    other_run = store.create_run(
        RunSpec(
            name="r", task="review", mode="hyperagent", seed=0, config={}, seed_program_id=other
        )
    )
    store.create_variant(
        run_id=other_run,
        generation=0,
        parent_id=None,
        state=VariantState.COMPLETE,
        program_id=other,
    )
    store.close()
    return url


def test_play_prints_the_first_and_last_frames_and_the_score(url: str) -> None:
    code, out = invoke_wide("play", "s/0", "--storage", url, "--game", "1")
    assert code == 0, out
    task = load_task("snake")
    assert isinstance(task, SnakeTask)
    inst = task.instances(Split.TEST)[1]
    verdict = task.score(inst, _seed_moves(inst.inputs))
    game = play(task.new_game(inst), _seed_moves(inst.inputs))
    assert "food 0/61 moves 0 length 3" in out
    assert f"food {game.eaten}/61 moves {game.steps} length {len(game.body)}" in out
    assert f"score {verdict.value:.4f}" in out and out.count("snake test-0001") == 2


def test_every_frame_on_request(url: str) -> None:
    code, out = invoke_wide("play", "s/0", "--storage", url, "--all-frames", "--split", "val")
    assert code == 0, out
    inst = load_task("snake").instances(Split.VAL)[0]
    steps = play(SnakeTask().new_game(inst), _seed_moves(inst.inputs)).steps
    assert out.count("snake val-0000") == steps + 1


def test_a_failing_agent_is_its_failure_and_other_tasks_are_refused(url: str) -> None:
    code, out = invoke_wide("play", "s/1", "--storage", url)
    assert code == 1 and "the agent failed: exception: ValueError: 7" in out
    code, out = invoke_wide("play", "r/0", "--storage", url)
    assert code == 1 and "play replays snake games" in out
    code, out = invoke_wide("play", "s/0", "--storage", url, "--game", "99")
    assert code == 1 and "has 12 games" in out


def test_a_wrapped_snake_plays_by_the_snake_rules_it_wraps(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("wrapped")
    url = f"sqlite:///{folder / 'w.db'}"
    store = RDBStorage(url)
    seed = store.put_program(SnakeTask().seed_program())
    spec = RunSpec(
        name="w", task=wrapped_task(folder, "snake"), mode="hyperagent", seed=0, config={},
        seed_program_id=seed,
    )  # fmt: skip
    run_id = store.create_run(spec)
    store.create_variant(
        run_id=run_id, generation=0, parent_id=None, state=VariantState.COMPLETE, program_id=seed
    )
    store.close()
    code, out = invoke_wide("play", "w/0", "--storage", url, "--game", "1")
    assert code == 0, out
    inst = load_task("snake").instances(Split.TEST)[1]
    game = play(SnakeTask().new_game(inst), _seed_moves(inst.inputs))
    assert f"food {game.eaten}/61 moves {game.steps} length {len(game.body)}" in out
    assert out.count("snake test-0001") == 2


def _seed_moves(inputs: dict[str, object]) -> str:
    """The seed agent's moves, computed here (the test's own process) to check the replay."""
    import sys

    from task_checks import load_agent, seed_source

    rules = SnakeTask().seed_program().text("snake_game.py")
    saved = sys.modules.get("snake_game")
    sys.modules["snake_game"] = load_agent(rules, "snake_game")
    try:
        return str(load_agent(seed_source(SnakeTask), "snake_seed").solve(inputs))
    finally:
        if saved is None:
            sys.modules.pop("snake_game", None)
        else:
            sys.modules["snake_game"] = saved
