"""The ``arith`` agent's model: a small decoder-only transformer that adds numbers digit by digit.

Format. A problem ``a + b`` is the token sequence ``reversed(a) + reversed(b) =``, and the
answer ``reversed(a + b) $``: every number least significant digit first, so each answer digit
depends on the two operand digits of its place and the carry from the place before (the
reversed format of Lee et al., "Teaching Arithmetic to Small Transformers", 2023, and of Lee et
al., "Self-Improving Transformers Overcome Easy-to-Hard and Length Generalization Challenges",
2025). The vocabulary is the ten digits, ``+``, ``=``, the end mark ``$`` and padding.

Positions. ``pos = "abacus"`` (the default) adds to each digit token a learnt embedding of its
place in its number: 1 for the digit written first (the units), 2 for the tens, and so on, in
both operands and the answer; every other token has place 0 (the Abacus embeddings of McLeish
et al., "Transformers Can Do Arithmetic with the Right Embeddings", 2024). The digits of one
place then share an embedding, so an answer digit finds its two operand digits by matching
places, whatever the length; there is no other positional encoding (causal attention alone
orders the tokens). A place's embedding is only learnt if the training data has digits at that
place: the trainer shifts each example's places by a random offset in ``0..place_offset``
(McLeish et al. draw up to 100, which carries a model far past its data at once; the trainer's
default is 1), so a model trained on numbers of up to ``n`` digits has learnt places up to
``n + place_offset`` and answers problems that long, and not longer. That is the margin
self-improvement needs (Lee et al. 2025): each round the model answers problems one digit
longer than any it was trained on, the verifier keeps the right answers, and training on them
teaches the next place. Measured in ``benchmarks/RESULTS.md`` (issue 17): taught 1..3 digits,
the model answers about half of the 4-digit problems and none of the 5-digit ones.

``pos = "nope"`` (no positional encoding; Kazemnejad et al. 2023) and ``pos = "rope"`` (rotary,
Su et al. 2021) are the alternatives; measured in the same section, taught 1..3 digits they
answer 1% and 0% of the 4-digit problems, too few for self-improvement to start from.

Standalone: torch and the standard library only, so the program's ``task_agent.py`` and
``trainer.py`` can import it in the sandbox.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CONFIG_FILE",
    "END",
    "PAD",
    "VOCAB",
    "WEIGHTS_FILE",
    "AdderModel",
    "ModelConfig",
    "decode_answer",
    "encode_answer",
    "encode_prompt",
    "generate",
    "load_model",
    "save_model",
]

#: The tokens: ten digits, plus, equals, the end of an answer; padding is the last id.
VOCAB = "0123456789+=$"
END = VOCAB.index("$")
PAD = len(VOCAB)
_ID = {ch: i for i, ch in enumerate(VOCAB)}

#: The position schemes of :class:`ModelConfig` (see the module docstring).
POSITIONS = ("abacus", "nope", "rope")

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ModelConfig:
    """The architecture, as ``config.json`` stores it."""

    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 256
    pos: str = "abacus"  #: "abacus", "nope" or "rope"
    max_len: int = 256  #: longest token sequence (prompt and answer); also the most places

    def __post_init__(self) -> None:
        if self.pos not in POSITIONS:
            raise ValueError(f"pos must be one of {', '.join(POSITIONS)}, got {self.pos!r}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError("d_model must split into heads of an even size")
        for name in ("d_model", "n_layers", "n_heads", "d_ff", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """A config from its JSON form (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with the format's name."""
        return {"format": "arith-adder-v1", **asdict(self)}


def encode_prompt(a: str, b: str) -> list[int]:
    """The tokens of the problem ``a + b`` (digit strings, most significant digit first)."""
    return [_ID[c] for c in a[::-1]] + [_ID["+"]] + [_ID[c] for c in b[::-1]] + [_ID["="]]


def encode_answer(answer: str) -> list[int]:
    """The tokens of an answer (a digit string, most significant first), end mark included."""
    return [_ID[c] for c in answer[::-1]] + [END]


def decode_answer(tokens: Sequence[int]) -> str:
    """The digit string (most significant first) of generated tokens, up to the end mark;
    ``""`` when they hold no digit before it or a token other than a digit."""
    digits: list[str] = []
    for token in tokens:
        if token == END:
            break
        if token >= 10:
            return ""
        digits.append(VOCAB[token])
    return "".join(reversed(digits))


def places(tokens: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """The place of every digit token in its number (1 for the first digit written, the least
    significant) plus ``offset`` (one per row; none: 0), and 0 for every other token.

    Args:
        tokens: Token ids (batch, time).
        offset: Added to the places of each row's digits (batch,), or None.
    """
    digit = (tokens < 10).long()
    count = digit.cumsum(dim=1)
    # The count of digits before the last non-digit token at or before each position.
    reset = torch.where(digit == 0, count, torch.zeros_like(count)).cummax(dim=1).values
    place = (count - reset) * digit
    if offset is not None:
        place = place + offset.view(-1, 1) * digit
    return place


def _rotary(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of ``x`` (batch, heads, time, head_dim)."""
    t, dim = x.shape[-2], x.shape[-1]
    inv = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32, device=x.device) / dim))
    angles = torch.outer(torch.arange(t, dtype=torch.float32, device=x.device), inv)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class _Block(nn.Module):
    """Pre-norm causal self-attention and a GELU feed-forward layer."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads = config.n_heads
        self.rope = config.pos == "rope"
        self.norm1 = nn.LayerNorm(config.d_model)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.ff = nn.Sequential(
            nn.Linear(config.d_model, config.d_ff),
            nn.GELU(),
            nn.Linear(config.d_ff, config.d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (z.view(batch, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        if self.rope:
            q, k = _rotary(q), _rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(batch, t, d))
        out: torch.Tensor = x + self.ff(self.norm2(x))
        return out


class AdderModel(nn.Module):
    """The transformer: token embedding, blocks, a final norm and the output layer."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(PAD + 1, config.d_model)
        self.place = (
            nn.Embedding(config.max_len + 1, config.d_model) if config.pos == "abacus" else None
        )
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, PAD + 1, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            assert isinstance(block, _Block)
            nn.init.normal_(block.proj.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    def forward(self, tokens: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, time, vocabulary) of the next token at every position.

        Args:
            tokens: Token ids (batch, time).
            offset: With ``pos = "abacus"``, added to each row's places (training draws it at
                random, so that places beyond the trained lengths are learnt too); None: 0.
        """
        x = self.embed(tokens)
        if self.place is not None:
            index = places(tokens, offset).clamp(max=self.config.max_len)
            x = x + self.place(index)
        for block in self.blocks:
            x = block(x)
        logits: torch.Tensor = self.head(self.norm(x))
        return logits


@torch.no_grad()
def generate(model: AdderModel, problems: Sequence[tuple[str, str]], batch: int = 256) -> list[str]:
    """Greedy answers (digit strings; ``""`` for a malformed one) to ``(a, b)`` problems.

    Problems are answered in groups of the same prompt length (no padding, so an answer never
    depends on the other problems of its batch), at most ``batch`` at a time, each for at most
    ``max(len(a), len(b)) + 2`` tokens.
    """
    model.eval()
    device = next(model.parameters()).device
    answers = [""] * len(problems)
    groups: dict[int, list[int]] = {}
    for index, (a, b) in enumerate(problems):
        groups.setdefault(len(a) + len(b), []).append(index)
    for _, members in sorted(groups.items()):
        for start in range(0, len(members), batch):
            chunk = members[start : start + batch]
            prompts = [encode_prompt(*problems[i]) for i in chunk]
            longest = max(max(len(problems[i][0]), len(problems[i][1])) for i in chunk)
            budget = min(longest + 2, model.config.max_len - len(prompts[0]))
            seq = torch.tensor(prompts, dtype=torch.long, device=device)
            for _ in range(max(budget, 0)):
                nxt = model(seq)[:, -1, :PAD].argmax(dim=-1, keepdim=True)
                seq = torch.cat((seq, nxt), dim=1)
                if bool((seq[:, len(prompts[0]) :] == END).any(dim=1).all()):
                    break
            for row, i in enumerate(chunk):
                answers[i] = decode_answer(seq[row, len(prompts[0]) :].tolist())
    return answers


def save_model(model: AdderModel, directory: str) -> None:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed)."""
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as handle:
        json.dump(model.config.to_dict(), handle, indent=2, sort_keys=True)
        handle.write("\n")
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    save_file(state, os.path.join(directory, WEIGHTS_FILE))


def load_model(directory: str, device: str = "cpu") -> AdderModel:
    """The model saved in ``directory`` by :func:`save_model`.

    Raises:
        FileNotFoundError: A file is missing.
        ValueError: The config or the weights do not describe this model.
    """
    from safetensors.torch import load_file

    with open(os.path.join(directory, CONFIG_FILE), encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{CONFIG_FILE} must hold an object")
    model = AdderModel(ModelConfig.from_dict(data))
    try:
        model.load_state_dict(load_file(os.path.join(directory, WEIGHTS_FILE)))
    except RuntimeError as exc:
        raise ValueError(f"the weights do not match {CONFIG_FILE}: {exc}") from exc
    return model.to(device).eval()
