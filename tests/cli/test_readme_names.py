"""The README's commands name only runs that a README command shown before them creates: a
reader who types them in order never meets a run that does not exist."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
#: Options of ``run`` and ``experiment`` that take a value, by every spelling.
_VALUED = {
    "--task": "task",
    "-t": "task",
    "--mode": "mode",
    "-m": "mode",
    "--seed": "seed",
    "-s": "seed",
    "--name": "name",
    "-n": "name",
    "--modes": "modes",
    "--seeds": "seeds",
    "--meta-from": "meta_from",
}


def readme_commands() -> list[list[str]]:
    """Every ``hyperagents`` command of the README's code blocks, in order, as arguments."""
    commands = []
    for block in re.findall(r"```(?:bash|console)\n(.*?)```", README.read_text(), re.S):
        block = re.sub(r"\\\n\s*", " ", block)  # a command continued on the next line
        for line in block.splitlines():
            line = line.removeprefix("$ ").strip()
            if line.startswith("hyperagents "):
                commands.append(shlex.split(line, comments=True)[1:])
    return commands


def options(args: list[str]) -> dict[str, str]:
    found = {}
    for flag, value in itertools.pairwise(args):
        if flag in _VALUED:
            found[_VALUED[flag]] = value
    return found


def created_runs(args: list[str]) -> set[str]:
    """The runs a ``run`` or ``experiment`` command creates (its default names)."""
    given = options(args)
    task = given.get("task", "review")
    if args[0] == "run":
        mode, seed = given.get("mode", "hyperagent"), given.get("seed", "0")
        return {given.get("name", f"{task}-{mode}-s{seed}")}
    if args[0] == "experiment":
        name = given.get("name", f"{task}-experiment")
        modes = given.get("modes", "hyperagent,frozen-meta,no-archive").split(",")
        arms = modes + [f"{m}-transfer" for m in modes] if "meta_from" in given else modes
        return {f"{name}-{arm}-s{s}" for arm in arms for s in range(int(given.get("seeds", 5)))}
    return set()


def test_every_meta_from_names_a_run_created_before() -> None:
    created: set[str] = set()
    checked = 0
    for args in readme_commands():
        donor = options(args).get("meta_from")
        if donor is not None:
            run = donor.split("/")[0]
            assert run in created, (
                f"`hyperagents {shlex.join(args)}` names {run!r}: no README command before it "
                "creates it"
            )
            checked += 1
        created |= created_runs(args)
    assert checked >= 2  # the transfer examples
