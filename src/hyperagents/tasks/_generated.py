"""A base for tasks whose instances a seeded generator makes, split by split."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from hyperagents.exceptions import ConfigError
from hyperagents.tasks._base import Instance, Split, Task

__all__ = ["GeneratedTask"]

#: Each split's index: its generator stream (train 0, val 1, test 2).
SPLIT_INDEX = {Split.TRAIN: 0, Split.VAL: 1, Split.TEST: 2}


class GeneratedTask(Task):
    """A task with seeded, generated splits: sizes checked, instances made once and cached.

    Subclasses implement :meth:`generate`. Instance ids are ``"<split>-<index>"`` (at least
    four digits, e.g. ``"train-0007"``), unique across splits.

    Args:
        seed: Seed of the generator; the same seed always gives the same instances.
        n_train: Number of train instances.
        n_val: Number of val instances.
        n_test: Number of test instances.

    Raises:
        ConfigError: A size is smaller than 1 or the seed is negative.
    """

    def __init__(self, *, seed: int, n_train: int, n_val: int, n_test: int) -> None:
        sizes = {Split.TRAIN: n_train, Split.VAL: n_val, Split.TEST: n_test}
        for split, n in sizes.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError(
                    f"{self.name}: n_{split.value} must be a positive integer, got {n!r}"
                )
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"{self.name}: seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self._sizes = sizes
        self._cache: dict[Split, tuple[Instance, ...]] = {}

    @abstractmethod
    def generate(self, split_index: int, n: int) -> Iterable[tuple[Any, Any]]:
        """Make the ``(inputs, target)`` pairs of one split.

        Args:
            split_index: 0 train, 1 val, 2 test: each split has its own stream.
            n: How many.

        Returns:
            The pairs, in order; a split must not depend on the size of another.
        """

    def holdout_instances(self, seed: int) -> Sequence[Instance]:
        """A fresh draw from the generator (its own stream per ``seed``), the size of val."""
        n = self._sizes[Split.VAL]
        width = max(4, len(str(n - 1)))
        stream = 1000 + seed % 1_000_000_000
        return tuple(
            Instance(id=f"holdout-{i:0{width}d}", inputs=inputs, target=target)
            for i, (inputs, target) in enumerate(self.generate(stream, n))
        )

    def instances(self, split: Split) -> Sequence[Instance]:
        """Return the instances of ``split`` (generated once, then cached)."""
        split = Split(split)
        cached = self._cache.get(split)
        if cached is None:
            n = self._sizes[split]
            width = max(4, len(str(n - 1)))
            cached = tuple(
                Instance(id=f"{split.value}-{i:0{width}d}", inputs=inputs, target=target)
                for i, (inputs, target) in enumerate(self.generate(SPLIT_INDEX[split], n))
            )
            self._cache[split] = cached
        return cached
