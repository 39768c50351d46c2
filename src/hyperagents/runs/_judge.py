"""The judge of a run's judged task: the task's scorer asks the run's language model, in the
engine, through the run's gateway (see :mod:`hyperagents.tasks._judge`).

Each judge call is a gateway call like any other: recorded into the run's storage (purpose
``judge/...``, scope ``judge``), answered from the record by a replay, costed and held to the
run's budgets (charged to the run, not to a variant: the scorer does not know which variant an
output is from). The same question in one process is asked once (a memo): an output scored
again (the held-out re-check, a repeated stage) gets the same verdict and costs nothing.

A judge that cannot answer stops the run, never fails the candidate: a spent budget raises
``BudgetExhausted``, any other failure (after the gateway's retries, or a replay asked something
its record lacks) ``ModelCutOff`` (both :class:`~hyperagents.exceptions.RunStateError`, which
the engine treats as the run's: it stops, resumable). A request the server rejects as invalid
(HTTP 400/413/422: an output too long for the model's context) is the output's doing: it scores
the minimum (a scorer error) and the run goes on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from hyperagents.exceptions import LLMBudgetExceeded, LLMError, LLMRequestRejected, TaskError
from hyperagents.llm import Gateway
from hyperagents.runs._context import BudgetExhausted, ModelCutOff, RunContext
from hyperagents.tasks import JudgedTask, innermost_task

__all__ = ["JUDGE_SCOPE", "RunJudge", "attach_run_judge"]

#: The scope (and job) of every judge call in a run's record.
JUDGE_SCOPE = "judge"
#: Tokens one verdict may take (YES or NO and a sentence of reason).
JUDGE_MAX_TOKENS = 64
_MEMO_SIZE = 4096


class RunJudge:
    """The judge bound to a gateway: a run's (built on first use), or one of its own for work
    outside a run (``hyperagents test-task --llm``).

    Args:
        gateway_of: Returns the gateway (None: there is no model).
        task_name: The judged task's name (for messages).
        on_budget: Called when the budget is spent (a run marks its model's budget spent).
    """

    def __init__(
        self,
        gateway_of: Callable[[], Gateway | None],
        *,
        task_name: str,
        on_budget: Callable[[], None] | None = None,
    ) -> None:
        self._gateway_of = gateway_of
        self._task_name = task_name
        self._on_budget = on_budget
        self._memo: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, prompt: str, *, purpose: str) -> str:
        """The model's reply to ``prompt``.

        Raises:
            BudgetExhausted: The run's LLM budget is spent.
            ModelCutOff: The run has no model, or the call failed.
            TaskError: The server rejected the request as invalid (the output's doing: it
                scores the minimum, see :meth:`~hyperagents.tasks.Task.checked_score`).
        """
        with self._lock:
            if prompt in self._memo:
                return self._memo[prompt]
        gateway = self._gateway_of()
        if gateway is None:
            raise ModelCutOff(f"task {self._task_name!r} is judged by an LLM, and there is none")
        try:
            completion = gateway.complete(
                [{"role": "user", "content": prompt}],
                purpose=f"judge/{purpose}",
                temperature=0.0,
                max_tokens=JUDGE_MAX_TOKENS,
                scope=JUDGE_SCOPE,
                job=JUDGE_SCOPE,
            )
        except LLMBudgetExceeded as exc:
            if self._on_budget is not None:
                self._on_budget()
            raise BudgetExhausted(f"the run's LLM budget is spent (judging): {exc}") from None
        except LLMRequestRejected as exc:
            # The server is up and refused this request (too long for its context...): the
            # output in it is at fault, so the output scores the minimum (a scorer error).
            raise TaskError(f"the judge's model rejected the request: {exc}") from None
        except LLMError as exc:
            raise ModelCutOff(f"the judge's model failed: {exc}") from None
        with self._lock:
            self._memo[prompt] = completion.text
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)
        return completion.text


def attach_run_judge(ctx: RunContext) -> None:
    """Give the run's judged task (if it is one) its judge, bound to the run's model."""

    def gateway_of() -> Gateway | None:
        llm = ctx.llm
        return None if llm is None else llm.gateway

    def on_budget() -> None:
        if ctx.built_llm is not None:
            ctx.built_llm.budget_exhausted.set()

    judged = innermost_task(ctx.task)  # a wrapped judged task scores with its own judge
    if ctx.task.uses_judge and isinstance(judged, JudgedTask):
        judged.attach_judge(RunJudge(gateway_of, task_name=ctx.task.name, on_budget=on_budget))
