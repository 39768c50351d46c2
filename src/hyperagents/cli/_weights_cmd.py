"""``hyperagents weights``: a variant's model outside the run.

``weights export-gguf VARIANT -o FILE.gguf`` writes the model a program carries (the
``lora-causal-lm`` format of ``support-lora``: a GGUF base with a LoRA adapter) as one GGUF
file, the adapter merged, which llama.cpp serves: ``--llm local:FILE.gguf`` (the local
provider) or any llama.cpp server. Nothing of the program runs: its model files are read as
data (see :func:`hyperagents.weights.export_gguf`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hyperagents.cli._shared import StorageOpt, console, errors, existing_storage
from hyperagents.exceptions import ProgramError
from hyperagents.runs import resolve_variant
from hyperagents.weights import export_gguf, model_files

__all__ = ["TensorType", "weights_app"]

weights_app = typer.Typer(
    help="A variant's model (weights) outside the run: export it for llama.cpp.",
    no_args_is_help=True,
)


class TensorType(StrEnum):
    """Types of the tensors an adapter changed, in the exported file."""

    f16 = "f16"
    f32 = "f32"
    q8_0 = "q8_0"


@weights_app.command("export-gguf")
def export_gguf_cmd(
    variant: Annotated[
        str, typer.Argument(metavar="VARIANT", help="ID, RUN/GENERATION or RUN/champion.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The GGUF file to write.")],
    storage: StorageOpt = None,
    base: Annotated[
        Path | None,
        typer.Option(
            help="The base GGUF file (default: the one the model's config.json names, in its "
            "installed package).",
            show_default=False,
        ),
    ] = None,
    tensor_type: Annotated[
        TensorType,
        typer.Option(
            "--type", help="The type of the tensors the adapter changed (the rest are copied)."
        ),
    ] = TensorType.f16,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT.")] = False,
) -> None:
    """Write a variant's model, its GGUF base with the LoRA adapter merged, as one GGUF file
    for llama.cpp: serve it with --llm local:OUT."""
    with errors():
        store = existing_storage(storage)
        try:
            record = resolve_variant(store, variant)
            program = store.get_program(record.program_id) if record.program_id else None
        finally:
            store.close()
        files = model_files(program) if program is not None else {}
        if not files:
            raise ProgramError(f"variant {record.id} carries no model (no model/ files)")
        done = export_gguf(files, out, base=base, tensor_type=tensor_type.value, overwrite=force)
        merged = f"{len(done.merged)} tensors merged ({done.tensor_type})"
        if not done.merged:
            merged = "no adapter: the base as it is"
        console.print(
            f"wrote {escape(str(done.path))} ({done.size / 2**20:.1f} MiB; variant {record.id}; "
            f"{merged}; base {escape(done.base.name)}) in {done.seconds:.1f} s\n"
            f"serve it: --llm local:{escape(str(done.path.resolve()))}",
            soft_wrap=True,
            highlight=False,
        )
