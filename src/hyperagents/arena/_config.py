"""The arena's configuration (:class:`ArenaConfig`): one pydantic model, stored with the run."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hyperagents.exceptions import ConfigError

__all__ = ["ArenaConfig", "parse_tournament"]

_TOURNAMENT = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_tournament(text: str) -> tuple[int, int]:
    """``"4x4"`` as (code agents, test agents).

    Raises:
        ConfigError: Not ``CxT`` with both at least 1 (and at most 16).
    """
    match = _TOURNAMENT.match(text or "")
    if match is None:
        raise ConfigError(f"tournament must look like 4x4 (code x test agents), not {text!r}")
    code, test = int(match.group(1)), int(match.group(2))
    if not (1 <= code <= 16 and 1 <= test <= 16):
        raise ConfigError(f"tournament sizes must be 1 to 16, not {text!r}")
    return code, test


class ArenaConfig(BaseModel):
    """Everything that shapes an arena (all stored with it, so a resumed arena behaves as the
    original; see :func:`hyperagents.arena.run_arena`).

    Attributes:
        task: The task (a built-in with a trusted oracle: ``label(input)``).
        rounds: Rounds to play (a resumed arena goes on to this many).
        seed: Seed of every random choice.
        code_agents: Code agents (1 with 1 test agent: the one-on-one arena, 4a).
        test_agents: Test agents.
        replace_every: In a tournament, every this many rounds the worst code agent and the
            worst test agent are replaced by mutated copies of the best (0: never).
        proposals: Inputs each test agent proposes per round.
        children: Children each code agent tries per round (each one evaluation).
        max_input_chars: Longest input accepted from a test agent (longer ones are dropped).
        suite_cap: Most cases the growing suite holds (the oldest proposed ones go first).
        heldout_size: Cases of the held-out adversarial suite (never shown to any agent).
        self_propose: Code agents carry a test agent of their own (``test_agent.py``): its
            ``propose()`` adds inputs each round, and their meta agent may mutate it.
        meta: The code agents' meta agent: ``arena`` (rule synthesis + the offline agent),
            ``offline`` (the offline agent only) or ``llm`` (the LLM seed meta agent, asking
            ``llm`` through the gateway; its calls are recorded on the arena's run).
        llm: The language model's spec for ``meta="llm"`` (``openai:M``, ``scripted:FILE``...).
        sandbox: Where agent code runs (``auto``, ``bwrap``, ``process``).
        propose_timeout: Seconds a test agent's ``propose`` may take.
        improve_timeout: Seconds a code agent's meta agent may take.
        eval_timeout: Seconds one evaluation of a code agent (a batch of inputs) may take.
        memory_mb: Memory limit of each sandboxed process.
        max_evaluations: The evaluation budget: no round starts that could take the code agent
            evaluations past it (None: the rounds alone end the arena).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = "email_validation"
    rounds: int = Field(default=10, ge=0, le=10_000)
    seed: int = 0
    code_agents: int = Field(default=1, ge=1, le=16)
    test_agents: int = Field(default=1, ge=1, le=16)
    replace_every: int = Field(default=3, ge=0)
    proposals: int = Field(default=40, ge=1, le=1000)
    children: int = Field(default=2, ge=1, le=100)
    max_input_chars: int = Field(default=400, ge=1, le=10_000)
    suite_cap: int = Field(default=1500, ge=10)
    heldout_size: int = Field(default=300, ge=10, le=100_000)
    self_propose: bool = False
    meta: str = "arena"
    llm: str | None = None
    sandbox: str = "auto"
    propose_timeout: float = Field(default=20.0, gt=0)
    improve_timeout: float = Field(default=60.0, gt=0)
    eval_timeout: float = Field(default=120.0, gt=0)
    memory_mb: int = Field(default=1024, ge=64)
    max_evaluations: int | None = Field(default=None, ge=1)

    @field_validator("meta")
    @classmethod
    def _meta(cls, value: str) -> str:
        if value not in ("arena", "offline", "llm"):
            raise ValueError(f"meta must be 'arena', 'offline' or 'llm', not {value!r}")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> ArenaConfig:
        if self.code_agents * self.test_agents > 64:
            raise ValueError("at most 64 code x test agent pairs")
        if self.meta == "llm" and not self.llm:
            raise ValueError("meta 'llm' needs an llm spec")
        return self

    @property
    def tournament(self) -> bool:
        """Whether this is a tournament (4b) rather than one agent against one (4a)."""
        return self.code_agents > 1 or self.test_agents > 1

    @classmethod
    def parse(cls, values: dict[str, Any]) -> ArenaConfig:
        """Validate ``values`` with a clear error.

        Raises:
            ConfigError: A value is out of range or unknown.
        """
        from pydantic import ValidationError

        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"invalid arena config: {problems}") from exc
