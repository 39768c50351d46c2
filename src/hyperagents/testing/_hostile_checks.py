"""The host side of each hostile case: what a case sets up before it runs, and the evidence of a
breach looked for afterwards (a connection received, a secret read, a file written outside the
workspace, the scoring function replaced…), with :class:`ParityTask`, the trusted scorer of the
scoring cases. Private to :mod:`hyperagents.testing`; the catalogue
(:mod:`hyperagents.testing._hostile_catalogue`) pairs these with the attacks.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import select
import socket
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyperagents.program import Program
from hyperagents.sandbox import SandboxResult
from hyperagents.tasks import Instance, Score, Split, Task
from hyperagents.testing._hostile_types import CaseContext, instance_outputs

__all__ = [
    "ParityTask",
    "fork_bomb_counts",
    "observe_db",
    "observe_external",
    "observe_fill",
    "observe_fork_bomb",
    "observe_home",
    "observe_labels_file",
    "observe_labels_import",
    "observe_listener",
    "observe_namespaces",
    "observe_outside",
    "observe_read",
    "observe_score",
    "observe_sentinel",
    "setup_db",
    "setup_home",
    "setup_labels_file",
    "setup_listener",
    "setup_outside",
    "setup_score",
    "setup_sentinel",
    "setup_shadow",
]


# -- a tiny trusted task for the scoring cases ----------------------------------------------------
class ParityTask(Task):
    """Say ``"even"`` or ``"odd"`` for ``inputs["n"]``: a trusted scorer for the scoring cases."""

    name = "parity"
    description = "Parity of small numbers (hostile-case checks)."
    instance_timeout = 10.0  # the scored cases answer at once: ample on a loaded machine

    def __init__(self, n: int = 4) -> None:
        self._instances = [
            Instance(f"train-{k}", {"n": k}, "even" if k % 2 == 0 else "odd") for k in range(n)
        ]

    def instances(self, split: Split) -> Sequence[Instance]:
        return list(self._instances)

    def score(self, instance: Instance, output: Any) -> Score:
        ok = output == instance.target
        return Score(1.0 if ok else 0.0, "correct" if ok else f"expected {instance.target}")

    def seed_program(self) -> Program:
        return Program({"task_agent.py": "def solve(inputs):\n    return 'even'\n"})


def setup_listener(ctx: CaseContext) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    ctx.state["listener"] = listener
    ctx.params["port"] = str(listener.getsockname()[1])
    ctx.cleanups.append(listener.close)


def observe_listener(ctx: CaseContext, result: SandboxResult) -> list[str]:
    listener: socket.socket = ctx.state["listener"]
    readable, _, _ = select.select([listener], [], [], 0.2)
    breaches = []
    if readable:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            conn.close()
        breaches.append("the listener on 127.0.0.1 received a connection")
    if "connected" in instance_outputs(result):
        breaches.append("the agent reports it connected")
    return breaches


def observe_external(ctx: CaseContext, result: SandboxResult) -> list[str]:
    outputs = instance_outputs(result)
    return ["the agent reports it connected to 192.0.2.1"] if "connected" in outputs else []


def observe_read(ctx: CaseContext, result: SandboxResult) -> list[str]:
    """The agent returns {"read": bytes read} when it could read the secret."""
    for output in instance_outputs(result):
        if isinstance(output, dict) and output.get("read"):
            return [f"read {output['read']} bytes of {ctx.state.get('what', 'a secret')}"]
    return []


def setup_shadow(ctx: CaseContext) -> None:
    ctx.state["what"] = "/etc/shadow"


def _interpreter_entries(home: Path) -> set[str]:
    """Names directly under ``home`` that the sandbox must show for the interpreter to work."""
    names = set()
    for path in {sys.prefix, sys.base_prefix, os.path.dirname(sys.executable)}:
        real = Path(os.path.realpath(path))
        with contextlib.suppress(ValueError):
            names.add(real.relative_to(home.resolve()).parts[0])
    return names


def setup_home(ctx: CaseContext) -> None:
    home = Path(os.path.expanduser("~"))
    ctx.params["home"] = str(home)
    ctx.state["home"] = home
    canary = home / f".hyperagents-canary-{ctx.token}"
    secret = uuid.uuid4().hex
    try:
        canary.write_text(secret)
        ctx.cleanups.append(lambda: canary.unlink(missing_ok=True))
        ctx.state["secret"] = secret
    except OSError:  # read-only home: the listing check alone
        pass
    ctx.params["canary"] = canary.name


def observe_home(ctx: CaseContext, result: SandboxResult) -> list[str]:
    breaches = []
    allowed = _interpreter_entries(ctx.state["home"])
    for output in instance_outputs(result):
        if not isinstance(output, dict):
            continue
        extra = set(output.get("listing") or []) - allowed
        if extra:
            breaches.append(f"listed {len(extra)} entries of the engine's home directory")
        secret = ctx.state.get("secret")
        if secret and output.get("canary_sha") == hashlib.sha256(secret.encode()).hexdigest():
            breaches.append("read a file planted in the engine's home directory")
    return breaches


def setup_db(ctx: CaseContext) -> None:
    from hyperagents.storages import get_storage

    path = ctx.directory / "run.db"
    storage = get_storage(f"sqlite:///{path}")
    storage.close()
    ctx.params["db"] = str(path)
    ctx.state["what"] = "the run database"


def observe_db(ctx: CaseContext, result: SandboxResult) -> list[str]:
    for output in instance_outputs(result):
        if isinstance(output, dict) and str(output.get("header", "")).startswith("SQLite format"):
            return [f"read the run database ({output.get('read')} bytes via {output['path']})"]
    return []


def observe_fill(result: SandboxResult, limit_mb: int) -> list[str]:
    for output in instance_outputs(result):
        if isinstance(output, dict):
            over = {k: v for k, v in output.items() if isinstance(v, int) and v > limit_mb << 20}
            if over:
                return [f"wrote {over} bytes, beyond the {limit_mb} MiB memory limit"]
    return []


def setup_labels_file(ctx: CaseContext) -> None:
    path = ctx.directory / "labels.json"
    path.write_text(json.dumps({"token": ctx.token, "train-0": "even", "train-1": "odd"}))
    ctx.params["labels"] = str(path)


def observe_labels_file(ctx: CaseContext, result: SandboxResult) -> list[str]:
    for output in instance_outputs(result):
        if isinstance(output, str) and ctx.token in output:
            return ["read the task's labels file"]
    return []


def observe_labels_import(ctx: CaseContext, result: SandboxResult) -> list[str]:
    from hyperagents.tasks.review import ReviewTask

    truth = [inst.target for inst in ReviewTask(n_test=20).instances(Split.TEST)]
    for output in instance_outputs(result):
        if output == truth:
            return ["regenerated the review task's test labels by importing hyperagents"]
    return []


def setup_outside(ctx: CaseContext) -> None:
    ctx.params["outside"] = str(ctx.directory)
    targets = [
        ctx.directory / f"escaped-{ctx.token}.txt",
        ctx.directory / f"escaped-rel-{ctx.token}.txt",
        Path("/tmp") / f"hyperagents-escaped-{ctx.token}.txt",
        Path("/dev/shm") / f"hyperagents-escaped-{ctx.token}.txt",
    ]
    ctx.state["targets"] = targets
    ctx.cleanups.extend(functools.partial(p.unlink, missing_ok=True) for p in targets)


def observe_outside(ctx: CaseContext, result: SandboxResult) -> list[str]:
    targets: list[Path] = ctx.state["targets"]
    return [f"wrote {p} on the host" for p in targets if p.exists()]


def setup_sentinel(ctx: CaseContext) -> None:
    sentinel = ctx.directory / "sentinel.txt"
    sentinel.write_text("still here")
    ctx.state["sentinel"] = sentinel


def observe_sentinel(ctx: CaseContext, result: SandboxResult) -> list[str]:
    sentinel: Path = ctx.state["sentinel"]
    return [] if sentinel.exists() else ["deleted a file next to its workspace"]


def observe_score(ctx: CaseContext, result: SandboxResult) -> list[str]:
    breaches = []
    if ctx.score is None or ctx.score != 0.0:
        breaches.append(f"the trusted score is {ctx.score!r}, expected 0.0")
    if Task.score is not ctx.state.get("task_score") or ParityTask.score is not ctx.state.get(
        "parity_score"
    ):
        breaches.append("the engine's scoring function was replaced")
    return breaches


def setup_score(ctx: CaseContext) -> None:
    ctx.state["task_score"] = Task.score
    ctx.state["parity_score"] = ParityTask.score


def fork_bomb_counts(stderr: str) -> tuple[int, int]:
    """(processes forked, forks refused) over the whole tree, from the fork bomb's report
    lines (every process of the tree prints one)."""
    lines = re.findall(r"forks=(\d+) failures=(\d+)", stderr)
    return sum(int(f) for f, _ in lines), sum(int(n) for _, n in lines)


def observe_fork_bomb(ctx: CaseContext, result: SandboxResult) -> list[str]:
    forked, refused = fork_bomb_counts(result.stderr)
    limit = ctx.state["max_processes"]
    if forked + 1 > limit:
        return [f"{forked + 1} processes alive at once, above the limit of {limit}"]
    if forked and not refused:
        return [f"{forked} forks and none refused: no process limit applied"]
    return []


def observe_namespaces(ctx: CaseContext, result: SandboxResult) -> list[str]:
    """The agent returns {call: "ok" or the error} for each namespace call it tried."""
    return [
        f"{call} succeeded"
        for output in instance_outputs(result)
        if isinstance(output, dict)
        for call, verdict in output.items()
        if verdict == "ok"
    ]
