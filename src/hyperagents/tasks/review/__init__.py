"""The ``review`` task: accept or reject code submissions described by records.

Each instance is one submission record (a JSON object); the task agent's ``solve(inputs)`` returns
``"accept"`` or ``"reject"`` (case and surrounding blanks are ignored). A correct decision scores
1.0, a wrong or malformed one 0.0; the split score is the accuracy.

Generative model
----------------
The data is synthetic and fully determined by the task ``seed``. Split ``k`` (train 0, val 1,
test 2) draws its records from ``numpy.random.default_rng([seed, k])``, one record after the other,
each field in the order listed below (``N`` normal, ``Poisson``, ``Gamma(shape, scale)``):

=========================  =====================================================================
field                      distribution
=========================  =====================================================================
change_type                feature .35, bugfix .28, refactor .15, docs .10, dependency .12
language                   python .30, javascript .25, go .15, java .15, rust .10, cpp .05
                           (has no influence on the label)
lines_changed              round(exp(N(mu, 1.1))) clipped to 1..5000; mu = 5.0 feature,
                           3.6 bugfix, 5.2 refactor, 3.4 docs, 2.8 dependency
files_touched              min(1 + Poisson(sqrt(lines_changed) / 3), 200) (no influence)
has_tests                  Bernoulli: feature .55, bugfix .5, refactor .4, docs .05, dependency .2
test_coverage_delta        N(1, 2) with tests, N(-1, 1.5) without; clipped to ±15, 2 decimals
ci_status                  pass .72, flaky .15, fail .13
author_experience_years    Gamma(2, 2.5) clipped to 0..30, 1 decimal
prior_rejections           min(Poisson(1.2), 8)
touches_security           Bernoulli: feature .18, bugfix .2, refactor .12, docs .02,
                           dependency .25
review_comments            min(Poisson(1 + lines_changed / 80), 60)
complexity_delta           round of: feature N(lines/60, 3), refactor N(-lines/80, 3),
                           bugfix N(0.5, 2), dependency N(0, 1), docs 0; clipped to ±60
=========================  =====================================================================

The noise-free label is ``accept`` iff the *merit* is ``>= 0``, where the merit is the sum of:

* change type: feature 0, bugfix +0.75, refactor +0.25, docs +1.5, dependency -0.5;
* CI: fail -5 (a veto in practice), flaky -1 (except for docs changes: 0), pass 0;
* size, in bands, forgiven by tests: ``lines_changed <= 50`` +0.5; 51..300 0; 301..1000 -1.5
  without tests, -0.25 with tests; over 1000 -3 without tests, -0.75 with tests;
* coverage, saturating: ``0.6 * clip(test_coverage_delta, -3, 1.5)``;
* security needs experience: if ``touches_security``, experience < 3 years -3, 3..8 years -0.5,
  >= 8 years +0.25;
* experience, saturating: ``0.5 * min(author_experience_years, 4) / 4``;
* prior rejections, steps: 0..1 0, 2..3 -0.5, >= 4 -1.5;
* contention: more than 12 review comments -1;
* complexity, saturating: ``-min(max(complexity_delta - 8, 0) / 6, 1.5)``; refactors that reduce
  complexity (``complexity_delta < 0``) +0.5.

Label noise: in each split exactly ``round(0.07 * n)`` labels, chosen uniformly at random (after
the records, from the same stream), are flipped. So the noise-free rule itself scores about 0.93:
that is the ceiling. With the defaults (seed 0) the seed agent's val accuracy is 0.565, the ceiling
0.93, and a hill climb on the seed agent's declared parameters (on train only) reaches 0.84-0.87 on
val.

Instance ids are ``"<split>-<index>"`` (``"train-0007"``), unique across splits. ``inputs`` is the
record (a ``dict``), ``target`` is ``"accept"`` or ``"reject"``.

Note:
    The records come from numpy's ``Generator`` (PCG64) methods ``choice``, ``normal``,
    ``poisson``, ``gamma`` and ``random``; numpy keeps these streams stable in practice but does
    not formally guarantee it across versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from hyperagents.program import Program
from hyperagents.tasks._base import Instance, Score, short_repr
from hyperagents.tasks._generated import GeneratedTask
from hyperagents.tasks._seeds import seed_files
from hyperagents.tasks.review._data import generate_split

__all__ = ["ReviewTask"]

_LABELS = ("accept", "reject")


class ReviewTask(GeneratedTask):
    """Accept/reject decisions on synthetic code-submission records (see the module docstring).

    Options: ``seed`` and the split sizes (see :class:`~hyperagents.tasks.SeededTask`).
    """

    name: ClassVar[str] = "review"
    description: ClassVar[str] = (
        "Accept or reject code submissions from records of numeric and categorical fields "
        "(synthetic, seeded, with interactions, non-linear thresholds and 7% label noise)."
    )
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    instance_timeout: ClassVar[float] = 5.0
    default_sizes: ClassVar[tuple[int, int, int] | None] = (400, 200, 200)

    def generate(self, split_index: int, n: int) -> Iterable[tuple[Any, Any]]:
        """The records and labels of one split (see the module docstring)."""
        return ((ex.record, ex.label) for ex in generate_split(self.seed, split_index, n))

    def score(self, instance: Instance, output: Any) -> Score:
        """1.0 for the right decision, 0.0 for a wrong or malformed one, with feedback."""
        expected = instance.target
        if not isinstance(output, str):
            return Score(
                0.0,
                f"invalid output {short_repr(output)} ({type(output).__name__}): "
                f"expected the string 'accept' or 'reject'; expected {expected}",
            )
        predicted = output.strip().lower()
        if predicted not in _LABELS:
            return Score(
                0.0,
                f"invalid output {short_repr(output)}: expected 'accept' or 'reject'; "
                f"expected {expected}",
            )
        if predicted == expected:
            return Score(1.0, f"correct: predicted {predicted}, expected {expected}")
        return Score(0.0, f"wrong: predicted {predicted}, expected {expected}")

    def seed_program(self) -> Program:
        """The seed hyperagent: the rule-based task agent and the offline meta agent."""
        return Program(seed_files("hyperagents.tasks.review", "seed/task_agent.py"))
