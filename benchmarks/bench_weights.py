"""Self-improvement of the ``arith`` model: from short examples to problems twice as long.

``--direct`` measures the learning procedure itself, with the task's trusted pieces and the seed
program's own ``trainer.py`` and ``arith_model.py`` run in this process (trusted code of ours;
a run of the engine runs them in the sandbox instead):

1. round 0: ``train`` from scratch on the task's ``training_examples()`` (lengths 1..L, with
   their sums), then the accuracy at every length L..2L (a probe of ``--probe`` problems per
   length, drawn apart from every split) and on the val split (length 2L);
2. each further round: the current model answers every problem of the train split (inputs
   only; lengths 1..2L), the task's verifier (``accepts``) keeps the right answers, and
   ``train`` continues the current model on the task's examples and the kept answers; the
   same evaluation follows. Nothing else is trained on: no val or test problem, no label of a
   train problem except the model's own verified answer.

The rounds stop when val accuracy reaches ``--target`` (0.9) or after ``--rounds``; the test
split is evaluated at the end. Each round prints the longest problem trained on, the answers
kept (and how many were the new longest length), the accuracies and the round's wall and CPU
seconds (this process; torch at ``--threads``).

``--engine`` measures the same through the engine: for each seed of ``--seeds N`` (0..N-1, the
run's and the task's seed) and each arm of ``--arms`` (``harness``, ``weights``, ``both``: the
run's ``--levers``) it runs the real CLI in a subprocess, ``hyperagents run -t arith --meta
offline --levers ARM -s SEED --max-seconds T -w W`` with the task options of the direct target
(``--length`` 3: val and test at 6 digits; ``--n-train``, ``--n-val``, ``--n-test``,
``--n-examples``, printed), each run in its own temporary SQLite database and one run at a
time. It reads each run back through the public API (:class:`hyperagents.Run` and
``hyperagents.runs.training_summary``): the champion's val and test, the seed's val, the
generations, the trainings (done, failed, skipped; how many are in the champion's lineage),
the training examples by source, the training stage's wall seconds, and the command's wall and
CPU seconds (a cgroup v2 of its own, which counts every descendant; else ``RUSAGE_CHILDREN``:
the output says which). It prints a table and, with 3 seeds or more, every pair of arms
compared on the champions' val and test (two-sided Mann-Whitney U, Holm over the pairs,
Vargha-Delaney A12, from :mod:`hyperagents.reports`). The code is in ``weights_engine.py``.

Usage:
    python benchmarks/bench_weights.py --direct --length 3 --n-train 1200 --rounds 8 \
        --scratch-steps 2000 --round-steps 1000 --out arith.json
    python benchmarks/bench_weights.py --engine --seeds 2 --arms harness,weights,both \
        --max-seconds 600 --n-train 1200 --out arith-engine.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weights_engine import engine

from hyperagents.tasks import Instance, Split, load_task

#: What a round needs from whoever runs the model: answer problems, train a new model.
Answer = Callable[[str, Sequence[Instance]], list[Any]]
Train = Callable[[str | None, str, list[dict[str, Any]], int], dict[str, Any]]


@dataclass
class Round:
    """One round's figures."""

    round: int
    max_trained: int
    examples: int
    kept: int
    kept_by_length: dict[int, int]
    accuracy: dict[int, float]
    val: float
    wall_s: float
    cpu_s: float
    train: dict[str, Any] = field(default_factory=dict)


def _length(instance: Instance) -> int:
    return max(len(instance.inputs["a"]), len(instance.inputs["b"]))


def _accuracy(task: Any, answer: Answer, model: str, instances: Sequence[Instance]) -> float:
    outputs = answer(model, instances)
    return sum(task.accepts(i, o) for i, o in zip(instances, outputs, strict=True)) / len(instances)


def _probes(task: Any, per_length: int) -> dict[int, list[Instance]]:
    """``per_length`` problems of each length L..2L, from a stream no split uses."""
    from hyperagents.tasks.arith._data import draw, stream

    probes: dict[int, list[Instance]] = {}
    for n in range(task.length, 2 * task.length + 1):
        rng = stream(task.seed, f"probe-{n}")
        probes[n] = [
            Instance(id=f"probe-{n}-{k}", inputs={"a": a, "b": b}, target=str(int(a) + int(b)))
            for k, (a, b) in enumerate(draw(rng, n) for _ in range(per_length))
        ]
    return probes


def _as_examples(pairs: Sequence[tuple[Instance, Any]]) -> list[dict[str, Any]]:
    return [{"inputs": inst.inputs, "output": output} for inst, output in pairs]


def run_rounds(
    task: Any, answer: Answer, train: Train, work: Path, *, rounds: int, target: float, probe: int
) -> tuple[list[Round], str]:
    """Round 0 and up to ``rounds`` self-improvement rounds; returns them and the last model."""
    probes = _probes(task, probe)
    val = task.instances(Split.VAL)
    given = [(inst, inst.target) for inst in task.training_examples()]
    results: list[Round] = []
    model: str | None = None
    kept: list[tuple[Instance, Any]] = []
    for number in range(rounds + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        if model is not None:
            train_split = task.instances(Split.TRAIN)
            outputs = answer(model, train_split)
            kept = [(i, o) for i, o in zip(train_split, outputs, strict=True) if task.accepts(i, o)]
        data = _as_examples(given + kept)
        out = str(work / f"round-{number}")
        report = train(model, out, data, number)
        model = out
        by_length: dict[int, int] = {}
        for inst, _ in kept:
            by_length[_length(inst)] = by_length.get(_length(inst), 0) + 1
        row = Round(
            round=number,
            max_trained=max(_length(inst) for inst, _ in given + kept),
            examples=len(data),
            kept=len(kept),
            kept_by_length=dict(sorted(by_length.items())),
            accuracy={n: _accuracy(task, answer, model, p) for n, p in probes.items()},
            val=_accuracy(task, answer, model, val),
            wall_s=round(time.perf_counter() - wall, 1),
            cpu_s=round(time.process_time() - cpu, 1),
            train=report.get("metrics", {}),
        )
        results.append(row)
        print(_line(row), flush=True)
        if row.val >= target:
            break
    assert model is not None
    return results, model


def _line(row: Round) -> str:
    accuracy = " ".join(f"{n}:{a:.2f}" for n, a in row.accuracy.items())
    return (
        f"round {row.round}: trained up to {row.max_trained} digits on {row.examples} examples "
        f"({row.kept} kept: {row.kept_by_length}); accuracy {accuracy}; val {row.val:.3f}; "
        f"{row.wall_s:.0f} s wall, {row.cpu_s:.0f} s CPU"
    )


def _progress(point: dict[str, Any]) -> None:
    if point["step"] % 1000 == 0:
        print(f"  step {point['step']}: loss {point['loss']:.4f}", flush=True)


def direct(args: argparse.Namespace, task: Any, work: Path) -> tuple[Answer, Train]:
    """The seed program's trainer and model, imported in this process from its files."""
    task.seed_program().write_to(work / "program")
    sys.path.insert(0, str(work / "program"))
    arith_model = importlib.import_module("arith_model")
    trainer = importlib.import_module("trainer")
    import torch

    torch.set_num_threads(args.threads)
    loaded: dict[str, Any] = {}

    def answer(model: str, instances: Sequence[Instance]) -> list[Any]:
        if model not in loaded:
            loaded.clear()
            loaded[model] = arith_model.load_model(model)
        problems = [(i.inputs["a"], i.inputs["b"]) for i in instances]
        return list(arith_model.generate(loaded[model], problems))

    def train(model: str | None, out: str, examples: list[dict[str, Any]], number: int) -> Any:
        options = dict(args.options)
        options["steps"] = args.scratch_steps if model is None else args.round_steps
        request = {"model_dir": model, "out_dir": out, "examples": examples}
        request.update(seed=args.seed + number, threads=args.threads, device="cpu")
        return trainer.train({**request, "options": options}, _progress)

    return answer, train


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--direct", action="store_true", help="in-process rounds")
    mode.add_argument("--engine", action="store_true", help="runs of the CLI, one per arm × seed")
    parser.add_argument("--length", type=int, default=3, help="the task's initial length L")
    parser.add_argument("--seed", type=int, default=0, help="--direct: the task's seed")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-examples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--probe", type=int, default=100, help="problems per probed length")
    parser.add_argument("--scratch-steps", type=int, default=2000)
    parser.add_argument("--round-steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--options", type=json.loads, default={}, help="trainer options (JSON)")
    parser.add_argument("--out", type=Path, help="write the figures here (JSON)")
    engine_args = parser.add_argument_group("--engine")
    engine_args.add_argument("--seeds", type=int, default=2, help="how many seeds (run and task)")
    engine_args.add_argument("--first-seed", type=int, default=0, help="seeds from this one on")
    engine_args.add_argument(
        "--selector", default="score_child", help="each run's parent selector (see `run --help`)"
    )
    engine_args.add_argument(
        "--arms", default="harness,weights,both", help="levers, comma-separated"
    )
    engine_args.add_argument("--max-seconds", type=float, default=600.0, help="each run's budget")
    engine_args.add_argument("--generations", type=int, default=1000, help="each run's cap")
    engine_args.add_argument("--workers", type=int, default=1, help="each run's workers")
    engine_args.add_argument("--n-val", type=int, default=200)
    engine_args.add_argument("--n-test", type=int, default=200)
    args = parser.parse_args(argv)
    if args.engine:
        return engine(args)
    task = load_task(
        "arith",
        {
            "seed": args.seed,
            "length": args.length,
            "n_train": args.n_train,
            "n_examples": args.n_examples,
        },
    )
    started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as tmp:
        answer, train = direct(args, task, Path(tmp))
        rows, model = run_rounds(
            task,
            answer,
            train,
            Path(tmp),
            rounds=args.rounds,
            target=args.target,
            probe=args.probe,
        )
        test = _accuracy(task, answer, model, task.instances(Split.TEST))
    wall, cpu = time.perf_counter() - started[0], time.process_time() - started[1]
    print(
        f"test accuracy at {2 * args.length} digits: {test:.3f}; {wall:.0f} s wall, "
        f"{cpu:.0f} s CPU in all"
    )
    if args.out:
        summary = {
            "args": {k: v for k, v in vars(args).items() if k != "out"},
            "rounds": [vars(r) for r in rows],
            "test": test,
            "wall_s": wall,
            "cpu_s": cpu,
        }
        args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
