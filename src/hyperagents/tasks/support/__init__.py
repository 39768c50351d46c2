"""The ``support`` task: route customer support requests to the right team, with an LLM.

An LLM task: the task agent itself calls the run's language model (``llm.complete``, answered
by the engine through the sandbox bridge). Each instance is one customer request
``{"message": str, "channel": "email" | "chat" | "web form"}``; ``solve(inputs)`` returns the
team that should handle it: ``billing``, ``refund``, ``shipping``, ``account``, ``technical``
or ``cancellation`` (case and surrounding blanks are ignored). Scoring is an exact check: 1.0 for
the right team, 0.0 for a wrong or malformed answer; the split score is the accuracy.

Knowledge base
--------------
The seed program ships ``kb.md``, a routing guide: what each team handles and six routing rules
that settle requests mentioning several teams (a disputed charge the customer wants
"cancelled" is billing; a crash on the login page is technical; closing an account is
cancellation...). It is part of the program, so meta agents may rewrite it like any file.

Data
----
Synthetic and determined by the task ``seed`` (standard library ``random``, stable across
Python versions). Categories are drawn with weights billing .20, shipping .18, refund .17,
technical .17, account .16, cancellation .12. 40% of the requests come from *hard* templates
that borrow another team's vocabulary and are settled only by the routing rules; the rest use
their team's own words. Product names, apps, order numbers, amounts, greetings, asides and
sign-offs are filled in at random. There is no label noise: the routing guide decides every
request, so the ceiling is 1.0.

Without a language model the seed agent falls back to keyword counting, which gets most easy
requests and few hard ones (0.725 on val with the defaults); a model that follows the
guide, or keyword rules that encode it, does better.

``draw_request`` draws one request with other category weights, hard share or channel mix
(the simulated drifting stream of :mod:`hyperagents.service` is built on it).

Instance ids are ``"<split>-<index>"``; ``inputs`` is the request, ``target`` the team.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from hyperagents.program import Program
from hyperagents.tasks._base import Instance, Score, short_repr
from hyperagents.tasks._generated import GeneratedTask
from hyperagents.tasks._seeds import seed_files
from hyperagents.tasks.support._data import (
    CATEGORIES,
    CHANNELS,
    HARD_SHARE,
    Request,
    draw_request,
    generate_split,
)

__all__ = ["CATEGORIES", "CHANNELS", "HARD_SHARE", "Request", "SupportTask", "draw_request"]


class SupportTask(GeneratedTask):
    """Route customer requests to a team, with the run's LLM (see the module docstring).

    Options: ``seed`` and the split sizes (see :class:`~hyperagents.tasks.SeededTask`).
    """

    name: ClassVar[str] = "support"
    description: ClassVar[str] = (
        "Route customer support requests to one of six teams, following a routing guide "
        "shipped with the program; the task agent calls the run's LLM (keyword fallback "
        "without one). Exact-match scoring."
    )
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    # One model call per request: a small local model on a CPU takes about a second.
    instance_timeout: ClassVar[float] = 30.0
    default_sizes: ClassVar[tuple[int, int, int] | None] = (60, 40, 40)

    def generate(self, split_index: int, n: int) -> Iterable[tuple[Any, Any]]:
        """The requests and their teams of one split (see the module docstring)."""
        return (
            ({"message": r.message, "channel": r.channel}, r.category)
            for r in generate_split(self.seed, split_index, n)
        )

    def input_features(self) -> dict[str, str]:
        """The input features a service watches for drift: the channel (categorical) and the
        message (text: its length and its vocabulary)."""
        return {"channel": "categorical", "message": "text"}

    def score(self, instance: Instance, output: Any) -> Score:
        """1.0 for the right team, 0.0 for a wrong or malformed answer, with feedback."""
        expected = instance.target
        teams = ", ".join(CATEGORIES)
        if not isinstance(output, str):
            return Score(
                0.0,
                f"invalid output {short_repr(output)} ({type(output).__name__}): expected one of "
                f"{teams} as a string; expected {expected}",
            )
        predicted = output.strip().lower()
        if predicted not in CATEGORIES:
            return Score(
                0.0,
                f"invalid output {short_repr(output)}: expected one of {teams}; "
                f"expected {expected}",
            )
        if predicted == expected:
            return Score(1.0, f"correct: routed to {predicted}")
        return Score(0.0, f"wrong: routed to {predicted}, expected {expected}")

    def seed_program(self) -> Program:
        """The seed hyperagent: the LLM-routing task agent, its guide, the offline meta agent."""
        return Program(seed_files("hyperagents.tasks.support", "seed/task_agent.py", "seed/kb.md"))
