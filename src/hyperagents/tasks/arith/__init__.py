"""The ``arith`` task: multi-digit addition, to be learnt beyond the lengths the model was taught.

Each instance is one sum; ``inputs`` is ``{"a": "123", "b": "45"}`` (digit strings, most
significant digit first) and the task agent's ``solve(inputs)`` returns the sum as a digit
string (``"168"``; an integer is taken too). The score is exact match: 1 for the right sum,
else 0 with the reason; :meth:`ArithTask.accepts`, the trusted verifier that keeps an agent's own
outputs as training data, is the same exact match.

Lengths. A problem of length ``n`` adds two numbers of exactly ``n`` digits. The task's own
labelled data, :meth:`ArithTask.training_examples` (``n_examples`` problems with their sums),
has lengths ``1..length``; the val and test splits have length ``2 * length`` only: they measure
whether the model generalises to problems twice as long as anything it was taught. The train
split's problems have lengths spread evenly over ``1..2 * length`` and come without answers
that any agent sees: they are the inputs on which an agent answers, a verifier keeps what is
right, and the model trains on what was kept (self-improvement, as in Lee et al., "Self-Improving
Transformers Overcome Easy-to-Hard and Length Generalization Challenges", 2025): a model that
answers length ``length + 1`` now and then can learn it from its own verified answers, and then
``length + 2``, round after round. Whether it does depends on how far the model extrapolates:
measured in ``benchmarks/RESULTS.md`` (issue 17), the seed's model taught 1..3 digits answers
about half of the 4-digit problems and none of the 6-digit ones, and after five rounds 98% of
the 6-digit ones.

The seed program carries a model (:attr:`ArithTask.carries_model`): ``arith_model.py`` (a small
decoder-only transformer, reversed digits, each digit's place in its number as its position;
its docstring says why),
``trainer.py`` (``train(request, progress)`` of the weights contract) and ``task_agent.py``, which
loads ``model/`` beside it and decodes greedily; before any training the seed has no ``model/``
and answers ``"0"``. The meta agent is the installed offline one.

Problems are seeded draws (``random.Random`` per stream: train, val, test, the examples, each
holdout draw); a length's problems are distinct within a split, the val and test problems are
distinct from each other and from the train split's with the defaults (with ``length >= 3`` two
draws of ``2 * length`` digits coincide with a chance under 10^-6). Instance ids are
``"<split>-<index>"``; ``target`` is the sum's digit string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.tasks._base import Instance, Score
from hyperagents.tasks._generated import GeneratedTask
from hyperagents.tasks._seeds import seed_files, train_state_file
from hyperagents.tasks.arith._data import problems_of_lengths, spread_lengths, stream

__all__ = ["ArithTask"]

#: The seed program's own files (beside the offline meta agent).
SEED_FILES = ("seed/task_agent.py", "seed/arith_model.py", "seed/trainer.py")
_LIMIT = 10_000  #: most instances or examples of any kind


class ArithTask(GeneratedTask):
    """Multi-digit addition with length generalisation (see the module docstring).

    Args:
        seed: Seed of the problem generator; the same seed always gives the same problems.
        length: The longest problem of the task's own training examples; val and test have
            problems of twice this length (2..50).
        n_train: Number of train problems (lengths spread over ``1..2 * length``).
        n_val: Number of val problems.
        n_test: Number of test problems.
        n_examples: Number of the task's labelled training examples (lengths ``1..length``).

    Raises:
        ConfigError: A size is smaller than 1 or above 10,000, the length outside 2..50, or
            the seed negative.
    """

    name: ClassVar[str] = "arith"
    description: ClassVar[str] = (
        "Add two numbers twice as long as any the model was taught (exact match; the seed "
        "carries a small transformer that learns from its own verified answers)."
    )
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    instance_timeout: ClassVar[float] = 20.0
    entry_points: ClassVar[dict[str, tuple[str, ...]]] = {
        "task_agent.py": ("solve",),
        "meta_agent.py": ("improve",),
        "trainer.py": ("train",),
    }
    sandbox_preload: ClassVar[tuple[str, ...]] = ("torch",)
    #: The seed program has a trainer and its task agent a model (the weights contract).
    carries_model: ClassVar[bool] = True

    def __init__(
        self,
        *,
        seed: int = 0,
        length: int = 3,
        n_train: int = 2000,
        n_val: int = 200,
        n_test: int = 200,
        n_examples: int = 2000,
    ) -> None:
        super().__init__(seed=seed, n_train=n_train, n_val=n_val, n_test=n_test)
        if not isinstance(length, int) or isinstance(length, bool) or not 2 <= length <= 50:
            raise ConfigError(f"arith: length must be an integer in 2..50, got {length!r}")
        for key, n in (
            ("n_examples", n_examples),
            *((f"n_{s}", v) for s, v in self._sizes.items()),
        ):
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _LIMIT:
                raise ConfigError(f"arith: {key} must be an integer in 1..{_LIMIT}, got {n!r}")
        self.length = length
        self.n_examples = n_examples
        self._examples: tuple[Instance, ...] | None = None

    def generate(self, split_index: int, n: int) -> Iterable[tuple[Any, Any]]:
        """Train (index 0): lengths spread over ``1..2 * length``; any other stream (val, test,
        holdout draws): length ``2 * length``."""
        longest = 2 * self.length
        shortest = 1 if split_index == 0 else longest
        rng = stream(self.seed, split_index)
        for a, b in problems_of_lengths(rng, spread_lengths(n, shortest, longest)):
            yield {"a": a, "b": b}, str(int(a) + int(b))

    def training_examples(self) -> Sequence[Instance]:
        """The task's own labelled data: ``n_examples`` problems of lengths ``1..length`` (as
        many of each), ``target`` the sum; ids ``"example-<index>"``."""
        if self._examples is None:
            rng = stream(self.seed, "examples")
            lengths = spread_lengths(self.n_examples, 1, self.length)
            width = max(4, len(str(self.n_examples - 1)))
            self._examples = tuple(
                Instance(
                    id=f"example-{i:0{width}d}",
                    inputs={"a": a, "b": b},
                    target=str(int(a) + int(b)),
                )
                for i, (a, b) in enumerate(problems_of_lengths(rng, lengths))
            )
        return self._examples

    def score(self, instance: Instance, output: Any) -> Score:
        """1 for the exact sum (a digit string without leading zeros, or an integer), else 0;
        the feedback says which digit (from the right) is the first wrong one."""
        target = str(instance.target)
        if isinstance(output, int) and not isinstance(output, bool):
            output = str(output)
        if not isinstance(output, str):
            return Score(
                0.0,
                f"invalid answer of type {type(output).__name__}: expected a digit string; "
                f"the sum is {target}",
            )
        if output == target:
            return Score(1.0, f"correct ({len(target)} digits)")
        shown = output[:40] + ("..." if len(output) > 40 else "")
        if not (output.isascii() and output.isdigit()):
            return Score(
                0.0, f"invalid answer {shown!r}: expected a digit string; the sum is {target}"
            )
        place = next(
            (
                i + 1
                for i, (x, y) in enumerate(zip(reversed(output), reversed(target), strict=False))
                if x != y
            ),
            min(len(output), len(target)) + 1,
        )
        return Score(
            0.0,
            f"answered {shown}, the sum is {target} (first wrong digit from the right: {place})",
        )

    def accepts(self, instance: Instance, output: Any) -> bool:
        """The verifier that keeps an agent's own answer as training data: the exact sum."""
        return self.score(instance, output).value >= 1.0

    def seed_program(self) -> Program:
        """The seed hyperagent: the model's code, its trainer, the task agent (no weights yet)
        and the offline meta agent."""
        return Program({**seed_files("hyperagents.tasks.arith", *SEED_FILES), **train_state_file()})
