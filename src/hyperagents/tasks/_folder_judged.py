"""Judged seed-format task folders (``USES_LLM_JUDGE = True``): the benchmark prints
``answers: JSON`` and the run's LLM judges them in the engine (see :mod:`hyperagents.tasks._judge`).

What such a folder's ``config.py`` may hold besides the usual settings:

* ``RUBRIC`` (needed when ``USES_RUBRIC = True``): the facts a good answer states, each a string
  (weight 1) or ``{"fact": str, "weight": number}``. Either one list for every answer, or a
  list of such lists, one per answer in the benchmark's order.
* ``JUDGE_CONTEXT`` (optional): what the answers respond to, shown to the judge: one string for
  every answer, or a list with one per answer. Default: the task's prompt.

Without ``USES_RUBRIC`` each answer is judged on one fact: that it does what the task's prompt
asks. The benchmark must print ``answers:`` followed by a JSON list (read with bounds on size
and depth; an answer that is not a string is judged as its JSON text). The score is the mean,
over the answers, of the share of each rubric's weight the judge confirms, in ``[0, 1]``
(``PERFECT_SCORE`` as given); no ``answers:`` line, a malformed one, or a count of answers that
does not match a per-answer rubric scores 0 with the reason. The judge runs in the engine after
the sandboxed benchmark has ended: the solution never reaches it, and neither the rubric nor
the judge's replies enter the sandbox (the benchmark has its own copy of ``config.py``, which
it may read: the seed format has no hidden data).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from hyperagents.exceptions import ConfigError, TaskError
from hyperagents.sandbox import InvalidMessage, loads_bounded
from hyperagents.tasks._base import Score
from hyperagents.tasks._folder import FolderTask
from hyperagents.tasks._judge import Fact, JudgedTask, judge_rubric, parse_rubric

__all__ = ["JudgedFolderTask", "JudgedSettings", "judged_settings"]

#: Answers one benchmark run may print for judging.
MAX_ANSWERS = 200
#: Characters of one answer shown to the judge.
MAX_ANSWER_CHARS = 8000


@dataclass(frozen=True)
class JudgedSettings:
    """How a judged folder's answers are judged.

    Attributes:
        rubrics: One rubric for every answer (a single entry) or one per answer.
        contexts: One context for every answer (a single entry) or one per answer.
        per_answer: Whether ``rubrics`` has one entry per answer.
    """

    rubrics: tuple[tuple[Fact, ...], ...]
    contexts: tuple[str, ...]
    per_answer: bool


def judged_settings(config: Any, folder: Path, prompt: str) -> JudgedSettings:
    """The judging settings of a judged folder's ``config.py`` (see the module docstring).

    Raises:
        TaskError: ``USES_RUBRIC`` without a ``RUBRIC``, or a malformed ``RUBRIC`` or
            ``JUDGE_CONTEXT`` (the message names the file and the fault).
    """
    where = f"{folder / 'config.py'}"
    raw = getattr(config, "RUBRIC", None)
    if raw is None and getattr(config, "USES_RUBRIC", False):
        raise TaskError(f"{where}: USES_RUBRIC = True but no RUBRIC (a list of facts) is defined")
    try:
        if raw is None:
            ask = prompt.strip() or "the task"
            rubrics: tuple[tuple[Fact, ...], ...] = (
                (Fact(f"The answer does well what this task asks: {ask}"[:500]),),
            )
            per_answer = False
        elif isinstance(raw, list | tuple) and raw and all(isinstance(r, list) for r in raw):
            rubrics = tuple(parse_rubric(r, f"{where}: RUBRIC[{k}]") for k, r in enumerate(raw))
            per_answer = True
        else:
            rubrics, per_answer = (parse_rubric(list(raw), f"{where}: RUBRIC"),), False
    except (ConfigError, TypeError) as exc:
        raise TaskError(str(exc)) from None
    context = getattr(config, "JUDGE_CONTEXT", None)
    if context is None:
        contexts: tuple[str, ...] = (prompt,)
    elif isinstance(context, str):
        contexts = (context,)
    elif isinstance(context, list | tuple) and all(isinstance(c, str) for c in context):
        contexts = tuple(context)
    else:
        raise TaskError(f"{where}: JUDGE_CONTEXT must be a string or a list of strings")
    return JudgedSettings(rubrics, contexts, per_answer)


class JudgedFolderTask(FolderTask, JudgedTask):
    """A judged seed-format folder; made by :func:`~hyperagents.tasks.folder_task_class`.

    Options: those of :class:`FolderTask` (``metric_min``/``metric_max`` do not apply: the
    score is in ``[0, 1]``).
    """

    judged: ClassVar[JudgedSettings] = JudgedSettings((), (), False)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.score_range = (0.0, 1.0)  # type: ignore[misc]

    def _verdict(self, result: dict[str, Any]) -> Score:
        """The judged score of a verified benchmark result (floor with the reason when the
        benchmark failed or printed no answers)."""
        if result.get("error") or result.get("exit"):
            return super()._verdict(result)
        raw = result.get("answers")
        if raw is None:
            tail = str(result.get("tail", ""))[-1500:]
            return self._floor(f"benchmark.py printed no 'answers:' line; its output:\n{tail}")
        try:
            answers = loads_bounded(str(raw), max_depth=16)
        except InvalidMessage as exc:
            return self._floor(f"benchmark.py printed answers that are not JSON: {exc}")
        if not isinstance(answers, list) or not 0 < len(answers) <= MAX_ANSWERS:
            return self._floor(f"expected a list of 1..{MAX_ANSWERS} answers after 'answers:'")
        settings = self.judged
        if settings.per_answer and len(answers) != len(settings.rubrics):
            return self._floor(
                f"{len(answers)} answers, but RUBRIC has one rubric for each of "
                f"{len(settings.rubrics)} answers"
            )
        values, notes = [], []
        for k, answer in enumerate(answers):
            text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
            rubric = settings.rubrics[k if settings.per_answer else 0]
            context = settings.contexts[k if len(settings.contexts) > 1 else 0]
            value, feedback = judge_rubric(self.judge, context, text[:MAX_ANSWER_CHARS], rubric)
            values.append(value)
            notes.append(f"answer {k}: {feedback}")
        score = math.fsum(values) / len(values)
        shown = "\n".join(notes)[-3000:]
        return Score(score, f"{self.metric_name} = {score:.4f} (judged)\n{shown}")
