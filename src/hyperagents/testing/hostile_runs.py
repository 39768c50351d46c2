"""Hostile children inside real runs: a candidate's failure is the candidate's, never the run's.

Each :class:`RunCase` is one attack a child makes on the *engine* rather than on the sandbox
(those are :mod:`hyperagents.testing.hostile`): forging the sandbox's own error on the result
channel, sending ``NaN``, JSON nested 100,000 levels deep, returning a list nested 990 levels
deep, leaving a file name that is not UTF-8 or a directory tree 3,000 levels deep, making the
trusted scorer overflow, or lying about its own CPU time. :func:`run_child_case` runs a real
two-generation run whose seed meta agent makes the hostile child at generation 1 and a benign
one at generation 2, and reports what happened: the run must complete, the hostile child must
end in a final state with a recorded reason, the benign one must complete, and no workspace may
be left behind.

The test suite (``tests/sandbox/test_hostile_runs.py``) and the benchmark
(``benchmarks/bench_hostile.py``) both use :data:`RUN_CASES`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hyperagents.program import Program
from hyperagents.runs import RunConfig
from hyperagents.sandbox import WORKSPACE_PREFIXES, Sandbox, workspace_base
from hyperagents.storages import BaseStorage, InMemoryStorage, RunStatus, VariantState
from hyperagents.tasks import Instance, Score, Split, Task

__all__ = [
    "CHAOS_META_AGENT",
    "RUN_CASES",
    "NumberTask",
    "RunCase",
    "RunCaseReport",
    "chaos_run",
    "leftovers",
    "run_child_case",
]

#: A small, quick run: a 2-instance first stage, one retry of work the sandbox broke.
_CONFIG = RunConfig.parse(
    {
        "subset_size": 2,
        "meta_timeout": 60,
        "validate_timeout": 30,
        "eval_overhead": 15,
        "max_retries": 1,
    }
)

#: The benign task agent: answers ``inputs["x"] * 2`` (the task's rule).
BENIGN_AGENT = "def solve(inputs):\n    return inputs['x'] * 2\n"

#: Finds the result channel's descriptor and the instance being solved (both are reachable from
#: agent code: the descriptor is in argv, the instance in the harness's frame).
_FORGE_HELPERS = """import json
import os
import sys


def channel():
    return int(sys.argv[1].split(",")[0])


def current_id():
    frame = sys._getframe(1)
    while frame is not None:
        item = frame.f_locals.get("item")
        if isinstance(item, dict) and "id" in item:
            return item["id"]
        frame = frame.f_back
    return "train-0"


def send(raw):
    os.write(channel(), raw if raw.endswith(b"\\n") else raw + b"\\n")
"""

_META_TEMPLATE = """import os

HOSTILE = {hostile!r}
BENIGN = {benign!r}


def improve(workspace, report):
    if report["generation"] == 1:
{attack}
        return {{"operator": "hostile"}}
    with open(os.path.join(workspace, "task_agent.py"), "w") as handle:
        handle.write(BENIGN)
    return {{"operator": "benign"}}
"""

_WRITE_HOSTILE = """        with open(os.path.join(workspace, "task_agent.py"), "w") as handle:
            handle.write(HOSTILE)"""


@dataclass(frozen=True)
class RunCase:
    """One attack on the engine by a child.

    Attributes:
        name: Short identifier.
        issue: The item of the reliability issue it reproduces.
        description: What the child does.
        task_agent: Source of the hostile task agent written at generation 1 (None when the
            attack is made by the meta agent itself).
        meta_attack: Indented statements run by the meta agent at generation 1 instead of
            writing ``task_agent`` (``workspace`` is the workspace path).
        reason: A substring the hostile child's recorded reason (or failing instances'
            errors) must contain.
    """

    name: str
    issue: str
    description: str
    task_agent: str | None = None
    meta_attack: str | None = None
    reason: str = ""

    def meta_agent(self) -> str:
        """Source of the seed meta agent that makes this case's children."""
        attack = self.meta_attack if self.meta_attack is not None else _WRITE_HOSTILE
        return _META_TEMPLATE.format(
            hostile=self.task_agent or "", benign=BENIGN_AGENT, attack=attack
        )


def _agent(body: str) -> str:
    return _FORGE_HELPERS + "\n\n" + body


RUN_CASES: dict[str, RunCase] = {
    case.name: case
    for case in (
        RunCase(
            "forged_isolation_error",
            "1",
            "writes the sandbox's own isolation error to the result channel, then exits 3",
            task_agent=_agent(
                "def solve(inputs):\n"
                "    forged = {'type': 'error', 'kind': 'isolation', 'error': 'cannot isolate'}\n"
                "    send(json.dumps(forged).encode())\n"
                '    send(b\'{"type": "isolation", "network": true, "user": 0}\')\n'
                "    os._exit(3)\n"
            ),
            reason="cannot isolate",
        ),
        RunCase(
            "forged_isolation_every_fd",
            "1",
            "sprays a forged isolation error on every open descriptor (looking for the status "
            "pipe), then raises",
            task_agent=_agent(
                "def solve(inputs):\n"
                '    forged = b\'{"type": "error", "kind": "isolation", "error": "x"}\\n\'\n'
                "    for fd in range(3, 256):\n"
                "        try:\n"
                "            os.write(fd, forged)\n"
                "        except OSError:\n"
                "            pass\n"
                "    raise RuntimeError('sprayed')\n"
            ),
            reason="sprayed",
        ),
        RunCase(
            "forged_isolation_by_meta_agent",
            "1",
            "the meta agent forges the isolation error on its own result channel",
            meta_attack=(
                "        import sys\n"
                "        fd = int(sys.argv[1].split(',')[0])\n"
                '        os.write(fd, b\'{"type": "error", "kind": "isolation", '
                '"error": "forged"}\\n\')\n'
                "        os._exit(3)"
            ),
            reason="meta agent failed",
        ),
        RunCase(
            "nan_output",
            "2",
            "writes an instance output of NaN (and Infinity) straight to the channel",
            task_agent=_agent(
                "def solve(inputs):\n"
                "    ident = json.dumps(current_id())\n"
                '    send((\'{"type": "instance", "id": %s, "output": NaN, "wall": NaN, \'\n'
                '          \'"cpu": Infinity, "error": null}\' % ident).encode())\n'
                '    send(b\'{"type": "result", "value": -Infinity}\')\n'
                '    send(b\'{"type": "result", "value": 1e999}\')\n'
                "    os._exit(0)\n"
            ),
            reason="not a valid JSON number",
        ),
        RunCase(
            "lone_surrogate_output",
            "2",
            "returns a string holding a lone surrogate (JSON can spell it; UTF-8 columns cannot)",
            task_agent="def solve(inputs):\n    return 'bad \\udcff'\n",
            reason="lone surrogate",
        ),
        RunCase(
            "lone_surrogate_meta_info",
            "2",
            "the meta agent reports what it did with a lone surrogate in a key",
            meta_attack="        return {'\\ud83d': 'x'}",
            reason="lone surrogate",
        ),
        RunCase(
            "deep_line",
            "3",
            "writes one JSON line nested 100,000 levels deep",
            task_agent=_agent(
                "def solve(inputs):\n"
                "    send(b'{\"type\": \"result\", \"value\": ' + b'[' * 100000 + b']' * 100000"
                " + b'}')\n"
                "    os._exit(0)\n"
            ),
            reason="nested deeper than",
        ),
        RunCase(
            "deep_return",
            "4",
            "returns a list nested 990 levels deep",
            task_agent=(
                "def solve(inputs):\n"
                "    value = []\n"
                "    for _ in range(990):\n"
                "        value = [value]\n"
                "    return value\n"
            ),
            reason="",
        ),
        RunCase(
            "non_utf8_file_name",
            "5",
            "the meta agent leaves a file whose name is not valid UTF-8",
            meta_attack=(
                "        fd = os.open(os.fsencode(workspace) + b'/bad-\\xff\\xfe.py', "
                "os.O_WRONLY | os.O_CREAT, 0o644)\n"
                "        os.write(fd, b'x = 1\\n')\n"
                "        os.close(fd)"
            ),
            reason="not valid UTF-8",
        ),
        RunCase(
            "odd_file_names",
            "15",
            "the meta agent leaves file names with a newline and a right-to-left override",
            meta_attack=(
                "        for name in ('evil\\nname.py', 'cod\\u202eyp.py'):\n"
                "            with open(os.path.join(workspace, name), 'w') as handle:\n"
                "                handle.write('x = 1\\n')"
            ),
            reason="control or format character",
        ),
        RunCase(
            "deep_tree",
            "6",
            "the meta agent leaves a directory tree 3,000 levels deep with 8 MiB in it",
            meta_attack=(
                "        here = os.getcwd()\n"
                "        os.chdir(workspace)\n"
                "        for _ in range(3000):\n"
                "            os.mkdir('d')\n"
                "            os.chdir('d')\n"
                "        with open('payload.bin', 'wb') as handle:\n"
                "            handle.write(b'x' * (8 << 20))\n"
                "        os.chmod('.', 0)\n"
                "        os.chdir(here)"
            ),
            reason="deeper than",
        ),
        RunCase(
            "package_shadow",
            "11",
            "the meta agent keeps a harmless task_agent.py and adds a task_agent/ package that "
            "calls exec (Python would import the package)",
            meta_attack=(
                "        package = os.path.join(workspace, 'task_agent')\n"
                "        os.mkdir(package)\n"
                "        with open(os.path.join(package, '__init__.py'), 'w') as f:\n"
                "            f.write(\"exec('def solve(inputs):\\\\n    return 1')\\n\")"
            ),
            reason="a package shadows the module",
        ),
        RunCase(
            "scorer_overflow",
            "7",
            "returns 10**400, on which the trusted scorer's float() overflows",
            task_agent="def solve(inputs):\n    return 10 ** 400\n",
            reason="scorer error",
        ),
        RunCase(
            "forged_usage",
            "15",
            "busy for 0.3 s per instance while claiming 0 s of wall and CPU time",
            task_agent=_agent(
                "import time\n\n\n"
                "def solve(inputs):\n"
                "    start = time.process_time()\n"
                "    while time.process_time() - start < 0.3:\n"
                "        pass\n"
                "    ident = json.dumps(current_id())\n"
                '    send((\'{"type": "instance", "id": %s, "output": %s, "wall": 0, \'\n'
                "          '\"cpu\": 0, \"error\": null}' % (ident, inputs['x'] * 2)).encode())\n"
                "    return inputs['x'] * 2\n"
            ),
            reason="",
        ),
    )
}

#: A meta agent that fuzzes the engine: seeded by its report, it writes random bytes, JSON nested
#: at random depths, huge lines and random message types to its result channel, leaves files with
#: random byte names and deep trees in its workspace, and writes a task agent that does the same
#: while it is evaluated (and returns random, deep or non-finite values); it may exit anywhere.
CHAOS_META_AGENT = r'''import os
import random
import sys

CHAOS_TASK_AGENT = r"""import os
import random
import sys

CHOICE = CHOICE_VALUE


def _garbage(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
    if kind == 1:
        depth = rng.choice([10, 70, 5000, 200000])
        head = b'{"type": "instance", "id": "train-0", "output": '
        return head + b"[" * depth + b"]" * depth + b"}"
    if kind == 2:
        kind = rng.choice([b"result", b"error", b"isolation", b"instance"])
        return b'{"type": "' + kind + b'", "value": NaN, "kind": "isolation", "id": "train-1"}'
    if kind == 3:
        return b'{"type": "result", "value": "' + b"x" * rng.randrange(1, 3 << 20) + b'"}'
    if kind == 4:
        ident = str(rng.randrange(-5, 5)).encode()
        return b'{"type": "llm_request", "id": ' + ident + b', "messages": [[["y"]]]}'
    return b"\n" * rng.randrange(1, 50)


def solve(inputs):
    rng = random.Random(CHOICE * 1000 + int(inputs.get("x", 0)))
    fd = int(sys.argv[1].split(",")[0])
    for _ in range(rng.randrange(4)):
        try:
            os.write(fd, _garbage(rng) + rng.choice([b"\n", b"-"]))
        except OSError:
            pass
    pick = rng.randrange(8)
    if pick == 0:
        os._exit(rng.choice([0, 1, 3, 137]))
    if pick == 1:
        value = []
        for _ in range(rng.choice([50, 900, 990])):
            value = [value]
        return value
    if pick == 2:
        return rng.choice([float("nan"), float("inf"), 10 ** 400, -(10 ** 300)])
    if pick == 3:
        return "\x1b]0;title\x07\u202e" * rng.randrange(1, 1000)
    if pick == 4:
        return {"k" * rng.randrange(1, 100): [inputs] * rng.randrange(100)}
    return inputs.get("x", 0) * 2
"""


def _odd_name(rng):
    allowed = [c for c in range(1, 256) if c != 47]
    name = bytes(rng.choice(allowed) for _ in range(rng.randrange(1, 40)))
    return name if name not in (b".", b"..") else b"dot"


def improve(workspace, report):
    rng = random.Random(report["seed"])
    fd = int(sys.argv[1].split(",")[0])
    root = os.fsencode(workspace)
    source = CHAOS_TASK_AGENT.replace("CHOICE_VALUE", str(rng.randrange(10 ** 6)))
    with open(os.path.join(workspace, "task_agent.py"), "w") as handle:
        handle.write(source)
    for _ in range(rng.randrange(3)):
        try:
            os.write(fd, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000))) + b"\n")
        except OSError:
            pass
    if rng.random() < 0.3:
        for _ in range(rng.randrange(1, 5)):
            try:
                with open(root + b"/" + _odd_name(rng), "wb") as handle:
                    handle.write(b"x")
            except OSError:
                pass
    if rng.random() < 0.2:
        here = os.getcwd()
        os.chdir(workspace)
        for _ in range(rng.choice([40, 1500])):
            os.mkdir("t")
            os.chdir("t")
        os.chdir(here)
    if rng.random() < 0.1:
        os._exit(rng.choice([0, 2, 3]))
    if rng.random() < 0.1:
        return float("nan")
    return {"operator": "chaos", "depth": [[[[]]]]}
'''


def chaos_run(
    *, generations: int, seed: int = 0, sandbox: Sandbox | str = "auto", workers: int = 1
) -> tuple[Any, list[str]]:
    """A real run of the :data:`CHAOS_META_AGENT`; returns ``(run, leftover workspaces)``."""
    from hyperagents.runs import Run

    before = leftovers()
    run = Run.create(
        task=NumberTask(CHAOS_META_AGENT),
        seed=seed,
        storage=InMemoryStorage(),
        config=_CONFIG.model_copy(
            update={"sandbox": sandbox if isinstance(sandbox, str) else "auto"}
        ),
        sandbox=None if isinstance(sandbox, str) else sandbox,
    )
    run.optimize(generations=generations, workers=workers)
    return run, sorted(leftovers() - before)


class NumberTask(Task):
    """Answer ``2 * x``; the score is ``1 / (1 + |float(output) - 2x|)``, so a number too large
    for a float makes this trusted scorer raise ``OverflowError``."""

    name = "number"
    description = "Double the number (hostile-run checks)."
    score_range = (0.0, 1.0)
    instance_timeout = 5.0

    def __init__(self, meta_agent: str, *, n: int = 4) -> None:
        self._meta_agent = meta_agent
        self._instances = {
            split: [Instance(f"{split.value}-{k}", {"x": k}, 2 * k) for k in range(n)]
            for split in Split
        }

    def instances(self, split: Split) -> Sequence[Instance]:
        return list(self._instances[Split(split)])

    def score(self, instance: Instance, output: Any) -> Score:
        if isinstance(output, bool) or not isinstance(output, int | float):
            return Score(0.0, f"not a number: {output!r}"[:200])
        error = abs(float(output) - float(instance.target))
        return Score(1.0 / (1.0 + error), f"off by {error:g}")

    def seed_program(self) -> Program:
        return Program(
            {
                "task_agent.py": "def solve(inputs):\n    return 0\n",
                "meta_agent.py": self._meta_agent,
            }
        )


def leftovers(base: str | None = None) -> set[str]:
    """Names of this process's workspaces in the workspace directory (and the temporary one)."""
    found: set[str] = set()
    marks = tuple(f"{prefix}{os.getpid()}-" for prefix in WORKSPACE_PREFIXES)
    for root in {base or workspace_base() or tempfile.gettempdir(), tempfile.gettempdir()}:
        try:
            names = os.listdir(root)
        except OSError:
            continue
        found.update(os.path.join(root, n) for n in names if n.startswith(marks))
    return found


@dataclass
class RunCaseReport:
    """What one :class:`RunCase` did to a real run."""

    case: str
    run_status: str
    run_message: str
    hostile_state: str
    hostile_reason: str
    hostile_errors: list[str]
    benign_state: str
    leftovers: list[str]
    seconds: float
    instance_walls: list[float]

    @property
    def contained(self) -> bool:
        """The run completed, the hostile child is final, the benign one complete, nothing left."""
        return (
            self.run_status == RunStatus.COMPLETE.name
            and self.hostile_state in {s.name for s in VariantState if s.is_terminal}
            and self.benign_state == VariantState.COMPLETE.name
            and not self.leftovers
        )

    def recorded(self) -> str:
        """Everything recorded about the hostile child (reason and instance errors)."""
        return " | ".join([self.hostile_reason, *self.hostile_errors])


def run_child_case(
    case: RunCase,
    *,
    sandbox: Sandbox | str = "auto",
    storage: BaseStorage | None = None,
) -> RunCaseReport:
    """Run ``case`` through a real two-generation run and report what happened."""
    from hyperagents.runs import Run

    before = leftovers()
    start = time.perf_counter()
    run = Run.create(
        task=NumberTask(case.meta_agent()),
        storage=storage or InMemoryStorage(),
        config=_CONFIG.model_copy(
            update={"sandbox": sandbox if isinstance(sandbox, str) else "auto"}
        ),
        sandbox=None if isinstance(sandbox, str) else sandbox,
    )
    record = run.optimize(generations=2)
    seconds = time.perf_counter() - start
    variants = {v.generation: v for v in run.variants()}
    hostile, benign = variants[1], variants[2]
    errors: list[str] = []
    walls: list[float] = []
    for evaluation in run.storage.list_evaluations(hostile.id):
        for result in evaluation.results:
            if result.get("error"):
                errors.append(str(result["error"]))
            if isinstance(result.get("wall"), int | float):
                walls.append(float(result["wall"]))
    return RunCaseReport(
        case=case.name,
        run_status=record.status.name,
        run_message=run.last_stop_reason or "",
        hostile_state=hostile.state.name,
        hostile_reason=hostile.reason or "",
        hostile_errors=sorted(set(errors)),
        benign_state=benign.state.name,
        leftovers=sorted(leftovers() - before),
        seconds=seconds,
        instance_walls=walls,
    )
