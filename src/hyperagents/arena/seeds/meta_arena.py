"""Arena meta agent of a code agent: rule synthesis from its failures, else the offline agent.

``improve(workspace, report)`` is what the arena runs (in the sandbox) to make a child of a code
agent. With probability ``RULE_SHARE`` (and when its report shows failures) it *synthesises a
rule*: from the report's results (each case's input, the agent's answer and whether it was
right, so its expected answer) it enumerates features of the inputs (``arena_feature`` of
the task's rule library, ``report["task"]["rule_features"]``, tried as its
``arena_candidates`` say: for email addresses a character in the local part or the domain, a
label ending with a hyphen...; by default generic features of strings, a character, a length,
the parts between separators...) and picks the rule, one feature or a
pair (the second present or absent), and the verdict that fix the most failures net of the
right answers they would break (exactly, on the reported cases: the rule goes first). The rule
is written into ``task_agent.py``'s ``RULES`` list, which a wrapper of ``solve`` (added the
first time, with the feature library) consults before the original code: the first rule whose
conditions hold decides. Otherwise (or when no rule gains), it calls the offline meta agent
(``meta_agent.improve``), which tunes ``PARAMS`` and edits the code's structure.

Where the code agent carries a test agent of its own (``test_agent.py``: an arena with
``self_propose``), an edit may instead mutate its own ``propose()`` (``PROPOSE_SHARE``).

Standalone: standard library only, deterministic given the workspace and ``report["seed"]``.
"""

from __future__ import annotations

import ast
import json
import os
import random
from typing import Any

#: Share of edits that synthesise a rule (when there are failures to learn from).
RULE_SHARE = 0.5
#: Share of edits that mutate the agent's own ``propose()`` (where it has ``test_agent.py``).
PROPOSE_SHARE = 0.15
#: Most rules a task agent keeps (the oldest, last in the list, are dropped past it).
MAX_RULES = 40

_WRAPPER = '''

# --- arena rules (meta_arena.py): the first rule whose conditions hold decides ---
RULES = []
{library}

_arena_base_solve = solve


def solve(inputs):
    """The rules first, then the original ``solve``."""
    address = inputs.get({key}) if isinstance(inputs, dict) else None
    if isinstance(address, str):
        for conditions, verdict in RULES:
            if all(arena_feature(n, a, address) == want for n, a, want in conditions):
                return bool(verdict)
    return _arena_base_solve(inputs)
'''


def _library(report: dict[str, Any]) -> tuple[str, str] | None:
    """The task's rule library from the report: the features' source (written into the task
    agent) and the candidates' source (run here); None when the report carries none."""
    task = report.get("task")
    if not isinstance(task, dict):
        return None
    features, candidates = task.get("rule_features"), task.get("rule_candidates")
    if isinstance(features, str) and isinstance(candidates, str) and features and candidates:
        return features, candidates
    return None


def _input_key(report: dict[str, Any]) -> str:
    """The key of the task's one string input (``report["task"]["input_key"]``)."""
    task = report.get("task")
    key = task.get("input_key") if isinstance(task, dict) else None
    return key if isinstance(key, str) and key else "address"


def _cases(report: dict[str, Any]) -> list[tuple[str, bool, bool]]:
    """``(input, answer, expected)`` of each reported case the agent answered."""
    key = _input_key(report)
    inputs = {
        item.get("id"): item.get("inputs", {}).get(key)
        for item in report.get("train_inputs", [])
        if isinstance(item, dict) and isinstance(item.get("inputs"), dict)
    }
    cases = []
    for row in (report.get("evaluation") or {}).get("results", []):
        address, output = inputs.get(row.get("id")), row.get("output")
        if isinstance(address, str) and isinstance(output, bool):
            cases.append((address, output, output if row.get("score") == 1 else not output))
    return cases


def _masks(
    cases: list[tuple[str, bool, bool]], features: list[tuple[str, Any]], feature: Any
) -> list[tuple[tuple[str, Any], int]]:
    """Each feature with the bit mask of the cases that have it (bit i: case i)."""
    masks = []
    for key in features:
        mask = 0
        for i, (address, _, _) in enumerate(cases):
            if feature(key[0], key[1], address):
                mask |= 1 << i
        masks.append((key, mask))
    return masks


def synthesise(report: dict[str, Any], rng: random.Random) -> tuple[list[Any], int] | None:
    """The best rule ``[conditions, verdict]`` for the report's cases and its net gain (None:
    no rule gains). A condition is ``[feature, arg, wanted]``; a rule has one or two: a single
    feature, or a pair (the second wanted or not) of the features covering most failures."""
    library = _library(report)
    cases = _cases(report)
    wrong = [address for address, answer, expected in cases if answer != expected]
    if library is None or not wrong:
        return None
    namespace: dict[str, Any] = {"__name__": "arena_rules"}
    exec(library[0], namespace)  # the same features the task agent gets
    exec(library[1], namespace)
    masks = _masks(cases, namespace["arena_candidates"](wrong), namespace["arena_feature"])
    fix = {v: 0 for v in (True, False)}  # wrong cases whose expected answer is v
    harm = {v: 0 for v in (True, False)}  # right cases whose answer is not v
    for i, (_, answer, expected) in enumerate(cases):
        if answer != expected:
            fix[expected] |= 1 << i
        else:
            harm[not expected] |= 1 << i
    wrong_mask = fix[True] | fix[False]
    top = sorted(masks, key=lambda item: -(item[1] & wrong_mask).bit_count())[:30]
    found: list[tuple[int, int, list[Any]]] = []
    for key, mask in masks:
        found.append((0, mask, [[[key[0], key[1], True]]]))
    for key, mask in top:
        for other, other_mask in masks:
            if other == key:
                continue
            for wanted in (True, False):
                pair = mask & (other_mask if wanted else ~other_mask)
                rule = [[key[0], key[1], True], [other[0], other[1], wanted]]
                found.append((1, pair, [rule]))
    scored = []
    for size, mask, (conditions,) in found:
        for verdict in (True, False):
            gain = (mask & fix[verdict]).bit_count() - (mask & harm[verdict]).bit_count()
            if gain > 0:
                scored.append((gain, -size, [conditions, verdict]))
    if not scored:
        return None
    scored.sort(key=lambda item: (-item[0], -item[1]))
    best = scored[0][0]
    near = [item for item in scored[:5] if item[0] >= 0.8 * best]
    gain, _, rule = near[rng.randrange(len(near))]
    return rule, gain


def _write_rule(path: str, rule: list[Any], key: str, features: str) -> list[Any]:
    """Put ``rule`` first in ``task_agent.py``'s ``RULES`` (adding the wrapper, which reads the
    input at ``key``, and the ``features`` library, if absent)."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    marker = "\nRULES = "
    if marker not in source:
        library = "\n" + features.strip("\n") + "\n"
        source += _WRAPPER.format(library=library, key=json.dumps(key))
    start = source.index(marker) + len(marker)
    end = source.index("\n", start)
    rules = [rule, *ast.literal_eval(source[start:end])][:MAX_RULES]
    source = source[:start] + ascii(rules) + source[end:]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(source)
    return rules


def mutate_propose(path: str, rng: random.Random) -> dict[str, Any] | None:
    """Redraw one declared parameter of the agent's own test agent (``test_agent.py``'s
    ``PARAMS`` within ``PARAM_SPACE``); the change, or None where there is nothing to edit."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    tree = ast.parse(source)
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("PARAMS", "PARAM_SPACE"):
                found[target.id] = node
    if "PARAMS" not in found or "PARAM_SPACE" not in found:
        return None
    params, space = (ast.literal_eval(found[k].value) for k in ("PARAMS", "PARAM_SPACE"))
    names = sorted(k for k in space if k in params)
    if not names:
        return None
    name = names[rng.randrange(len(names))]
    spec = space[name]
    if spec.get("type") == "int":
        value: Any = rng.randint(int(spec["low"]), int(spec["high"]))
    else:
        value = round(rng.uniform(float(spec["low"]), float(spec["high"])), 3)
    old, params[name] = params[name], value
    node = found["PARAMS"]
    lines = source.splitlines(keepends=True)
    head, tail = lines[: node.lineno - 1], lines[node.end_lineno :]
    text = "PARAMS = {\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in params.items()) + "}\n"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(head) + text + "".join(tail))
    return {name: [old, value]}


def improve(workspace: str, report: dict[str, Any]) -> dict[str, Any]:
    """Make the child in ``workspace``: a mutation of its own ``propose()`` (where it has
    one), a synthesised rule, or the offline meta agent's edit."""
    rng = random.Random(f"{report.get('seed', 0)}:arena")
    own = os.path.join(workspace, "test_agent.py")
    if os.path.isfile(own) and rng.random() < PROPOSE_SHARE:
        changed = mutate_propose(own, rng)
        if changed is not None:
            return {"operator": "propose", "changes": changed}
    if rng.random() < RULE_SHARE:
        found = synthesise(report, rng)
        if found is not None:
            rule, gain = found
            path = os.path.join(workspace, "task_agent.py")
            features = (_library(report) or ("", ""))[0]
            rules = _write_rule(path, rule, _input_key(report), features)
            return {
                "operator": "rule",
                "changes": {"rule": rule, "gain": gain},
                "rules": len(rules),
            }
    import meta_agent

    result = meta_agent.improve(workspace, report)
    return result if isinstance(result, dict) else {"result": result}
