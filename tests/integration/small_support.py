"""A small ``support`` task for end-to-end runs with the real local model (CPU time is short)."""

from __future__ import annotations

from hyperagents.tasks.support import SupportTask


class SmallSupport(SupportTask):
    """``support`` with 6 train, 4 val and 4 test requests.

    Each instance may take as long as only a hang would: on a loaded machine the real model reads
    its prompt slowly, and an instance cut at ``support``'s 30 s is a result that depends on the
    machine's speed (its replay, which answers at once, would then score it differently).
    """

    name = "support-small"
    instance_timeout = 600.0

    def __init__(self) -> None:
        super().__init__(n_train=6, n_val=4, n_test=4)
