"""The arena's state between rounds: its agents, the growing suite, the test agents' histories
and the evaluations spent, as one JSON document stored (content-addressed, as a program blob)
after every round, so a killed arena resumes from its last finished round.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from hyperagents.program import Program

__all__ = ["STATE_FILE", "AgentSlot", "ArenaState", "meta_report"]

#: The file of the stored state program.
STATE_FILE = "arena_state.json"
#: Lineage entries kept per code agent (the meta agent's archive).
LINEAGE_CAP = 30
#: History entries kept per test agent.
HISTORY_CAP = 400


@dataclass
class AgentSlot:
    """One agent of the arena.

    Attributes:
        name: ``c0``, ``c1``... (code agents) or ``t0``... (test agents), never reused.
        program: The stored program's id.
        born: The round it entered (0: the start).
        score: A code agent's accuracy on the current suite.
        hard: A test agent's hard cases accepted, per round since it was born.
        lineage: A code agent's edits so far (the meta agent's archive).
        history: A test agent's inputs and whether each broke a code agent.
        generation: A code agent's edits made (the generation of its next child).
        answers: A code agent's outputs on the suite's inputs (its program is deterministic:
            they stand for running it again on them).
    """

    name: str
    program: str
    born: int = 0
    score: float = 0.0
    hard: list[int] = field(default_factory=list)
    lineage: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    generation: int = 0
    answers: dict[str, Any] = field(default_factory=dict)

    def current_generation(self) -> int:
        """The generation of a code agent's current program (0: its seed)."""
        kept = [entry["generation"] for entry in self.lineage if entry.get("kept")]
        return kept[-1] if kept else 0

    def recent_hard(self, rounds: int) -> int:
        """Hard cases accepted in the last ``rounds`` rounds."""
        return sum(self.hard[-rounds:]) if rounds > 0 else sum(self.hard)


@dataclass
class ArenaState:
    """Everything a round needs from the rounds before it.

    Attributes:
        round: The last finished round (0: none yet).
        code: The code agents.
        test: The test agents.
        suite: The growing suite's cases.
        evaluations: Code agent evaluations spent (``screens``: answers on new proposals,
            ``scores``: re-scoring on the grown suite, ``children``: candidates) and
            ``instances`` answered.
        names: The next agent number of each kind.
    """

    round: int
    code: list[AgentSlot]
    test: list[AgentSlot]
    suite: list[dict[str, Any]]
    evaluations: dict[str, int] = field(
        default_factory=lambda: {"screens": 0, "scores": 0, "children": 0, "instances": 0}
    )
    names: dict[str, int] = field(default_factory=lambda: {"code": 0, "test": 0})

    def new_name(self, kind: str) -> str:
        """The next unused name of ``kind`` (``code`` or ``test``)."""
        number = self.names[kind]
        self.names[kind] = number + 1
        return f"{kind[0]}{number}"

    def champion(self) -> AgentSlot:
        """The code agent with the best suite score (ties: the first)."""
        return max(self.code, key=lambda slot: slot.score)

    def total_evaluations(self) -> int:
        """Every code agent evaluation spent (the budget the comparison matches)."""
        ev = self.evaluations
        return ev["screens"] + ev["scores"] + ev["children"]

    def to_program(self) -> Program:
        """The state as a one-file program (stored content-addressed)."""
        text = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)
        return Program({STATE_FILE: text})

    @classmethod
    def from_program(cls, program: Program) -> ArenaState:
        """The state stored by :meth:`to_program`."""
        data = json.loads(program.text(STATE_FILE))
        return cls(
            round=int(data["round"]),
            code=[AgentSlot(**slot) for slot in data["code"]],
            test=[AgentSlot(**slot) for slot in data["test"]],
            suite=list(data["suite"]),
            evaluations=dict(data["evaluations"]),
            names=dict(data["names"]),
        )


def meta_report(
    slot: AgentSlot,
    results: list[dict[str, Any]],
    inputs: list[dict[str, Any]],
    *,
    task: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The report a code agent's meta agent gets: the engine's report shape, with the growing
    suite as its train split (inputs, its answers and whether each was right) and its own
    lineage as the archive. No label of any case is in it beyond what right/wrong implies."""
    generation = slot.generation + 1
    parent_generation = slot.current_generation()
    kept = [entry for entry in slot.lineage if entry.get("kept")]
    return {
        "task": task,
        "mode": "hyperagent",
        "generation": generation,
        "generations_left": None,
        "seed": seed,
        "parent": {
            "variant_id": parent_generation,
            "generation": parent_generation,
            "scores": {"train": slot.score},
            "meta_info": kept[-1].get("meta_info", {}) if kept else {},
        },
        "evaluation": {
            "stage": "train",
            "score": slot.score,
            "results": [
                {k: r.get(k) for k in ("id", "score", "feedback", "output")} for r in results
            ],
        },
        "train_inputs": inputs,
        "archive": [
            {
                "variant_id": entry["generation"],
                "generation": entry["generation"],
                "parent_id": entry.get("parent"),
                "state": "complete" if entry.get("score") is not None else "failed",
                "scores": {} if entry.get("score") is None else {"train": entry["score"]},
                "meta_info": entry.get("meta_info", {}),
            }
            for entry in slot.lineage[-LINEAGE_CAP:]
        ],
    }
