"""The ``ip_validation`` task: tell valid IP addresses (IPv4 or IPv6) from invalid strings.

Each instance is one string; ``inputs`` is ``{"ip": str}`` and the task agent's
``solve(inputs)`` returns True (a valid address) or False. The score of an instance is 1 for
the right answer and 0 otherwise (anything but a bool scores 0 with the reason); a split's
score is the accuracy. Train feedback shows the expected answer and, for an invalid string, the
oracle's reason.

The suite (``suite.json``, see :mod:`hyperagents.tasks.ip_validation._suite`): hand-written
strings covering IPv4 octets, shape and notations (leading zeros, hex), IPv6 groups, ``::``
compression, embedded IPv4 tails, scope ids and what may surround an address, and seeded
one-edit mutations of valid addresses. Every string was labelled by the trusted oracle
(:func:`oracle_label`: the standard library's :mod:`ipaddress`, see
:mod:`hyperagents.tasks.ip_validation._oracle`), which also labels new inputs (the arena's);
a test checks the stored labels against it.

Splits: each category is shuffled with the task's ``seed`` and dealt 40% to train, 30% to val
and 30% to test. The seed agent accepts four dot-separated runs of digits; its ``PARAMS``
switch on further checks (octet range, leading zeros, IPv6, group count and length, embedded
IPv4, scope ids), all off.

The task is arena-capable (:meth:`IpValidationTask.arena`): the arena's test agents edit the
train split's valid addresses with the generic string edits and the task's own
(``seed/task_mutators.py``: octets, groups, scope ids, embedded IPv4, surroundings).
"""

from __future__ import annotations

from typing import Any, ClassVar

from hyperagents.program import Program
from hyperagents.tasks._arena import ArenaSpec, Verdict
from hyperagents.tasks._labelled import LabelledStringTask
from hyperagents.tasks._seeds import seed_files, seed_text
from hyperagents.tasks.ip_validation._oracle import POLICY, oracle_label, oracle_version
from hyperagents.tasks.ip_validation._suite import load_suite

__all__ = ["POLICY", "IpValidationTask", "oracle_label", "oracle_version"]

_PACKAGE = "hyperagents.tasks.ip_validation"


class IpValidationTask(LabelledStringTask):
    """IP address validation, scored by accuracy (see the module docstring).

    Args:
        seed: How each category is dealt to the splits.

    Raises:
        TaskError: ``seed`` is not an int.
    """

    name: ClassVar[str] = "ip_validation"
    description: ClassVar[str] = (
        "Tell valid IPv4/IPv6 addresses from invalid strings (accuracy on a labelled suite of "
        "edge cases: octet ranges, leading zeros, :: compression, embedded IPv4, scope ids)."
    )
    suite_key: ClassVar[str] = "ip"

    def suite_rows(self) -> list[dict[str, Any]]:
        """The stored labelled suite (``suite.json``)."""
        return load_suite()

    def arena(self) -> ArenaSpec:
        """The arena declaration: the input ``ip``; the train split's valid addresses edited
        by the generic edits and the task's own (``seed/task_mutators.py``)."""
        mutators = seed_text(_PACKAGE, "seed/task_mutators.py")
        return ArenaSpec(input_key=self.suite_key, mutators=mutators)

    def oracle(self, value: str) -> Verdict:
        """The trusted oracle's verdict on a new string (:func:`oracle_label`)."""
        valid, reason = oracle_label(value)
        return Verdict(valid, reason)

    def seed_program(self) -> Program:
        """The seed hyperagent: a naive dotted-digits check and the offline meta agent."""
        return Program(seed_files(_PACKAGE, "seed/task_agent.py"))
