"""The ``summaries`` task: summarise short news paragraphs; scored by an LLM judge with a rubric.

Each instance is one paragraph; ``inputs`` is ``{"text": str, "max_words": int}`` and the task
agent's ``solve(inputs)`` returns a summary (a string). Scoring (trusted, in the engine): a
summary that is not text, is empty, longer than ``max_words`` words or 1000 characters scores 0
(a copy of the text is no summary); otherwise the run's judge is asked, fact by fact, whether
the summary states each fact of the instance's rubric, and the score is the weight of the facts
confirmed over the rubric's total (see :mod:`hyperagents.tasks._judge`). Feedback names the
facts missed. The agent never sees a rubric.

The task needs the run's language model (``--llm``): a run without one is refused at creation.
Its 12 paragraphs are dealt by position: 4 train, 4 val, 4 test. The option ``rubric`` names a
JSON file ``{instance id: [{"fact", "weight"}, ...]}`` (e.g. drafted by ``hyperagents rubric
draft`` and reviewed) whose rubrics replace the built-in ones for the ids it holds.

The seed agent keeps the first sentence(s) of the paragraph; its ``PARAMS`` choose how many and
which (the lead, or those with numbers and names first).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.tasks._base import Instance, Score, Split, short_repr
from hyperagents.tasks._judge import Fact, JudgedTask, judge_rubric, parse_rubric
from hyperagents.tasks._seeds import seed_files
from hyperagents.tasks.summaries._data import TEXTS, rubric_data

__all__ = ["SummariesTask", "rubric_data"]

_SPLITS = (Split.TRAIN, Split.VAL, Split.TEST)
#: Words a summary may have, and characters (what reaches the judge is bounded).
MAX_WORDS = 30
MAX_CHARS = 1000


class SummariesTask(JudgedTask):
    """Summaries judged by the run's LLM against weighted facts (see the module docstring).

    Args:
        rubric: A JSON file of rubrics by instance id (None: the built-in rubrics).

    Raises:
        ConfigError: The rubric file cannot be read, names unknown ids or holds a bad rubric.
    """

    name: ClassVar[str] = "summaries"
    description: ClassVar[str] = (
        "Summarise short news paragraphs in at most 30 words; scored by the run's LLM judging "
        "a rubric of weighted facts (needs --llm)."
    )
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    instance_timeout: ClassVar[float] = 5.0
    target_score: ClassVar[float | None] = 1.0

    def __init__(self, *, rubric: str | None = None) -> None:
        self.rubric_path = rubric
        self._overrides = {} if rubric is None else _read_rubrics(Path(rubric))
        known = {inst.id for split in Split for inst in self.instances(split)}
        unknown = sorted(set(self._overrides) - known)
        if unknown:
            raise ConfigError(f"rubric file {rubric}: unknown instance ids {', '.join(unknown)}")

    @cached_property
    def _splits(self) -> dict[Split, list[Instance]]:
        splits: dict[Split, list[Instance]] = {split: [] for split in Split}
        for k, (text, facts) in enumerate(TEXTS):
            split = _SPLITS[k % 3]
            ident = f"{split.value}-{k:02d}"
            rubric = self._overrides.get(ident) or tuple(Fact(t, w) for t, w in facts)
            inputs = {"text": text, "max_words": MAX_WORDS}
            splits[split].append(Instance(ident, inputs, rubric))
        return splits

    def instances(self, split: Split) -> Sequence[Instance]:
        """The paragraphs of ``split``."""
        return self._splits[Split(split)]

    def rubrics(self) -> Mapping[str, tuple[Fact, ...]]:
        """Each instance's rubric (the file's where it has one)."""
        return {inst.id: inst.target for split in Split for inst in self.instances(split)}

    def score(self, instance: Instance, output: Any) -> Score:
        """0 for a malformed or too long summary; else the judged share of the rubric."""
        limit = int(instance.inputs["max_words"])
        if not isinstance(output, str) or not output.strip():
            return Score(0.0, f"invalid output {short_repr(output, 60)}: expected a summary")
        words = len(output.split())
        if len(output) > MAX_CHARS:
            return Score(0.0, f"{len(output)} characters: a summary has at most {MAX_CHARS}")
        if words > limit:
            return Score(0.0, f"{words} words: a summary has at most {limit}")
        context = f"Summarise in at most {limit} words:\n{instance.inputs['text']}"
        value, feedback = judge_rubric(self.judge, context, output, instance.target)
        return Score(value, f"{feedback}; summary: {short_repr(output, 200)}")

    def seed_program(self) -> Program:
        """The seed hyperagent: the lead sentence, and the offline meta agent."""
        return Program(seed_files("hyperagents.tasks.summaries", "seed/task_agent.py"))


def _read_rubrics(path: Path) -> dict[str, tuple[Fact, ...]]:
    """The rubrics of a file written like ``rubric draft`` writes them."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the rubric file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"rubric file {path}: expected {{instance id: [facts]}}")
    rubrics = data.get("rubrics", data) if isinstance(data.get("rubrics"), dict) else data
    return {str(k): parse_rubric(v, f"rubric file {path}, {k}") for k, v in rubrics.items()}
