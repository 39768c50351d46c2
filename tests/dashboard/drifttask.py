"""The toy task with a declared numeric input (``x``), whose drift a service's monitor
watches (not a pytest module)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toytask import ToyTask


class DriftToyTask(ToyTask):
    """The toy task; its input ``x`` is a declared numeric feature."""

    name = "drift-toy"

    def __init__(self) -> None:
        super().__init__(sizes=(8, 6, 6))

    def input_features(self) -> dict[str, str]:
        return {"x": "numeric"}
