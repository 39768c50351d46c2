"""Seed task agent of the ``arith`` task: its own model adds the two numbers.

``solve(inputs)`` receives ``{"a": "123", "b": "45"}`` and returns the sum as a digit string.
The model (``arith_model.py``) lives in ``model/`` beside this file (``config.json`` and
``model.safetensors``, written by ``trainer.py``); it is loaded once per process and answers by
greedy decoding. A program that has no model yet (the seed, before its first training) answers
``"0"`` and says so on stderr, once; so does one whose model cannot be loaded, with the reason.
"""

from __future__ import annotations

import os
import sys
from typing import Any

MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")
#: The answer given without a model.
FALLBACK = "0"

_LOADED: dict[str, Any] = {}


def _model() -> Any:
    """The model of ``model/`` (None when there is none or it cannot be loaded), loaded once."""
    if "model" not in _LOADED:
        _LOADED["model"] = None
        if not os.path.isfile(os.path.join(MODEL_DIR, "config.json")):
            print(f"arith agent: no model in {MODEL_DIR}; answering {FALLBACK!r}", file=sys.stderr)
        else:
            try:
                import torch
                from arith_model import load_model

                torch.set_num_threads(1)
                _LOADED["model"] = load_model(MODEL_DIR)
            except Exception as exc:
                print(
                    f"arith agent: cannot load the model ({exc!r}); answering {FALLBACK!r}",
                    file=sys.stderr,
                )
    return _LOADED["model"]


def _operand(inputs: Any, key: str) -> str:
    value = inputs.get(key) if isinstance(inputs, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise ValueError(f"input {key!r} must be a digit string, got {value!r}")
    return value


def solve(inputs: Any) -> str:
    """The sum of ``inputs["a"]`` and ``inputs["b"]`` as the model answers it.

    Raises:
        ValueError: An operand is not a digit string.
    """
    a, b = _operand(inputs, "a"), _operand(inputs, "b")
    model = _model()
    if model is None:
        return FALLBACK
    from arith_model import generate

    return str(generate(model, [(a, b)])[0])
