"""What the arena page shows, as JSON from storage: round by round, the growing suite's size
and the cases each round added, each code agent's score before the round, on the grown suite
(the drop) and after its children (the recovery), the hard cases each test agent had accepted,
the tournament's replacements, the agents' failures, and, once the arena has finished, the
champion's and the seed's accuracy on the held-out adversarial suite.

The rounds are :func:`hyperagents.arena.arena_series`; the hard cases shown are those of the
suite after the last finished round (:func:`hyperagents.arena.arena_suite`; past the suite's
cap the oldest proposed cases have left it). Inputs come from test agents, which are untrusted
programs: every string from them is cut to a bounded length here, and the page puts it in as
text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hyperagents.arena import arena_series, arena_suite
from hyperagents.dashboard._views import run_row
from hyperagents.storages import BaseStorage, RunRecord

__all__ = ["INPUT_CHARS", "MAX_FAILURES", "ROUND_CASES", "arena_view", "clip"]

#: Most characters of an input (or any other string from an agent) shown.
INPUT_CHARS = 200
#: Most hard cases shown per round.
ROUND_CASES = 40
#: Most agent failures shown (the latest).
MAX_FAILURES = 200
_NAME_CHARS = 64
_REASON_CHARS = 300


def clip(value: Any, limit: int = INPUT_CHARS) -> str:
    """``value`` as a string of at most ``limit`` characters (an ellipsis marks a cut)."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scores(values: Any) -> dict[str, float | None]:
    """A round's scores by agent name (names clipped, non-numbers as None)."""
    if not isinstance(values, Mapping):
        return {}
    return {clip(name, _NAME_CHARS): _number(v) for name, v in values.items()}


def _hard_cases(suite: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """The suite's proposed cases by round: the first :data:`ROUND_CASES` (clipped) and the
    count, per round."""
    by_round: dict[int, dict[str, Any]] = {}
    for case in suite:
        round_no = case.get("round")
        if not isinstance(round_no, int) or round_no < 1:
            continue  # the task's own cases
        entry = by_round.setdefault(round_no, {"cases": [], "count": 0})
        entry["count"] += 1
        if len(entry["cases"]) < ROUND_CASES:
            entry["cases"].append(
                {
                    "input": clip(case.get("input", "")),
                    "chars": len(str(case.get("input", ""))),
                    "valid": bool(case.get("valid")),
                    "reason": clip(case.get("reason", ""), _REASON_CHARS),
                    "by": clip(case.get("by", ""), _NAME_CHARS),
                }
            )
    return by_round


def _value(value: Any) -> str:
    """A mutated parameter's new value, short (floats to 4 digits)."""
    return clip(f"{value:.4g}" if isinstance(value, float) else value, 40)


def _replacements(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A round's replacements (a tournament's worst agents replaced by mutated winners)."""
    found = []
    for done in entry.get("replaced") or []:
        changed = done.get("changed") or {}
        found.append(
            {
                "round": entry["round"],
                "kind": clip(done.get("kind", ""), _NAME_CHARS),
                "replaced": clip(done.get("replaced", ""), _NAME_CHARS),
                "winner": clip(done.get("winner", ""), _NAME_CHARS),
                "new": clip(done.get("new", ""), _NAME_CHARS),
                "changed": {clip(k, _NAME_CHARS): _value(v) for k, v in changed.items()},
            }
        )
    return found


def _names(rounds: Iterable[Mapping[str, Any]], *keys: str) -> list[str]:
    """Agent names in order of first appearance under ``keys`` of the rounds."""
    seen: dict[str, None] = {}
    for entry in rounds:
        for key in keys:
            seen.update(dict.fromkeys(entry[key]))
    return list(seen)


def _round(entry: Mapping[str, Any], cases: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "round": entry["round"],
        "suite_size": entry["suite_size"],
        "added": entry["added"],
        "proposed": entry.get("proposed", 0),
        "hard": entry.get("hard", 0),
        "before": _scores(entry.get("scores_before")),
        "drop": _scores(entry.get("scores_grown")),
        "after": _scores(entry.get("scores")),
        "test_hard": {
            clip(name, _NAME_CHARS): int(n) for name, n in (entry.get("test_hard") or {}).items()
        },
        "champion": clip(entry.get("champion", ""), _NAME_CHARS),
        "champion_score": _number(entry.get("champion_score")),
        "replaced": _replacements(entry),
        "evaluations": dict(entry.get("evaluations") or {}),
        "hard_cases": [] if cases is None else cases["cases"],
        "hard_cases_in_suite": 0 if cases is None else cases["count"],
    }


def _failure(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "round": data.get("round"),
        "agent": clip(data.get("agent", ""), _NAME_CHARS),
        "step": clip(data.get("step", ""), _NAME_CHARS),
        "reason": clip(data.get("reason", ""), _REASON_CHARS),
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _heldout(data: Mapping[str, Any]) -> dict[str, Any]:
    """The held-out result: the round after which it was measured, the suite's size, and the
    champion's name and the champion's and the seed code agent's accuracy on it."""
    name = data.get("champion_name")
    return {
        "round": data.get("round"),
        "champion_name": None if name is None else clip(name, _NAME_CHARS),
        "size": data.get("size"),
        "champion": _number(data.get("champion")),
        "seed": _number(data.get("seed")),
    }


def arena_view(storage: BaseStorage, record: RunRecord) -> dict[str, Any]:
    """An arena's page: the run, its settings, its rounds (see the module), the agents'
    names, the replacements, the held-out result (None until the arena has finished) and
    the latest failures."""
    series = arena_series(storage, record.id)
    cases = _hard_cases(arena_suite(storage, record.id)) if series else {}
    rounds = [_round(entry, cases.get(int(entry["round"]))) for entry in series]
    heldout = storage.list_events(record.id, kinds=["arena.heldout"], newest_first=True, limit=1)
    failures = storage.list_events(
        record.id, kinds=["arena.agent_failed"], newest_first=True, limit=MAX_FAILURES
    )
    config = dict(record.config)
    return {
        "run": run_row(storage, record, variants=[]),
        "config": config,
        "target_rounds": config.get("rounds", record.target_generations),
        "tournament": [config.get("code_agents", 1), config.get("test_agents", 1)],
        "replace_every": config.get("replace_every", 0),
        "rounds": rounds,
        "code_agents": _names(rounds, "before", "drop", "after"),
        "test_agents": _names(rounds, "test_hard"),
        "replacements": [done for entry in rounds for done in entry["replaced"]],
        "heldout": _heldout(heldout[0].data) if heldout else None,
        "failures": [_failure(event.data) for event in reversed(failures)],
    }
