"""``hyperagents arena``: code agents against test agents, with a held-out adversarial suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hyperagents.arena import (
    ArenaConfig,
    ArenaResult,
    arena_name,
    compare_level3,
    parse_tournament,
    run_arena,
)
from hyperagents.cli._level_cmd import resumable_interrupts, say_stopped
from hyperagents.cli._shared import StorageOpt, console, err_console, errors
from hyperagents.llm import portable_llm_spec

__all__ = ["arena"]

# The command's options (its signature stays short; each option's help is here).
_TaskOpt = Annotated[
    str,
    typer.Option(
        help="An arena-capable task: one that declares arena() and a trusted oracle() "
        "(email_validation, ip_validation, or a plug-in's; see docs/writing-a-task.md)."
    ),
]
_RoundsOpt = Annotated[int, typer.Option(min=0, help="Rounds to play (resumed: in all).")]
_TournamentOpt = Annotated[
    str | None,
    typer.Option(help="Code x test agents, e.g. 4x4 (default: 1x1, one on one)."),
]
_SeedOpt = Annotated[int, typer.Option(help="Seed of every random choice.")]
_ReplaceOpt = Annotated[
    int, typer.Option(min=0, help="Tournament: replace the worst agents every K rounds.")
]
_ProposalsOpt = Annotated[int, typer.Option(min=1, help="Inputs per test agent per round.")]
_ChildrenOpt = Annotated[int, typer.Option(min=1, help="Children per code agent per round.")]
_HeldoutOpt = Annotated[int, typer.Option(min=10, help="Held-out adversarial cases.")]
_MetaOpt = Annotated[
    str,
    typer.Option(help="Code agents' meta agent: arena (rules + offline), offline or llm."),
]
_LLMOpt = Annotated[
    str | None,
    typer.Option(help="The model for --meta llm (openai:M, http://HOST/v1#M, scripted:FILE)."),
]
_SelfProposeOpt = Annotated[
    bool,
    typer.Option(
        "--self-propose", help="Code agents also propose inputs and may mutate propose()."
    ),
]
_SandboxOpt = Annotated[str, typer.Option(help="Where agent code runs.")]
_NameOpt = Annotated[
    str | None, typer.Option(help="The arena's run name (an existing one is resumed).")
]
_WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        min=1,
        help="Agents' work run side by side [default: the number of CPUs]; results do "
        "not depend on it.",
        show_default=False,
    ),
]
_CompareOpt = Annotated[
    bool,
    typer.Option("--compare-level3", help="Also run level 3 at the same evaluations and score it."),
]
_JsonOpt = Annotated[
    Path | None, typer.Option("--json", help="Write the JSON summary to this file.")
]


def _round_line(summary: dict[str, Any]) -> str:
    """One line per round: suite growth, the drop the new cases made and the recovery."""
    grown = summary.get("scores_grown", {})
    after = summary.get("scores", {})
    scores = ", ".join(
        f"{name} {grown[name]:.3f}->{score:.3f}" if name in grown else f"{name} (new) {score:.3f}"
        for name, score in after.items()
    )
    return (
        f"round {summary['round']}: suite {summary['suite_size']} (+{summary['added']} hard of "
        f"{summary['proposed']} proposed); {scores}; champion {summary['champion']}"
    )


def arena(
    task: _TaskOpt = "email_validation",
    rounds: _RoundsOpt = 10,
    tournament: _TournamentOpt = None,
    seed: _SeedOpt = 0,
    replace_every: _ReplaceOpt = 3,
    proposals: _ProposalsOpt = 40,
    children: _ChildrenOpt = 2,
    heldout: _HeldoutOpt = 300,
    meta: _MetaOpt = "arena",
    llm: _LLMOpt = None,
    self_propose: _SelfProposeOpt = False,
    sandbox: _SandboxOpt = "auto",
    name: _NameOpt = None,
    storage: StorageOpt = None,
    workers: _WorkersOpt = None,
    compare: _CompareOpt = False,
    json_out: _JsonOpt = None,
) -> None:
    """Play an arena: test agents propose inputs, the task's oracle labels them, the suite grows
    with the cases code agents get wrong, and code agents improve against it; the champion is
    scored on a held-out adversarial suite no agent sees. Prints the JSON summary."""
    with errors():
        code, test = parse_tournament(tournament) if tournament else (1, 1)
        config = ArenaConfig.parse(
            {"task": task, "rounds": rounds, "seed": seed, "code_agents": code}
            | {"test_agents": test, "replace_every": replace_every, "proposals": proposals}
            | {"children": children, "heldout_size": heldout, "meta": meta, "sandbox": sandbox}
            | {"self_propose": self_propose, "llm": portable_llm_spec(llm) if llm else None}
        )
        name = name or arena_name(config)
        result = _play(config, name, storage, workers)
        summary = _summary(result, config, name, storage, compare=compare)
        text = json.dumps(summary, indent=2, sort_keys=True)
        if json_out is not None:
            json_out.write_text(text + "\n", encoding="utf-8")
        console.print_json(text)


def _play(config: ArenaConfig, name: str, storage: str | None, workers: int | None) -> ArenaResult:
    """Play (or resume) the arena ``name``, a line per round on stderr; an interrupt says how
    to resume it (see :func:`resumable_interrupts`).

    Raises:
        HyperagentsError: What :func:`run_arena` raises.
        typer.Exit: An interrupt (130) or SIGTERM (143).
    """
    with resumable_interrupts(name, storage):
        return run_arena(
            config,
            storage=storage,
            name=name,
            on_round=lambda s: err_console.print(_round_line(s), highlight=False),
            workers=workers,
        )


def _summary(
    result: ArenaResult,
    config: ArenaConfig,
    name: str,
    storage: str | None,
    *,
    compare: bool,
) -> dict[str, Any]:
    """The JSON summary of ``result``: an arena stopped before its last round says how to go
    on; with ``compare``, level 3's result at the same evaluations is added.

    Raises:
        HyperagentsError: What :func:`compare_level3` raises.
    """
    summary = result.summary()
    if not result.heldout:  # stopped (a stop request) before its last round
        say_stopped(name, storage)
    elif compare:
        total = int(result.evaluations["total"])
        summary["level3"] = compare_level3(config, evaluations=total, storage=storage)
    return summary
