"""Arena meta agent of a code agent: rule synthesis from its failures, else the offline agent.

``improve(workspace, report)`` is what the arena runs (in the sandbox) to make a child of a code
agent. With probability ``RULE_SHARE`` (and when its report shows failures) it *synthesises a
rule*: from the report's results (each case's input, the agent's answer and whether it was
right, so its expected answer) it enumerates features of the inputs (``arena_feature`` in
``LIBRARY``: a character in the local part or the domain, a length past a limit, a dot or
hyphen at an edge, an empty label, a top-level domain, a well-formed IP literal, a quoted local
part with an unescaped quote, a broken punycode label...) and picks the rule, one feature or a
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

#: The feature library, written into the task agent with its first rule (and run here).
LIBRARY = '''
def _arena_parts(address):
    at = address.rfind("@")
    return (address, "") if at < 0 else (address[:at], address[at + 1 :])


def _arena_ipv4(text):
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def _arena_punycode_bad(domain):
    for label in domain.lower().split("."):
        if label.startswith("xn--"):
            try:
                label[4:].encode("ascii").decode("punycode")
            except Exception:
                return True
            if not label[4:]:
                return True
    return False


def arena_feature(name, arg, address):
    """Whether ``address`` has the feature ``name`` (with ``arg``)."""
    import unicodedata

    local, domain = _arena_parts(address)
    quoted = len(local) >= 2 and local.startswith('"') and local.endswith('"')
    labels = domain.split(".")
    if name == "local_has":
        return not quoted and arg in local
    if name == "quoted_has":
        return quoted and arg in local[1:-1]
    if name == "domain_has":
        return arg in domain
    if name == "local_len_gt":
        return len(local.encode("utf-8")) > arg
    if name == "label_len_gt":
        return any(len(label) > arg for label in labels)
    if name == "length_gt":
        return len(address.encode("utf-8")) > arg
    if name == "local_edge_dot":
        return not quoted and (local.startswith(".") or local.endswith("."))
    if name == "double_dot":
        part = local if arg == "local" and not quoted else domain if arg == "domain" else ""
        return ".." in part
    if name == "label_edge_hyphen":
        return any(label.startswith("-") or label.endswith("-") for label in labels)
    if name == "tld_numeric":
        return labels[-1].isdigit()
    if name == "tld_is":
        return labels[-1].lower() == arg
    if name == "one_label":
        return "." not in domain and not domain.startswith("[")
    if name == "quoted":
        return quoted
    if name == "ipv4_literal":
        return domain.startswith("[") and domain.endswith("]") and _arena_ipv4(domain[1:-1])
    if name == "ipv6_literal":
        inner = domain[1:-1]
        if not (domain.startswith("[IPv6:") and domain.endswith("]")):
            return False
        import ipaddress

        try:
            ipaddress.IPv6Address(inner[5:])
        except ValueError:
            return False
        return True
    if name == "punycode_bad":
        return _arena_punycode_bad(domain)
    if name == "unicode_category":
        return any(unicodedata.category(ch) == arg for ch in address)
    if name == "non_ascii_local":
        return any(ord(ch) > 127 for ch in local)
    if name == "non_ascii_domain":
        return any(ord(ch) > 127 for ch in domain)
    if name == "local_outside_atext":
        return not quoted and any(ch not in _ARENA_ATEXT and ord(ch) < 128 for ch in local)
    if name == "domain_outside_ldh":
        inner = domain[1:-1] if domain.startswith("[") and domain.endswith("]") else domain
        return any(ch not in _ARENA_LDH and ord(ch) < 128 for ch in inner)
    if name == "empty_label":
        return "" in labels and not domain.startswith("[")
    if name == "tld_alpha":
        return labels[-1].isalpha()
    if name == "quoted_bad":
        inner = local[1:-1] if quoted else ""
        return quoted and (_arena_unescaped(inner) or any(ord(ch) < 32 for ch in inner))
    if name == "domain_literal":
        return domain.startswith("[")
    if name == "at_count_gt":
        return address.count("@") > arg
    if name == "local_empty":
        return local == "" or local == '""'
    return False


_ARENA_LDH = set("abcdefghijklmnopqrstuvwxyz" "ABCDEFGHIJKLMNOPQRSTUVWXYZ" "0123456789-.")
_ARENA_ATEXT = _ARENA_LDH | set("!#$%&'*+/=?^_`{|}~")


def _arena_unescaped(inner):
    escaped = False
    for ch in inner:
        if escaped:
            escaped = False
        elif ch == chr(92):  # a backslash
            escaped = True
        elif ch == '"':
            return True
    return escaped
'''

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

_CATEGORIES = ("Cc", "Cf", "Zs", "So", "Co", "Cn", "Mn")


def _candidates(addresses: list[str]) -> list[tuple[str, Any]]:
    """The features worth trying on these (failing) addresses."""
    found: list[tuple[str, Any]] = [
        ("local_len_gt", 64),
        ("label_len_gt", 63),
        ("length_gt", 254),
        ("local_edge_dot", ""),
        ("double_dot", "local"),
        ("double_dot", "domain"),
        ("label_edge_hyphen", ""),
        ("tld_numeric", ""),
        ("one_label", ""),
        ("quoted", ""),
        ("ipv4_literal", ""),
        ("ipv6_literal", ""),
        ("punycode_bad", ""),
        ("non_ascii_local", ""),
        ("non_ascii_domain", ""),
        ("local_outside_atext", ""),
        ("domain_outside_ldh", ""),
        ("empty_label", ""),
        ("tld_alpha", ""),
        ("quoted_bad", ""),
        ("domain_literal", ""),
        ("at_count_gt", 1),
        ("local_empty", ""),
    ]
    found += [("unicode_category", c) for c in _CATEGORIES]
    chars: set[str] = set()
    tlds: set[str] = set()
    for address in addresses:
        domain = address.rpartition("@")[2]
        chars.update(ch for ch in address if not ch.isalnum() or ord(ch) > 127)
        tlds.add(domain.rpartition(".")[2].lower()[:30])
    for ch in sorted(chars):
        found += [("local_has", ch), ("domain_has", ch), ("quoted_has", ch)]
    found += [("tld_is", t) for t in sorted(tlds) if t]
    return found


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
    namespace: dict[str, Any] = {}
    exec(LIBRARY, namespace)  # the same library the task agent gets
    cases = _cases(report)
    wrong = [address for address, answer, expected in cases if answer != expected]
    if not wrong:
        return None
    masks = _masks(cases, _candidates(wrong), namespace["arena_feature"])
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


def _write_rule(path: str, rule: list[Any], key: str) -> list[Any]:
    """Put ``rule`` first in ``task_agent.py``'s ``RULES`` (adding the wrapper, which reads the
    input at ``key``, if absent)."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    marker = "\nRULES = "
    if marker not in source:
        source += _WRAPPER.format(library=LIBRARY, key=json.dumps(key))
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
            rules = _write_rule(path, rule, _input_key(report))
            return {
                "operator": "rule",
                "changes": {"rule": rule, "gain": gain},
                "rules": len(rules),
            }
    import meta_agent

    result = meta_agent.improve(workspace, report)
    return result if isinstance(result, dict) else {"result": result}
