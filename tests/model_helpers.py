"""Helpers of the tests of a variant's model in the faces: a run whose child carries a model
(not a pytest module)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hyperagents.program import Program
from hyperagents.storages import BaseStorage, RunSpec, VariantState

#: A weight file that happens to be valid UTF-8 (zeros): binary by its path.
WEIGHTS = b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"w":{"shape":[4]}}' + b"\x00" * 16
CONFIG = '{"d_model":32,"n_layers":2,"vocab":["0","1","+","="]}'


@dataclass(frozen=True)
class ModelRun:
    """The run's variants (``name/0`` the seed, ``name/1`` its child) and the child's program."""

    seed: int
    child: int
    program: Program


def store_model_run(
    storage: BaseStorage, name: str = "m", *, model: Mapping[str, bytes | str] | None = None
) -> ModelRun:
    """A run whose seed has no model and whose child carries one (``model``, by name in its
    model folder; by default a config and weights)."""
    seed = Program({"task_agent.py": "def solve(x):\n    return 1\n", "meta_agent.py": "#\n"})
    files = {"config.json": CONFIG, "model.safetensors": WEIGHTS} if model is None else model
    child = seed.with_files({f"model/{path}": data for path, data in files.items()})
    for program in (seed, child):
        storage.put_program(program)
    spec = RunSpec(
        name=name, task="arith", mode="hyperagent", seed=0, config={}, seed_program_id=seed.id
    )
    run_id = storage.create_run(spec)
    first = storage.create_variant(
        run_id=run_id, generation=0, parent_id=None, state=VariantState.COMPLETE, program_id=seed.id
    )
    second = storage.create_variant(
        run_id=run_id,
        generation=1,
        parent_id=first,
        state=VariantState.COMPLETE,
        program_id=child.id,
    )
    return ModelRun(first, second, child)
