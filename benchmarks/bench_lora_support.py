"""Issue 17: ``support`` routing by SmolLM2-135M-Instruct before and after LoRA training.

Measures the val accuracy of the model's own answers (the ``support-lora`` seed agent's path:
greedy reply, strict parse, no keyword fallback) for the untrained model, then after each
training round of the seed's ``trainer.py``:

* round 1 trains on the task's own labelled training examples (``training_examples()``,
  source ``task``: a generator stream apart from train, val and test);
* later rounds (``--rounds``) continue the adapter on the agent's own answers on the *train*
  split's inputs that the task's verifier accepts (``accepts``: source ``self``; the targets
  decide only which answers are kept, as the engine's data source does).

Trusted code written for this benchmark runs the trainer in this process, to measure the
learning procedure itself; the engine runs the same ``trainer.py`` in the sandbox. Each
figure comes with wall and CPU seconds (this process, all threads), examples and steps.
Untrained accuracy is also given under a lenient reading (the first team named anywhere in
the reply, as the plain ``support`` seed reads its LLM's replies): the target is judged
against the higher of the two.

Usage::

    python benchmarks/bench_lora_support.py --rounds 2 --epochs 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from hyperagents.tasks import Instance, Split, load_task

TEAMS = ("billing", "refund", "shipping", "account", "technical", "cancellation")


def lenient(reply: str) -> str | None:
    """The first team named anywhere in ``reply`` (the plain ``support`` seed's reading)."""
    for word in re.findall(r"[a-z]+", reply.lower()):
        if word in TEAMS:
            return word
    return None


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> dict[str, float]:
    wall, cpu = clock()
    return {"wall_s": round(wall - start[0], 1), "cpu_s": round(cpu - start[1], 1)}


def answers(
    rm: Any, model_dir: Path, instances: Sequence[Instance]
) -> tuple[list[str], dict[str, float]]:
    """The model's raw replies to ``instances`` (the served, merged model), and the cost."""
    start = clock()
    model, tokenizer = rm.load_for_serving(model_dir)
    loaded = since(start)
    replies = [rm.reply(model, tokenizer, str(i.inputs["message"])) for i in instances]
    return replies, {**since(start), "load_wall_s": loaded["wall_s"]}


def evaluate(rm: Any, task: Any, model_dir: Path, label: str) -> dict[str, Any]:
    """Val accuracy of the model in ``model_dir``, strict (the agent's) and lenient."""
    val = task.instances(Split.VAL)
    replies, cost = answers(rm, model_dir, val)
    strict = [rm.parse_reply(r) for r in replies]
    row = {
        "model": label,
        "n_val": len(val),
        "accuracy": sum(s == i.target for s, i in zip(strict, val, strict=True)) / len(val),
        "lenient_accuracy": sum(lenient(r) == i.target for r, i in zip(replies, val, strict=True))
        / len(val),
        "named_a_team": sum(s is not None for s in strict),
        "replies": replies[:5],
        **cost,
    }
    print(json.dumps({k: v for k, v in row.items() if k != "replies"}), flush=True)
    return row


def own_examples(
    rm: Any, task: Any, model_dir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The agent's own answers on the train split's inputs that the verifier accepts."""
    train = task.instances(Split.TRAIN)
    replies, cost = answers(rm, model_dir, train)
    kept = []
    for inst, text in zip(train, replies, strict=True):
        team = rm.parse_reply(text)
        output = team if team is not None else text.strip()[:80]
        if task.accepts(inst, output):
            kept.append({"inputs": inst.inputs, "output": output})
    return kept, {"answered": len(train), "accepted": len(kept), **cost}


def train_round(
    trainer: Any, model_dir: Path, out_dir: Path, examples: list[dict[str, Any]], args: Any
) -> dict[str, Any]:
    """One training of the seed's trainer, continuing from ``model_dir``."""
    start = clock()
    request = {
        "model_dir": str(model_dir),
        "out_dir": str(out_dir),
        "examples": examples,
        "seed": args.seed,
        "threads": args.threads,
        "device": "cpu",
        "options": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr},
    }
    report: Callable[[dict[str, Any]], None] = lambda p: print("  progress", p, flush=True)  # noqa: E731
    result = trainer.train(request, report)
    row = {**result["metrics"], **since(start), "curve": result["curve"]}
    print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    return row


def run_rounds(
    rm: Any, trainer: Any, task: Any, current: Path, work: Path, args: Any, results: dict[str, Any]
) -> None:
    """Train round after round from ``current``; evaluate each new model on val."""
    for k in range(1, args.rounds + 1):
        if k == 1:
            examples = [{"inputs": e.inputs, "output": e.target} for e in task.training_examples()]
            data: dict[str, Any] = {"source": "task", "examples": len(examples)}
        else:
            examples, data = own_examples(rm, task, current)
            data = {"source": "self", **data}
        out = work / f"round{k}"
        row = {
            "round": k,
            "data": data,
            "training": train_round(trainer, current, out, examples, args),
        }
        row["eval"] = evaluate(rm, task, out, f"round {k}")
        results["rounds"].append(row)
        current = out
        save(args.json, results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-examples", type=int, default=120)
    parser.add_argument("--n-train", type=int, default=60)
    parser.add_argument("--n-val", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = load_task(
        "support-lora",
        {"n_examples": args.n_examples, "n_train": args.n_train, "n_val": args.n_val},
    )
    work = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    seed_dir = work / "seed"
    task.seed_program().write_to(seed_dir)
    sys.path.insert(0, str(seed_dir))
    import routing_model as rm  # the seed program's own modules
    import trainer

    start = clock()
    results: dict[str, Any] = {"args": vars(args) | {"json": str(args.json)}, "rounds": []}
    results["untrained"] = evaluate(rm, task, seed_dir / "model", "untrained")
    save(args.json, results)
    run_rounds(rm, trainer, task, seed_dir / "model", work, args, results)
    results["total"] = since(start)
    best = max((r["eval"]["accuracy"] for r in results["rounds"]), default=0.0)
    base = max(results["untrained"]["accuracy"], results["untrained"]["lenient_accuracy"])
    results["gain_points"] = round(100 * (best - base), 1)
    results["target_met"] = best - base >= 0.30
    print(
        json.dumps(
            {
                "gain_points": results["gain_points"],
                "target_met": results["target_met"],
                **results["total"],
            }
        )
    )
    save(args.json, results)
    return 0


def save(path: Path | None, results: dict[str, Any]) -> None:
    """Write the results so far (each stage adds to them)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
