"""A tiny, fast task for engine and CLI tests (not a pytest module).

Instances are numbers x in [0, 1]; the hidden rule is "hi" iff x > 0.63. The seed task agent
thresholds at ``PARAMS["t"]``; the toy meta agent moves the threshold by a random step and
shrinks its own ``STEP`` constant in its own source each time (a self-edit).
"""

from __future__ import annotations

import random
from typing import Any

from hyperagents.program import Program
from hyperagents.tasks import Instance, Score, Split, Task

TASK_AGENT = """PARAMS = {"t": 0.2}


def solve(inputs):
    return "hi" if inputs["x"] > PARAMS["t"] else "lo"
"""

META_AGENT = """import json
import random
import re

STEP = 0.3


def improve(workspace, report):
    rng = random.Random(report["seed"])
    path = workspace + "/task_agent.py"
    source = open(path).read()
    t = float(re.search(r'"t": ([0-9.eE+-]+)', source).group(1))
    new = min(1.0, max(0.0, round(t + rng.uniform(-STEP, STEP), 4)))
    if new == t:
        new = round(min(1.0, t + 0.01), 4)
    open(path, "w").write(source.replace(f'"t": {t}', f'"t": {new}'))
    me = workspace + "/meta_agent.py"
    text = open(me).read()
    open(me, "w").write(text.replace(f"STEP = {STEP}", f"STEP = {round(STEP * 0.9, 6)}", 1))
    return {"operator": "step", "t": [t, new], "step": STEP}
"""


class ToyTask(Task):
    """Threshold classification with a hidden cut at 0.63."""

    name = "toy"
    description = "Say 'hi' for numbers above a hidden threshold."
    score_range = (0.0, 1.0)
    instance_timeout = 5.0

    def __init__(
        self,
        *,
        meta_agent: str = META_AGENT,
        task_agent: str = TASK_AGENT,
        extra: dict[str, str] | None = None,
        sizes: tuple[int, int, int] = (40, 20, 20),
        seed: int = 0,
    ) -> None:
        rng = random.Random(seed)
        self._files = {"task_agent.py": task_agent, "meta_agent.py": meta_agent, **(extra or {})}
        self._splits: dict[Split, list[Instance]] = {}
        for split, size in zip(Split, sizes, strict=True):
            xs = [round(rng.random(), 4) for _ in range(size)]
            self._splits[split] = [
                Instance(f"{split.value}-{k}", {"x": x}, "hi" if x > 0.63 else "lo")
                for k, x in enumerate(xs)
            ]

    def instances(self, split: Split) -> list[Instance]:
        return self._splits[Split(split)]

    def score(self, instance: Instance, output: Any) -> Score:
        if output not in ("hi", "lo"):
            return Score(0.0, f"invalid output {output!r}")
        ok = output == instance.target
        return Score(
            1.0 if ok else 0.0,
            "correct" if ok else f"predicted {output}, expected {instance.target}",
        )

    def seed_program(self) -> Program:
        return Program(self._files)

    def holdout_instances(self, seed: int) -> list[Instance]:
        rng = random.Random(f"toy-holdout-{seed}")
        xs = [round(rng.random(), 4) for _ in range(len(self._splits[Split.VAL]))]
        return [
            Instance(f"holdout-{k}", {"x": x}, "hi" if x > 0.63 else "lo") for k, x in enumerate(xs)
        ]


#: The toy task agent with a declared search space, so that the built-in offline meta agent
#: (which edits ``PARAMS`` within ``PARAM_SPACE`` and records its own strategy) can work on it.
TUNABLE_TASK_AGENT = """PARAMS = {"t": 0.2}
PARAM_SPACE = {"t": {"type": "float", "low": 0.0, "high": 1.0}}


def solve(inputs):
    return "hi" if inputs["x"] > PARAMS["t"] else "lo"
"""


LLM_META_AGENT = """import re

import llm


def improve(workspace, report):
    path = workspace + "/task_agent.py"
    source = open(path).read()
    t = float(re.search(r'"t": ([0-9.eE+-]+)', source).group(1))
    reply = llm.complete(f"The threshold is {t}. Reply with a better one.", purpose="propose")
    new = round(float(reply.strip()), 4)
    open(path, "w").write(source.replace(f'"t": {t}', f'"t": {new}'))
    return {"operator": "llm", "t": [t, new]}
"""


class LLMToyTask(ToyTask):
    """The toy task with a meta agent that asks the run's language model for each edit."""

    name = "llm-toy"

    def __init__(self) -> None:
        super().__init__(meta_agent=LLM_META_AGENT)


#: Seconds the slow toy meta agent sleeps on generation 2: long enough for a test to see that
#: generation at work and act on it (a command line started on a loaded machine can take
#: seconds) before it ends.
SLOW_META_SECONDS = 30

#: The toy meta agent, slow on generation 2 (it sleeps there): work that is in flight long
#: enough to stop a run in the middle of it.
SLOW_META_AGENT = META_AGENT.replace(
    "def improve(workspace, report):\n",
    "def improve(workspace, report):\n"
    '    if report["generation"] == 2:\n'
    "        import time\n\n"
    f"        time.sleep({SLOW_META_SECONDS})\n",
)


class SlowMetaToyTask(ToyTask):
    """The toy task whose meta agent takes :data:`SLOW_META_SECONDS` on generation 2."""

    name = "toy-slow"

    def __init__(self) -> None:
        super().__init__(meta_agent=SLOW_META_AGENT)


class CountingSandbox:
    """Delegates to a sandbox and keeps every request it was given (to count the sandboxed
    runs a run makes, and see what each was asked)."""

    name = "counting"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests: list[dict[str, Any]] = []

    def run(self, workspace: Any, request: dict[str, Any], **kwargs: Any) -> Any:
        self.requests.append(request)
        return self.inner.run(workspace, request, **kwargs)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
