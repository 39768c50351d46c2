"""The ``email_validation`` task: tell valid email addresses from invalid ones.

Each instance is one address; ``inputs`` is ``{"address": str}`` and the task agent's
``solve(inputs)`` returns True (valid) or False. The score of an instance is 1 for the right
answer and 0 otherwise (anything but a bool scores 0 with the reason); a split's score is the
accuracy. Train feedback shows the expected answer and, for an invalid address, the oracle's
reason.

The suite (``suite.json``, see :mod:`hyperagents.tasks.email_validation._suite`): 127
hand-written addresses covering plain addresses, dots, plus tags, special characters, quoted
local parts, IP literals, internationalised (IDN) addresses, length limits, domain syntax,
whitespace and control characters and special-use domains, and 300 seeded one-edit mutations of
valid addresses; 427 in all, 227 of them valid. Every address was labelled by the trusted oracle
(:func:`oracle_label`: the ``email-validator`` package under a stated policy, see
:mod:`hyperagents.tasks.email_validation._oracle`), which also labels new inputs (the arena's);
a test checks the stored labels against it. Loading the task needs no oracle; labelling new
inputs needs the optional extra ``arena``.

Splits: each category is shuffled with the task's ``seed`` and dealt 40% to train, 30% to val
and 30% to test, so each split has every kind of case. The seed agent is a naive regular
expression whose ``PARAMS`` switch on further checks (length limits, dot rules, quoted local
parts, IP literals, Unicode, special-use domains), all but the shape check off.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hyperagents.program import Program
from hyperagents.tasks._arena import ArenaSpec, Verdict
from hyperagents.tasks._labelled import LabelledStringTask
from hyperagents.tasks._seeds import seed_files, seed_text
from hyperagents.tasks.email_validation._oracle import POLICY, oracle_label, oracle_version
from hyperagents.tasks.email_validation._rules import RULE_FEATURES
from hyperagents.tasks.email_validation._suite import load_suite

__all__ = [
    "ARENA_ALPHABET",
    "ARENA_SEEDS",
    "POLICY",
    "EmailValidationTask",
    "oracle_label",
    "oracle_version",
]

_PACKAGE = "hyperagents.tasks.email_validation"

#: Valid addresses the arena's test agents start their edits from.
ARENA_SEEDS = (
    "user@example.com",
    "john.smith@example.org",
    "user+tag@mail.example.net",
    "o'reilly@example.co.uk",
    "first_last@sub.example.io",
    "a.b-c@d-e.example.info",
    "x@ex.co",
    "info@company.museum",
)
#: Characters the arena's ``char`` edit inserts: legal, illegal, control and non-ASCII ones.
ARENA_ALPHABET = ".@+-_\"' ()[]<>,;:\\!#$%&*/=?^`{|}~a1é\t\x00\x7fü€"


class EmailValidationTask(LabelledStringTask):
    """Email address validation, scored by accuracy (see the module docstring).

    Args:
        seed: How each category is dealt to the splits.

    Raises:
        TaskError: ``seed`` is not an int.
    """

    name: ClassVar[str] = "email_validation"
    description: ClassVar[str] = (
        "Tell valid email addresses from invalid ones (accuracy on a labelled suite of edge "
        "cases: quoted local parts, dots, plus tags, IP literals, IDN, length limits)."
    )
    suite_key: ClassVar[str] = "address"

    def suite_rows(self) -> list[dict[str, Any]]:
        """The stored labelled suite (``suite.json``)."""
        return load_suite()

    def label(self, address: str) -> bool:
        """The trusted oracle's label of a new address (for inputs no suite holds).

        Raises:
            TaskError: The oracle (email-validator, the extra ``arena``) is not installed.
        """
        return oracle_label(address)[0]

    def arena(self) -> ArenaSpec:
        """The arena declaration: the address, :data:`ARENA_SEEDS` edited by the ``char`` edit
        (over :data:`ARENA_ALPHABET`) and the task's own mutators (``seed/task_mutators.py``:
        dots, quoting, IDN, IP literals, lengths, structure); the rule synthesis's features of
        addresses (``_rules.py``, ``seed/rule_candidates.py``)."""
        return ArenaSpec(
            input_key=self.suite_key,
            seeds=ARENA_SEEDS,
            mutators=seed_text(_PACKAGE, "seed/task_mutators.py"),
            generic=("char",),
            alphabet=ARENA_ALPHABET,
            rule_features=RULE_FEATURES,
            rule_candidates=seed_text(_PACKAGE, "seed/rule_candidates.py"),
        )

    def oracle(self, value: str) -> Verdict:
        """The trusted oracle's verdict on a new address (:func:`oracle_label`).

        Raises:
            TaskError: The oracle (email-validator, the extra ``arena``) is not installed.
        """
        valid, reason = oracle_label(value)
        return Verdict(bool(valid), str(reason))

    def seed_program(self) -> Program:
        """The seed hyperagent: a naive regular expression and the offline meta agent."""
        return Program(seed_files(_PACKAGE, "seed/task_agent.py"))
