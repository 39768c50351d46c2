"""One round of the arena: test agents propose, the oracle labels, code agents are screened on
the new inputs, the suite grows with the hard cases, and each code agent tries children against
the grown suite (improve-and-keep). Every agent's failure is recorded and the round goes on.

Each piece of agent work is a step of the round, stored as it completes and taken from storage
when the round is played again after a stop (see :mod:`hyperagents.arena._steps`); the work of
different agents runs on the context's workers, taken in the agents' order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hyperagents.arena._agents import evaluate, make_child, propose
from hyperagents.arena._config import ArenaConfig
from hyperagents.arena._state import HISTORY_CAP, LINEAGE_CAP, AgentSlot, ArenaState, meta_report
from hyperagents.arena._steps import Raised, StepLog, Workers
from hyperagents.arena._suite import Case, Oracle, grow_suite, instances_of, label_inputs
from hyperagents.arena._testers import rule_library
from hyperagents.program import Program
from hyperagents.runs import RunLLM, derive_seed
from hyperagents.sandbox import Limits, Sandbox
from hyperagents.storages import BaseStorage
from hyperagents.tasks import Task

__all__ = ["RoundContext", "Spent", "add_spent", "improve_slot", "play_round"]

#: Code agent evaluations spent, by kind (``scores``, ``children``) and ``instances``.
Spent = dict[str, int]

#: The ``meta_info`` keys a lineage entry keeps (as the engine's archive summary does).
_META_KEYS = ("operator", "changes", "params", "structure")
_META_VALUE_BYTES = 2048


@dataclass
class RoundContext:
    """What a round works with (built once per arena by the engine): ``workers`` threads run
    the steps of different agents (see :mod:`hyperagents.arena._steps`)."""

    store: BaseStorage
    run_id: int
    task: Task
    config: ArenaConfig
    sandbox: Sandbox
    oracle: Oracle
    heldout: frozenset[str]
    programs: dict[str, Program]
    llm: RunLLM | None = None
    workers: int = 1
    log: StepLog = field(init=False, repr=False)
    pool: Workers = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.log = StepLog(self.store, self.run_id)
        self.pool = Workers(self.log, self.workers)

    def program(self, program_id: str) -> Program:
        """A stored program (cached)."""
        found = self.programs.get(program_id)
        if found is None:
            found = self.store.get_program(program_id)
            self.programs[program_id] = found
        return found

    def put(self, program: Program) -> str:
        """Store ``program`` and return its id."""
        self.programs[program.id] = program
        return self.store.put_program(program)

    def seed(self, *parts: object) -> int:
        """A seed derived from the arena's."""
        return derive_seed(self.config.seed, "arena", *parts)

    def limits(self, wall: float) -> Limits:
        """Sandbox limits with ``wall`` seconds."""
        return Limits(wall_time=wall, memory_mb=self.config.memory_mb)

    def event(self, kind: str, message: str, data: dict[str, Any]) -> None:
        """Record an event on the arena's run."""
        self.store.add_event(self.run_id, kind, message, data=data)

    @property
    def eval_limits(self) -> Limits:
        """Limits of a code agent's evaluation."""
        return self.limits(self.config.eval_timeout)


def _bounded_meta(meta_info: dict[str, Any]) -> dict[str, Any]:
    kept = {}
    for key in _META_KEYS:
        if key in meta_info and len(json.dumps(meta_info[key])) <= _META_VALUE_BYTES:
            kept[key] = meta_info[key]
    return kept


def _proposal(ctx: RoundContext, slot: AgentSlot, round_no: int) -> list[str]:
    """A proposer's inputs of the round (a step: its failure recorded with it)."""

    def work() -> tuple[dict[str, Any], list[Raised]]:
        proposal = propose(
            ctx.program(slot.program),
            history=slot.history,
            n=ctx.config.proposals,
            seed=ctx.seed(round_no, slot.name, "propose"),
            max_chars=ctx.config.max_input_chars,
            sandbox=ctx.sandbox,
            limits=ctx.limits(ctx.config.propose_timeout),
        )
        failure = proposal.failure
        if failure is None and proposal.dropped:
            failure = (
                f"{proposal.dropped} of its proposals dropped (not distinct strings of 1 to "
                f"{ctx.config.max_input_chars} characters, or past {ctx.config.proposals})"
            )
        raised: list[Raised] = []
        if failure is not None:
            message = f"test agent {slot.name} failed: {failure}"[:300]
            data = {"round": round_no, "agent": slot.name, "step": "propose", "reason": failure}
            raised.append(("arena.agent_failed", message, data))
        return {"inputs": list(proposal.inputs)}, raised

    return [str(value) for value in ctx.log.step(f"{slot.name}/propose", work)["inputs"]]


def _test_phase(ctx: RoundContext, state: ArenaState, round_no: int) -> dict[str, list[Case]]:
    """Each test agent's proposals (and each code agent's own, with ``self_propose``),
    filtered and labelled by the oracle (by agent name)."""
    known = {case["input"] for case in state.suite}
    found: dict[str, list[Case]] = {}
    proposers = state.test + (state.code if ctx.config.self_propose else [])
    proposed = ctx.pool.map(lambda slot: _proposal(ctx, slot, round_no), proposers)
    for slot, inputs in zip(proposers, proposed, strict=True):
        fresh = [
            value
            for value in inputs
            if value not in known and value not in ctx.heldout  # held-out: never in play
        ]
        known.update(fresh)
        found[slot.name] = label_inputs(
            ctx.task, fresh, round_no=round_no, by=slot.name, oracle=ctx.oracle
        )
    return found


def _run_on(ctx: RoundContext, program: Program, cases: list[Case], key: str) -> dict[str, Any]:
    """A code agent's outputs on ``cases``, by input (None for each where it failed or is
    invalid), from one sandboxed evaluation: the round's step ``key``."""

    def work() -> tuple[dict[str, Any], list[Raised]]:
        instances = instances_of(cases, "e", key=ctx.oracle.key)
        result = evaluate(
            program, instances, task=ctx.task, sandbox=ctx.sandbox, limits=ctx.eval_limits
        )
        rows = {} if result is None else {row["id"]: row for row in result.results}
        outputs: dict[str, Any] = {}
        for inst, case in zip(instances, cases, strict=True):
            row = rows.get(inst.id) or {}
            outputs[case["input"]] = None if row.get("error") else row.get("output")
        return {"outputs": outputs}, []

    return dict(ctx.log.step(key, work)["outputs"])


def _results(ctx: RoundContext, state: ArenaState, outputs: dict[str, Any]) -> list[Any]:
    """The rows of an evaluation on the suite (id, score, feedback, output), scored here from
    the agent's recorded outputs (a deterministic agent: the same as running it again)."""
    rows = []
    for inst in instances_of(state.suite, key=ctx.oracle.key):
        output = outputs.get(inst.inputs[ctx.oracle.key])
        score = ctx.task.checked_score(inst, output)
        rows.append({"id": inst.id, "score": score.value, "feedback": score.feedback})
        rows[-1]["output"] = output
    return rows


def _screen(ctx: RoundContext, state: ArenaState, cases: list[Case]) -> set[str]:
    """The inputs of ``cases`` that some code agent gets wrong (each code agent answers them
    in one evaluation, on the workers; its answers are kept with it)."""
    if not cases:
        return set()
    hard: set[str] = set()
    instances = instances_of(cases, "p", key=ctx.oracle.key)
    answered = ctx.pool.map(
        lambda slot: _run_on(ctx, ctx.program(slot.program), cases, f"{slot.name}/screen"),
        state.code,
    )
    for slot, outputs in zip(state.code, answered, strict=True):
        state.evaluations["screens"] += 1
        state.evaluations["instances"] += len(cases)
        slot.answers = {**slot.answers, **outputs}
        for inst, case in zip(instances, cases, strict=True):
            if ctx.task.checked_score(inst, outputs[case["input"]]).value < 1.0:
                hard.add(case["input"])
    return hard


def _score(
    ctx: RoundContext, state: ArenaState, outputs: dict[str, Any]
) -> tuple[float, list[Any]]:
    """Accuracy on the suite and the rows, from an agent's outputs."""
    rows = _results(ctx, state, outputs)
    return (sum(row["score"] for row in rows) / len(rows) if rows else 0.0), rows


def _catch_up(ctx: RoundContext, state: ArenaState, slot: AgentSlot, spent: Spent) -> None:
    """Answer the suite cases ``slot`` has no answer for yet (one evaluation, if any)."""
    missing = [case for case in state.suite if case["input"] not in slot.answers]
    if missing:
        program = ctx.program(slot.program)
        answers = _run_on(ctx, program, missing, f"{slot.name}/catch-up")
        slot.answers = {**slot.answers, **answers}
        spent["scores"] += 1
        spent["instances"] += len(missing)
    suite = {case["input"] for case in state.suite}
    slot.answers = {key: value for key, value in slot.answers.items() if key in suite}


def _task_info(ctx: RoundContext) -> dict[str, Any]:
    """What a code agent's meta agent is told of the task: its name, description, score range
    and input key (and, for the ``arena`` meta agent, its rule library)."""
    info: dict[str, Any] = {"name": ctx.task.name, "description": ctx.task.description}
    info |= {"score_range": list(ctx.task.score_range), "input_key": ctx.oracle.key}
    if ctx.config.meta == "arena":
        info |= rule_library(ctx.oracle.spec)
    return info


def _child(
    ctx: RoundContext, slot: AgentSlot, report: dict[str, Any], round_no: int, k: int
) -> tuple[Program | None, dict[str, Any]]:
    """The ``k``-th child of ``slot`` this round, made by its meta agent (a step: its failure
    recorded with it), and the bounded ``meta_info`` its lineage keeps."""

    def work() -> tuple[dict[str, Any], list[Raised]]:
        scope = f"r{round_no}/{slot.name}/{k}/improve"
        handler = (
            None
            if ctx.llm is None
            else ctx.llm.handler(variant_id=None, purpose="improve", scope=scope)
        )
        child, meta_info, failure = make_child(
            ctx.program(slot.program),
            report,
            module="meta_arena" if ctx.config.meta == "arena" else "meta_agent",
            seed=report["seed"],
            sandbox=ctx.sandbox,
            limits=ctx.limits(ctx.config.improve_timeout),
            llm=handler,
        )
        made: dict[str, Any] = {"child": None if child is None else ctx.put(child)}
        made["meta_info"] = _bounded_meta(meta_info)
        if child is not None:
            return made, []
        message = f"code agent {slot.name}'s meta agent failed: {failure}"[:300]
        data = {"round": round_no, "agent": slot.name, "step": "improve", "reason": failure}
        return made, [("arena.agent_failed", message, data)]

    made = ctx.log.step(f"{slot.name}/child{k}", work)
    child_id = made["child"]
    return (None if child_id is None else ctx.program(str(child_id))), dict(made["meta_info"])


def improve_slot(
    ctx: RoundContext, state: ArenaState, slot: AgentSlot, round_no: int, children: int
) -> tuple[float, Spent]:
    """Score ``slot`` on the grown suite (from its answers), then try ``children`` children,
    each evaluated on the suite, and keep the best one that scores at least as well
    (improve-and-keep). Changes ``slot`` only (so the code agents improve side by side).

    Returns:
        Its score on the grown suite before its children (the drop the new cases made), and
        the evaluations it spent.
    """
    spent: Spent = {"scores": 0, "children": 0, "instances": 0}
    _catch_up(ctx, state, slot, spent)
    score, results = _score(ctx, state, slot.answers)
    slot.score = score
    key = ctx.oracle.key
    inputs = [
        {"id": f"c-{i}", "inputs": {key: case["input"]}} for i, case in enumerate(state.suite)
    ]
    task_info = _task_info(ctx)
    for k in range(children):
        seed = ctx.seed(round_no, slot.name, "child", k)
        report = meta_report(slot, results, inputs, task=task_info, seed=seed)
        child, meta_info = _child(ctx, slot, report, round_no, k)
        slot.generation += 1
        entry: dict[str, Any] = {"generation": slot.generation, "round": round_no}
        entry["meta_info"] = meta_info
        entry["parent"] = slot.current_generation()
        if child is None:
            entry["score"] = None
        else:
            outputs = _run_on(ctx, child, state.suite, f"{slot.name}/child{k}/answers")
            spent["children"] += 1
            spent["instances"] += len(state.suite)
            child_score, child_results = _score(ctx, state, outputs)
            entry["score"] = child_score
            if child_score >= slot.score:
                slot.program, slot.score, results = ctx.put(child), child_score, child_results
                slot.answers = outputs
                entry["kept"] = True
        slot.lineage = [*slot.lineage, entry][-LINEAGE_CAP:]
    return score, spent


def add_spent(state: ArenaState, spent: Spent) -> None:
    """Count ``spent`` in the arena's evaluations."""
    for kind, count in spent.items():
        state.evaluations[kind] += count


def play_round(
    ctx: RoundContext,
    state: ArenaState,
    round_no: int,
    replace: Callable[[RoundContext, ArenaState, int], list[dict[str, Any]]],
) -> dict[str, Any]:
    """Play round ``round_no`` on ``state`` (changed in place; the state of the round before
    it) from the steps of it already stored; its summary for the event.

    Raises:
        SandboxError: The sandbox itself failed (the round goes on from its stored steps on
            resume).
        KeyboardInterrupt: An interrupt (the steps in flight were stored first).
    """
    last = ctx.store.list_events(ctx.run_id, kinds=["arena.round"], newest_first=True, limit=1)
    ctx.log.open(round_no, last[0].id if last else 0)
    before = {slot.name: slot.score if slot.answers else None for slot in state.code}
    proposed = _test_phase(ctx, state, round_no)
    all_cases = [case for cases in proposed.values() for case in cases]
    hard_inputs = _screen(ctx, state, all_cases)
    hard_cases = [case for case in all_cases if case["input"] in hard_inputs]
    for slot in state.test + (state.code if ctx.config.self_propose else []):
        mine = proposed.get(slot.name, [])
        slot.hard.append(sum(case["input"] in hard_inputs for case in mine))
        entries = [{"input": case["input"], "hard": case["input"] in hard_inputs} for case in mine]
        slot.history = [*slot.history, *entries][-HISTORY_CAP:]
    size_before = len(state.suite)
    state.suite = grow_suite(state.suite, hard_cases, cap=ctx.config.suite_cap)
    improved = ctx.pool.map(
        lambda slot: improve_slot(ctx, state, slot, round_no, ctx.config.children), state.code
    )
    dropped = {}
    for slot, (score, spent) in zip(state.code, improved, strict=True):
        dropped[slot.name] = score
        add_spent(state, spent)
    replaced = replace(ctx, state, round_no)
    state.round = round_no
    champion = state.champion()
    return {
        "round": round_no,
        "proposed": len(all_cases),
        "hard": len(hard_cases),
        "suite_size": len(state.suite),
        "added": len(state.suite) - size_before,
        "scores_before": before,
        "scores_grown": dropped,
        "scores": {slot.name: slot.score for slot in state.code},
        "test_hard": {slot.name: slot.hard[-1] if slot.hard else 0 for slot in state.test},
        "champion": champion.name,
        "champion_score": champion.score,
        "replaced": replaced,
        "evaluations": dict(state.evaluations),
    }
