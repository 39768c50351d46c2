"""Offline meta agent: the default, LLM-free improver of a hyperagent program.

The engine copies the parent program into a fresh workspace and calls :func:`improve` there, in a
sandboxed process; the files edited in place become the child program, and the returned dict
becomes its ``meta_info``.

What it edits
    * ``task_agent.py``: the top-level literal ``PARAMS = {...}`` (the task agent's declared
      parameters), within the search space declared by ``PARAM_SPACE = {...}``; or, by the
      ``structure`` mechanism, the code of one of its functions (a comparison, an operator, a
      term, a rule; a number lifted into a new ``PARAMS`` entry declared in ``PARAM_SPACE``).
      Only the source spans concerned are rewritten; every other byte of the file is kept.
    * ``meta_state.json``: the meta agent's own strategy state (step size, operator weights,
      exploration, and the portfolio of proposal mechanisms). Each call first adapts the state
      from the success history found in the report and writes it there, so the child's meta
      agent starts from the adapted strategy (self-reference: in ``hyperagent`` mode
      improvements to the improver compound along a lineage; in ``frozen-meta`` mode the
      engine discards these edits; a state file copied into another task's program carries
      what was learnt there). Where the program has no state file yet (the seed), the state is
      ``META`` below: the defaults. The agent's code files stay byte for byte as they are, so
      a child stores nothing new but its state and its task agent's change.

How an edit is made
    1. Adapt the state from the outcomes of earlier edits (meta_adapt.py, and the portfolio's
       shares, structural kinds and restart policy in meta_portfolio.py).
    2. Draw this edit's mechanism from the portfolio: ``tune`` (the numeric operators:
       perturb, focus, follow, crossover, reset), ``surrogate`` (a TPE model of the archive's
       parameters and scores), ``structure`` (a code edit) or ``restart`` (forced once the
       lineage has stagnated). A mechanism with nothing to propose falls back to ``tune``.
    3. Write the task agent and the state; return what was done as ``meta_info``.

    Where the program has a ``trainer.py`` (it carries a model), an edit is first, with the
    portfolio's ``weights_share``, a weight update: the agent writes ``training_plan.json``
    (lever ``weights``) and its state, and the engine trains the child's model on data its
    task's verifier accepts. Where the task agent declares no parameters, it is always one.

The agent is this file and its sibling modules, every top-level ``meta_*.py`` file of the program
(the engine counts them all as meta code, and the sandbox imports them by name from the
workspace), and its state file:

* ``meta_agent.py``: ``META`` (the default strategy state) and :func:`improve`, the entry point.
* ``meta_source.py``: reading and rewriting top-level literals and source spans, the state file.
* ``meta_space.py``: the search space ``PARAM_SPACE`` declares.
* ``meta_history.py``: the history of earlier edits (outcomes, credit, lineage) from the report.
* ``meta_adapt.py``: the rules that adapt the state from that history.
* ``meta_portfolio.py``: the portfolio of mechanisms, how it adapts and how one is drawn.
* ``meta_operators.py``: the operators that edit ``PARAMS`` and how one is chosen.
* ``meta_features.py``: the input features behind failures (the ``focus`` operator).
* ``meta_model.py``: the surrogate model (TPE) of the archive's history.
* ``meta_structure.py``: the structural edits of the task agent's code.
* ``meta_reviews.py``: how the reviewer's latest review (runs with a reviewer) steers an edit.

The agent uses the standard library only and is deterministic given the workspace files and the
report (all randomness comes from ``random.Random(report["seed"])``). It parses ``task_agent.py``
once per call (a structural edit is checked with ``compile``) and never parses its own source.
"""

from __future__ import annotations

import json
import math
import os
import random
from typing import Any

from meta_adapt import LIMITS, adapt_meta, clamp_limit, sanitize_meta
from meta_history import History
from meta_model import propose_surrogate
from meta_operators import Context, op_restart, propose, propose_with
from meta_portfolio import WEIGHTS, adapt_portfolio, choose, choose_weights, sanitize_portfolio
from meta_reviews import review_steering, steered
from meta_source import Literals, read_state, read_text, round_sig, write_state, write_text
from meta_space import Dim, build_space
from meta_structure import propose_structure

#: The default strategy state: what a program without a state file (the seed) starts from.
META: dict[str, Any] = {
    "step_scale": 0.15,
    "step_growth": 1.5,
    "target_success": 0.2,
    "self_adapt_tau": 0.15,
    "n_mutations": 2.0,
    "n_mutations_lr": 0.3,
    "operator_weights": {
        "perturb": 0.3,
        "focus": 0.2,
        "follow": 0.2,
        "crossover": 0.2,
        "reset": 0.1,
    },
    "weight_lr": 0.5,
    "weight_floor": 0.05,
    "explore": 0.1,
    "explore_growth": 1.07,
    "explore_decay": 0.7,
    "context_weight": 3.0,
    "ema_lr": 0.2,
    "success_ema": 0.2,
    "successes": 0.0,
    "failures": 0.0,
    "stagnation": 0,
    "portfolio": {
        "shares": {"tune": 0.5, "surrogate": 0.2, "structure": 0.25, "restart": 0.05},
        "share_lr": 0.5,
        "share_floor": 0.03,
        "structure_kinds": {
            "compare": 0.08,
            "binop": 0.06,
            "minmax": 0.06,
            "drop_term": 0.08,
            "negate_if": 0.06,
            "drop_cond": 0.06,
            "drop_rule": 0.08,
            "copy_rule": 0.12,
            "lift": 0.25,
            "transplant": 0.15,
        },
        "restart_after": 12.0,
        "surrogate_min_points": 8.0,
        "weights_share": 0.5,
    },
}


#: The file of the program that holds the adapted strategy state (a JSON object).
STATE_FILE = "meta_state.json"
#: A program's trainer: where it has one, an edit may be a weight update instead.
TRAINER_FILE = "trainer.py"
#: Where a weight update is asked of the engine (read, then removed, by the engine).
PLAN_FILE = "training_plan.json"
#: The data a weight update trains on: the parent's own outputs the task's verifier accepts,
#: the task's examples, and labels people posted.
PLAN_SOURCES = ["self", "task", "people"]
#: Largest ``meta_info`` (JSON bytes) this agent returns; the engine accepts 64 KB.
_MAX_INFO_BYTES = 60_000
#: How many evidence events are listed in ``meta_info`` (all of them are used).
_MAX_EVIDENCE = 20


def improve(workspace: str, report: dict[str, Any]) -> dict[str, Any]:
    """Adapt this meta agent's own strategy, then edit the task agent (its parameters or, by
    the ``structure`` mechanism, its code).

    Args:
        workspace: Directory holding the copy of the parent program; edited in place.
        report: The evaluation report of the parent (see the project's meta agent protocol).
            Missing or malformed parts are tolerated.

    Returns:
        A JSON-able dict (the child's ``meta_info``): the operator used (a ``tune`` operator,
        ``surrogate``, ``restart`` or ``structure``), the mechanism, the parameter changes
        ``{name: [old, new]}``, the full new ``PARAMS``, the structural edit (``structure``),
        the adapted state (``meta``) and how it was adapted. ``operator`` is ``"none"`` (and no
        file is changed) when no edit was possible.
    """
    report = report if isinstance(report, dict) else {}
    seed = report.get("seed", 0)
    rng = random.Random(seed if isinstance(seed, int) else str(seed))
    info: dict[str, Any] = {"agent": "offline-meta-agent", "mode": report.get("mode")}
    history = History.from_report(report)

    # 1. The meta level: read and adapt this agent's own strategy state and portfolio.
    state_path = os.path.join(workspace, STATE_FILE)
    adapted, sigma = _adapt(read_state(state_path), history, rng, info)

    # 2. The task level: read the declared parameters and search space (one parse).
    task_path = os.path.join(workspace, "task_agent.py")
    task = Literals(read_text(task_path))
    declared = _declared(task, info)
    if _plan_weights(workspace, declared is None, adapted, rng, info) or declared is None:
        return _fit(info)
    params, space = declared

    # 3. This edit's mechanism (steered by the latest review, if the run has a reviewer); a
    # structural edit rewrites the code, the others PARAMS.
    steering = review_steering(report)
    draw = steered(adapted, steering)
    if steering is not None:
        info["review_steering"] = steering
        sigma *= float(steering["step"])
    mechanism, forced = choose(draw["portfolio"], float(adapted["stagnation"]), rng)
    info.update(mechanism=mechanism, forced_restart=forced)
    if mechanism == "structure" and _structural(task, params, adapted, history, rng, info):
        write_text(task_path, info.pop("source"))
        write_state(state_path, adapted)
        return _fit(info)
    ctx = _context(params, space, sigma, draw, report, history, rng)
    proposal = _propose(ctx, mechanism, draw, history)
    if proposal is None:
        info.update(operator="none", reason="no parameter change found (space exhausted)")
        return _fit(info)
    new_params, operator, detail, explored = proposal
    if operator == "restart":
        _restart_state(adapted)

    # 4. Write both edits: the task agent's PARAMS and this agent's own state.
    full_params = {**params, **new_params}
    rewritten = task.rewrite("PARAMS", full_params)
    assert rewritten is not None  # the source declared PARAMS
    write_text(task_path, rewritten)
    write_state(state_path, adapted)
    info.update(operator=operator, explored=explored, sigma=adapted["step_scale"])
    _record_params(info, params, full_params, detail, adapted)
    return _fit(info)


def _plan_weights(
    workspace: str,
    nothing_to_tune: bool,
    adapted: dict[str, Any],
    rng: random.Random,
    info: dict[str, Any],
) -> bool:
    """Where the program has a trainer, and nothing to tune or the draw says so, ask the
    engine for a weight update of the child (``training_plan.json``) instead of an edit of the
    code, and write the adapted state; record it in ``info``. Return whether it did."""
    if not os.path.isfile(os.path.join(workspace, TRAINER_FILE)):
        return False
    if not (nothing_to_tune or choose_weights(adapted["portfolio"], rng)):
        return False
    plan = {"lever": "weights", "sources": PLAN_SOURCES, "options": {}}
    with open(os.path.join(workspace, PLAN_FILE), "w", encoding="utf-8") as handle:
        json.dump(plan, handle)
    write_state(os.path.join(workspace, STATE_FILE), adapted)
    info.pop("reason", None)
    info.update(operator=WEIGHTS, mechanism=WEIGHTS, plan=plan, meta_self_edited=True)
    info["meta"] = adapted
    return True


def _record_params(
    info: dict[str, Any],
    params: dict[Any, Any],
    full_params: dict[Any, Any],
    detail: Any,
    adapted: dict[str, Any],
) -> None:
    """Put a parameter edit in ``info``: what changed, the new ``PARAMS``, the adapted state."""
    info["meta_self_edited"] = True
    changes = {
        name: [params.get(name), value]
        for name, value in full_params.items()
        if name in params and params[name] != value
    }
    info.update(n_changed=len(changes), changes=changes, detail=detail)
    info.update(params=full_params, meta=adapted)


def _structural(
    task: Literals,
    params: dict[Any, Any],
    adapted: dict[str, Any],
    history: History,
    rng: random.Random,
    info: dict[str, Any],
) -> bool:
    """Propose a structural edit; if there is one, record it in ``info`` (its new source under
    ``source``) and say so."""
    kinds = adapted["portfolio"]["structure_kinds"]
    edit = propose_structure(task, params, history, rng, kinds)
    if edit is None:
        return False
    info.update(operator="structure", structure=edit.record, meta_self_edited=True)
    info.update(sigma=adapted["step_scale"], n_changed=0, changes={})
    info.update(params=edit.params, meta=adapted, source=edit.source)
    return True


def _context(
    params: dict[Any, Any],
    space: dict[str, Dim],
    sigma: float,
    adapted: dict[str, Any],
    report: dict[str, Any],
    history: History,
    rng: random.Random,
) -> Context:
    """What the parameter operators need for this edit."""
    current = {name: dim.clip(params[name]) for name, dim in space.items()}
    return Context(
        rng=rng,
        space=space,
        current=current,
        base={**params, **current},
        mutable=[name for name, dim in space.items() if dim.mutable],
        sigma=sigma,
        n_mutations=float(adapted["n_mutations"]),
        report=report,
        history=history,
    )


def _propose(
    ctx: Context, mechanism: str, adapted: dict[str, Any], history: History
) -> tuple[dict[str, Any], str, dict[str, Any], bool] | None:
    """New parameters from ``mechanism`` (``surrogate`` or ``restart``), else, or when it has
    none, from the ``tune`` operators."""
    found = None
    if mechanism == "surrogate":
        least = int(adapted["portfolio"]["surrogate_min_points"])
        found = propose_with(
            ctx,
            "surrogate",
            lambda c: propose_surrogate(c.history, c.space, c.current, c.rng, least),
        )
    elif mechanism == "restart":
        found = propose_with(ctx, "restart", op_restart)
    if found is not None:
        return found
    explore = float(adapted["explore"]) * (1.0 - 0.5 * history.progress())
    proposal = propose(ctx, adapted["operator_weights"], explore)
    if proposal is not None and mechanism != "tune":
        proposal = (
            proposal[0],
            proposal[1],
            {**proposal[2], "fallback_from": mechanism},
            proposal[3],
        )
    return proposal


def _restart_state(adapted: dict[str, Any]) -> None:
    """A restart's child starts afresh: default step size and exploration, no stagnation."""
    adapted["step_scale"] = LIMITS["step_scale"][0]
    adapted["explore"] = LIMITS["explore"][0]
    adapted["stagnation"] = 0


def _declared(task: Literals, info: dict[str, Any]) -> tuple[dict[Any, Any], dict[str, Dim]] | None:
    """The task agent's ``PARAMS`` and the search space its ``PARAM_SPACE`` declares; None
    (with the reason in ``info``) when it declares nothing this agent can change."""
    params = task.value("PARAMS")
    space_raw = task.value("PARAM_SPACE")
    if not isinstance(params, dict) or not isinstance(space_raw, dict):
        info.update(operator="none", reason="task_agent.py declares no PARAMS/PARAM_SPACE literals")
        return None
    space = build_space(space_raw, params)
    if not any(dim.mutable for dim in space.values()):
        info.update(operator="none", reason="no mutable parameter in PARAM_SPACE")
        return None
    return params, space


def _adapt(
    state: dict[str, Any] | None, history: History, rng: random.Random, info: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """Adapt the strategy state (the state file's, else ``META``) to the evidence in ``history``
    and mutate its step size; record how in ``info``.

    Returns:
        The adapted state (the child's) and the step size of this edit (``sigma``).
    """
    meta_state = sanitize_meta(META if state is None else state)
    meta_state["portfolio"] = sanitize_portfolio(meta_state.get("portfolio"), META["portfolio"])
    events = history.events(float(meta_state["context_weight"]))
    adapted, adaptation = adapt_meta(meta_state, events)
    target = float(adapted["target_success"])
    adapted["portfolio"], adaptation["portfolio"] = adapt_portfolio(
        meta_state["portfolio"], events, target
    )
    tau = float(adapted["self_adapt_tau"])
    sigma = clamp_limit("step_scale", adapted["step_scale"] * math.exp(tau * rng.gauss(0.0, 1.0)))
    adapted["step_scale"] = round_sig(sigma)
    adaptation["step_scale"].append(adapted["step_scale"])
    info["adaptation"] = adaptation
    info["evidence"] = [e.to_json() for e in events[:_MAX_EVIDENCE]]
    return adapted, sigma


def _fit(info: dict[str, Any]) -> dict[str, Any]:
    """Keep ``info`` JSON-able and under the size limit (dropping the bulkiest parts first)."""
    info = json.loads(json.dumps(info, default=str))
    for key in ("evidence", "detail", "adaptation", "params"):
        if len(json.dumps(info)) <= _MAX_INFO_BYTES:
            break
        info.pop(key, None)
    return info
