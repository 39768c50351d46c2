"""A small ``support`` task for end-to-end runs with the real local model (CPU time is short)."""

from __future__ import annotations

from hyperagents.tasks.support import SupportTask


class SmallSupport(SupportTask):
    """``support`` with 6 train, 4 val and 4 test requests."""

    name = "support-small"

    def __init__(self) -> None:
        super().__init__(n_train=6, n_val=4, n_test=4)
