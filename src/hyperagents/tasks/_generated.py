"""Bases for tasks made from a seed and a size per split, and for those whose instances a seeded
generator makes, split by split."""

from __future__ import annotations

import enum
import inspect
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any, ClassVar, Final, Literal

from hyperagents.exceptions import ConfigError
from hyperagents.tasks._base import Instance, Split, Task

__all__ = ["GeneratedTask", "SeededTask"]

#: Each split's index: its generator stream (train 0, val 1, test 2).
SPLIT_INDEX = {Split.TRAIN: 0, Split.VAL: 1, Split.TEST: 2}

#: The keyword arguments of a seeded task, in order.
_OPTIONS = ("seed", "n_train", "n_val", "n_test")


class _Default(enum.Enum):
    """The marker of an option left out, so the task's default applies."""

    OPTION = "the task's default"


_DEFAULT: Final = _Default.OPTION
_Given = int | Literal[_Default.OPTION]


def _signature(sizes: tuple[int, int, int] | None) -> inspect.Signature:
    """``(*, seed=0, n_train=..., n_val=..., n_test=...)``, with no defaults when ``sizes`` is
    None: what ``inspect.signature`` shows (so ``hyperagents tasks`` and task options see it)."""
    defaults: tuple[Any, ...] = (0, *sizes) if sizes else (inspect.Parameter.empty,) * 4
    parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation="int")
        for name, d in zip(_OPTIONS, defaults, strict=True)
    ]
    return inspect.Signature(parameters, return_annotation="None")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class SeededTask(Task):
    """A task made from ``seed`` and a size per split, checked the same way for every such task.

    A subclass names its defaults in :attr:`default_sizes` (and may bound the sizes with
    :attr:`max_size`) instead of writing a constructor; its signature, as ``inspect`` and
    ``hyperagents tasks`` show it, is then ``(*, seed=0, n_train=..., n_val=..., n_test=...)``
    with those defaults. A subclass that writes its own ``__init__`` keeps its own signature.

    Args:
        seed: Seed of the instances; the same seed always gives the same instances.
        n_train: Number of train instances.
        n_val: Number of val instances.
        n_test: Number of test instances.

    Raises:
        ConfigError: A size is smaller than 1 (or above :attr:`max_size`), or the seed is
            negative.
        TypeError: An option left out when the class has no :attr:`default_sizes`.
    """

    #: The default sizes of train, val and test (the seed's default is 0); None: every option
    #: must be given.
    default_sizes: ClassVar[tuple[int, int, int] | None] = None
    #: The largest size of a split (None: no bound).
    max_size: ClassVar[int | None] = None
    __signature__: ClassVar[inspect.Signature | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner = next(c for c in cls.__mro__ if "__init__" in vars(c))
        cls.__signature__ = _signature(cls.default_sizes) if owner is SeededTask else None

    def __init__(
        self,
        *,
        seed: _Given = _DEFAULT,
        n_train: _Given = _DEFAULT,
        n_val: _Given = _DEFAULT,
        n_test: _Given = _DEFAULT,
    ) -> None:
        given = (seed, n_train, n_val, n_test)
        defaults = (0, *self.default_sizes) if self.default_sizes else None
        if defaults is None:
            missing = [name for name, v in zip(_OPTIONS, given, strict=True) if v is _DEFAULT]
            if missing:
                raise TypeError(f"{type(self).__name__}() needs the keyword {missing[0]!r}")
            defaults = (0, 0, 0, 0)
        seed, *sizes = (d if v is _DEFAULT else v for v, d in zip(given, defaults, strict=True))
        bound = (
            "a positive integer" if self.max_size is None else f"an integer in 1..{self.max_size}"
        )
        for split, n in zip(Split, sizes, strict=True):
            if not _is_int(n) or n < 1 or (self.max_size is not None and n > self.max_size):
                raise ConfigError(f"{self.name}: n_{split.value} must be {bound}, got {n!r}")
        if not _is_int(seed) or seed < 0:
            raise ConfigError(f"{self.name}: seed must be a non-negative integer, got {seed!r}")
        self.seed: int = seed
        self._sizes: dict[Split, int] = dict(zip(Split, sizes, strict=True))


class GeneratedTask(SeededTask):
    """A task with seeded, generated splits: sizes checked, instances made once and cached.

    Subclasses implement :meth:`generate` and set :attr:`default_sizes` (or pass every option).
    Instance ids are ``"<split>-<index>"`` (at least four digits, e.g. ``"train-0007"``), unique
    across splits. Options and errors: see :class:`SeededTask`.
    """

    @cached_property
    def _cache(self) -> dict[Split, tuple[Instance, ...]]:
        return {}

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
