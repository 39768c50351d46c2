"""LLM runs end to end: scripted edits that improve, replay, injected faults, a local model.

Three scenarios on the built-in ``support`` task (its task agent routes each request with the
run's LLM), with the seed LLM meta agent (``meta_agent="llm"``, SEARCH/REPLACE edits and a
reviewer step):

``fake``
    A real HTTP fake OpenAI-compatible server (:class:`hyperagents.testing.FakeOpenAIServer`)
    plays the model. As the router it knows the right team, but half of its replies are
    phrased ``"Not <other team>: <team>."``, which the seed agent's naive parser (first team
    word) gets wrong. As the meta agent it replies with scripted edits: first a fix of the
    parser (take the last team word), then a harmless change. The run is then replayed from its
    record: the archive must be identical and the server must receive no request.
``faults``
    The same run, but every third request fails (HTTP 429, HTTP 500 and a timeout in turn) and
    every seventh reply is a malformed body. The run must finish, with every failure recorded.
``local``
    ``--llm local``: the embedded SmolLM2-135M-Instruct (optional extra ``local``), offline, as
    both router and meta agent, on a smaller ``support`` task. Reports tokens per second and
    how many proposals were valid.

Usage:
    python benchmarks/bench_llm.py [--scenario fake --scenario faults --scenario local]
        [--generations N] [--local-generations N]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import itertools
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hyperagents.runs import Run, RunConfig
from hyperagents.storages import RDBStorage, VariantState
from hyperagents.tasks import Split
from hyperagents.tasks.support import CATEGORIES, SupportTask
from hyperagents.testing import FakeOpenAIServer, FakeReply

REVIEW = '{"issue_type": "none", "severity": "low", "suggested_fix": "", "confidence": 0.7}'

EDITS = [
    "The parser takes the first team named in the reply, but the model often names a team it "
    "rules out before the right one. Take the last team named instead.\n"
    "<<<<<<< SEARCH task_agent.py\n"
    "    for word in words:\n"
    "=======\n"
    "    for word in reversed(words):\n"
    ">>>>>>> REPLACE\n",
    "Allow a slightly longer reply, so that the team name is not cut off.\n"
    "<<<<<<< SEARCH task_agent.py\n"
    '    "max_tokens": 8,\n'
    "=======\n"
    '    "max_tokens": 16,\n'
    ">>>>>>> REPLACE\n",
]


def _teams(task: SupportTask) -> dict[str, str]:
    return {i.inputs["message"]: str(i.target) for s in Split for i in task.instances(s)}


class FakeModel:
    """Answers the router and the meta agent of a ``support`` run (see the module docstring)."""

    def __init__(self, task: SupportTask, *, faults: bool = False) -> None:
        self.teams = _teams(task)
        self.edits = list(EDITS)
        self.faults = faults
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> FakeReply | str:
        with self.lock:
            n = next(self.counter)
        if self.faults and n % 3 == 0:
            kind = (n // 3) % 3
            if kind == 0:
                return FakeReply(status=429, headers={"retry-after": "0"})
            if kind == 1:
                return FakeReply(status=500)
            return FakeReply(content="late", delay=1.5)  # the client gives up after 0.5 s
        if self.faults and n % 7 == 0:
            return FakeReply(malformed=True)
        last = body["messages"][-1]["content"]
        if last.startswith("Customer request: "):
            request = last.removeprefix("Customer request: ").removesuffix("\nTeam:")
            team = self.teams.get(request, "billing")
            digest = hashlib.sha256(request.encode()).digest()
            if digest[0] % 2:
                other = CATEGORIES[(CATEGORIES.index(team) + 1 + digest[1] % 5) % 6]
                return f"Not {other}: {team}."
            return f"{team}."
        if "issue_type" in last:
            return REVIEW
        with self.lock:
            return self.edits.pop(0) if self.edits else "No further change is needed."


def table(title: str, rows: list[tuple[str, object]]) -> None:
    """Print a two-column Markdown table under a heading."""
    print(f"### {title}\n")
    print("| | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    print()


def score(variant: Any, split: str) -> str:
    value = variant.scores.get(split)
    return "–" if value is None else f"{value:.3f}"


def fingerprint(run: Run) -> list[tuple[Any, ...]]:
    return [
        (v.generation, v.state.name, v.program_id, tuple(sorted(v.scores.items())))
        for v in run.variants()
    ]


def _config(url: str, **extra: Any) -> RunConfig:
    return RunConfig.parse(
        {
            "meta_agent": "llm",
            "llm": f"{url}#fake-model",
            "selector": "best",
            "subset_size": 10,
            "llm_timeout": 0.5,
            **extra,
        }
    )


def scenario_fake(generations: int, workdir: Path) -> None:
    task = SupportTask()
    storage = RDBStorage(f"sqlite:///{workdir / 'fake.db'}")
    model = FakeModel(task)
    with FakeOpenAIServer(handler=model) as server:
        started = time.perf_counter()
        run = Run.create(
            task=task, seed=0, storage=storage, name="fake", config=_config(server.base_url)
        )
        run.optimize(generations=generations, workers=1)
        seconds = time.perf_counter() - started
        served = server.calls
        replay = Run.create(
            task=task,
            seed=0,
            storage=storage,
            name="fake-replay",
            config=_config(server.base_url, replay_of="fake"),
        )
        replay.optimize(generations=generations, workers=1)
        replay_requests = server.calls - served
    variants = run.variants()
    seed, best = variants[0], max(variants, key=lambda v: v.scores.get("val", -1.0))
    calls = storage.list_llm_calls(run.id)
    purposes = collections.Counter(c.purpose.split("/")[-1] for c in calls)
    table(
        "fake server: scripted edits, then replay",
        [
            ("generations", f"{generations} ({seconds:.1f} s)"),
            ("seed val / test", f"{score(seed, 'val')} / {score(seed, 'test')}"),
            (
                "best val / its test",
                f"{score(best, 'val')} / {score(best, 'test')} (generation {best.generation})",
            ),
            ("LLM calls recorded", f"{len(calls)} {dict(purposes)}"),
            ("replay: identical archive", fingerprint(replay) == fingerprint(run)),
            ("replay: requests that reached the server", replay_requests),
        ],
    )


def scenario_faults(generations: int, workdir: Path) -> None:
    task = SupportTask()
    storage = RDBStorage(f"sqlite:///{workdir / 'faults.db'}")
    model = FakeModel(task, faults=True)
    with FakeOpenAIServer(handler=model) as server:
        run = Run.create(
            task=task, seed=0, storage=storage, name="faults", config=_config(server.base_url)
        )
        record = run.optimize(generations=generations, workers=1)
        requests = server.calls
    calls = storage.list_llm_calls(run.id)
    errors = collections.Counter(
        (c.request.get("extra") or {}).get("error_type") for c in calls if c.error
    )
    kinds = collections.Counter(_fault_kind(c.error) for c in calls)
    variants = run.variants()
    states = collections.Counter(v.state.name.lower() for v in variants)
    best = max(variants, key=lambda v: v.scores.get("val", -1.0))
    table(
        "injected faults: every third request fails, every seventh reply malformed",
        [
            ("run status", f"{record.status.name.lower()} ({generations} generations)"),
            ("requests the server received", requests),
            ("attempts recorded", f"{len(calls)}: {dict(kinds)}"),
            ("failed attempts by class", dict(errors)),
            ("variants by state", dict(states)),
            ("best val", f"{score(best, 'val')} (seed {score(variants[0], 'val')})"),
        ],
    )


def _fault_kind(error: str | None) -> str:
    if not error:
        return "ok"
    lowered = error.lower()
    for marker, kind in (("429", "429"), ("500", "500"), ("timed out", "timeout")):
        if marker in lowered:
            return kind
    return "timeout" if "timeout" in lowered else "malformed"


def scenario_local(generations: int, workdir: Path, sizes: tuple[int, int, int]) -> None:
    task = SupportTask(n_train=sizes[0], n_val=sizes[1], n_test=sizes[2])
    storage = RDBStorage(f"sqlite:///{workdir / 'local.db'}")
    config = RunConfig.parse(
        {
            "meta_agent": "llm",
            "llm": "local",
            "selector": "best",
            "subset_size": min(10, sizes[0]),
            # A 135M model on a CPU writes about 20-80 tokens/s: give each reply a minute and
            # the meta agent (proposal, repairs, review) ten.
            "llm_timeout": 60,
            "meta_timeout": 600,
        }
    )
    started = time.perf_counter()
    run = Run.create(task=task, seed=0, storage=storage, name="local", config=config)
    record = run.optimize(generations=generations, workers=1)
    seconds = time.perf_counter() - started
    calls = storage.list_llm_calls(run.id)
    by_purpose: dict[str, list[Any]] = collections.defaultdict(list)
    for call in calls:
        by_purpose[call.purpose.split("/")[-1]].append(call)
    variants = run.variants()
    children = variants[1:]
    valid = [v for v in children if v.state is VariantState.COMPLETE]
    applied = [v for v in children if v.meta_info.get("applied")]
    rows: list[tuple[str, object]] = [
        (
            "run status",
            f"{record.status.name.lower()}, {generations} generations in {seconds:.0f} s",
        )
    ]
    for purpose, group in sorted(by_purpose.items()):
        ok = [c for c in group if not c.error]
        latency = sum(c.latency for c in ok)
        out = sum(c.completion_tokens for c in ok)
        inp = sum(c.prompt_tokens for c in ok)
        rate = out / latency if latency else 0.0
        overall = (inp + out) / latency if latency else 0.0
        rows.append(
            (
                f"calls `{purpose}`",
                f"{len(group)} ({len(group) - len(ok)} failed); {inp} prompt + {out} completion "
                f"tokens in {latency:.1f} s: {rate:.1f} completion tokens/s, "
                f"{overall:.0f} tokens/s in all",
            )
        )
    rows.append(
        (
            "proposals",
            f"{len(children)}: {len(applied)} applied an edit, {len(valid)} valid children",
        )
    )
    for v in children:
        why = str(v.reason or v.meta_info.get("error") or "")[:160].replace("|", "\\|")
        rows.append(
            (f"generation {v.generation}", f"{v.state.name.lower()}, val {score(v, 'val')}; {why}")
        )
    routed = [c for c in by_purpose.get("route", []) if c.reply]
    naming = [
        c
        for c in routed
        if any(w in CATEGORIES for w in re.findall(r"[a-z]+", (c.reply or "").lower()))
    ]
    rows.append(
        (
            "route replies naming a team",
            f"{len(naming)} of {len(routed)} (the rest fall back to the keyword rules)",
        )
    )
    proposal = next((c.reply for c in by_purpose.get("meta:propose", []) if c.reply), None)
    if proposal:
        excerpt = " ".join(proposal.split())[:160].replace("|", "\\|")
        rows.append(("first proposal (excerpt)", f"`{excerpt}`"))
    rows.append(("seed val / test", f"{score(variants[0], 'val')} / {score(variants[0], 'test')}"))
    table(f"`--llm local` (SmolLM2-135M-Instruct Q4_1, CPU), support {sizes}", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=("fake", "faults", "local"))
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--local-generations", type=int, default=2)
    parser.add_argument("--local-sizes", default="20,20,20", help="train,val,test")
    args = parser.parse_args()
    scenarios = args.scenario or ["fake", "faults", "local"]
    sizes = tuple(int(x) for x in args.local_sizes.split(","))
    assert len(sizes) == 3
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        workdir = Path(tmp)
        if "fake" in scenarios:
            scenario_fake(args.generations, workdir)
        if "faults" in scenarios:
            scenario_faults(args.generations, workdir)
        if "local" in scenarios:
            scenario_local(args.local_generations, workdir, sizes)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
