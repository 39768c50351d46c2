"""The ``structure`` mechanism: edits of the task agent's code, not only of its numbers.

Each edit is a small change of one function of ``task_agent.py``, made on the source spans the
one parse of the file gives (:class:`meta_source.Literals`), so every other byte of the file is
kept and a child's diff shows exactly the change. The kinds (``KINDS``):

* ``compare``: swap a comparison (``<`` to ``<=`` or ``>``, ``==`` to ``!=``...);
* ``binop``: swap an arithmetic operator (``+``/``-``, ``*``/``/``, in ``a + b`` or ``s += b``);
* ``minmax``: call ``max`` where the code calls ``min``, or the reverse;
* ``drop_term``: drop a term of a sum (``a + b`` to ``a``; ``s += b`` to ``pass``);
* ``negate_if``: negate an ``if`` condition;
* ``drop_cond``: drop one operand of an ``and``/``or``;
* ``drop_rule``: drop an ``if`` rule without ``else`` (the statement becomes ``pass``);
* ``copy_rule``: copy an ``if`` rule whose condition is a threshold comparison right after it,
  with the threshold scaled by a new parameter (a second step of the same rule);
* ``lift``: replace a number inside a function by a new entry of ``PARAMS`` (declared in
  ``PARAM_SPACE`` around its value), so the numeric operators tune it from then on;
* ``transplant``: the crossover of code: re-make on the parent an edit that improved another
  archive member (its ``meta_info["structure"]`` records the function, the old and the new
  text, and the parameter it added, each bounded), where the old text is found in the parent's
  function of the same name. Members' whole sources are not in the report (they would crowd
  the archive out of its byte budget), so this crossover reaches exactly the functions that
  the archive's edits changed, which are the ones that differ between members.

An edit whose result does not compile is not proposed (another is tried); one that compiles but
breaks at run time is caught by the engine's validation and evaluation, which record the child
as failed: that is evidence against the edit's kind (see meta_portfolio.py).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from typing import Any

from meta_history import History, sort_key
from meta_source import Edit, Literals, format_literal, round_sig

#: The kinds of structural edits, in the order of the portfolio's ``structure_kinds``.
KINDS = (
    "compare",
    "binop",
    "minmax",
    "drop_term",
    "negate_if",
    "drop_cond",
    "drop_rule",
    "copy_rule",
    "lift",
    "transplant",
)
#: The comparison swaps (token: the tokens it may become).
_COMPARE_SWAPS = {
    "<": ("<=", ">"),
    "<=": ("<", ">="),
    ">": (">=", "<"),
    ">=": (">", "<="),
    "==": ("!=",),
    "!=": ("==",),
}
_COMPARE_OPS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_ARITH_SWAPS = {"+": "-", "-": "+", "*": "/", "/": "*"}
_TOKENS: dict[type, str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
#: Longest recorded old/new text of an edit (a longer one is not recorded for transplants).
_RECORD_CHARS = 400
#: Edits tried before giving up.
_ATTEMPTS = 8
#: Nodes whose text is kept as is when it becomes an operand (no parentheses needed).
_ATOMS = (ast.Name, ast.Constant, ast.Call, ast.Attribute, ast.Subscript)
#: Nodes that bind more loosely than a comparison (an operand of ``and``/``or`` needs them in
#: parentheses).
_LOOSE = (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr)


# Plain classes rather than dataclasses: every sandboxed process imports this module afresh,
# and creating a dataclass costs about half a millisecond of CPU.
class Change:
    """One structural edit, before it is checked.

    Attributes:
        kind: Its kind (``KINDS``).
        function: The function it edits (``Class.method`` for a method).
        edits: The span edits of the function's code.
        old: The text it replaces (for the record).
        new: The text it writes.
        param: A parameter it adds: ``{"name", "value", "space"}`` (None: none).
    """

    __slots__ = ("edits", "function", "kind", "new", "old", "param")

    def __init__(
        self,
        kind: str,
        function: str,
        edits: list[Edit],
        old: str,
        new: str,
        param: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.function = function
        self.edits = edits
        self.old = old
        self.new = new
        self.param = param


class Site:
    """Where an edit of one kind can be made."""

    __slots__ = ("extra", "function", "kind", "node")

    def __init__(
        self, kind: str, function: str, node: ast.AST, extra: dict[str, Any] | None = None
    ) -> None:
        self.kind = kind
        self.function = function
        self.node = node
        self.extra: dict[str, Any] = {} if extra is None else extra


class StructuralEdit:
    """A checked structural edit: the new source, the new ``PARAMS`` and the record."""

    __slots__ = ("params", "record", "source")

    def __init__(self, source: str, params: dict[Any, Any], record: dict[str, Any]) -> None:
        self.source = source
        self.params = params
        self.record = record


class Editor:
    """The structural edits possible on one parsed task agent.

    Args:
        task: The task agent's source, parsed once.
        params: Its ``PARAMS``.
    """

    def __init__(self, task: Literals, params: dict[Any, Any]) -> None:
        self.task = task
        self.params = params
        self.functions: dict[str, ast.AST] = {}
        self.sites: dict[str, list[Site]] = {kind: [] for kind in KINDS}
        if task.tree is None:
            return
        for name, function in _functions(task.tree):
            self.functions[name] = function
            self._collect(name, function)

    def _collect(self, name: str, function: ast.AST) -> None:
        """Record the sites of one function (one walk: a node is visited after its parents, so
        the subtrees they hide are known by then)."""
        hidden: dict[str, set[int]] = {"any": set(), "lift": set()}
        for stmt in getattr(function, "body", []):
            for node in ast.walk(stmt):
                _hide(node, hidden)
                if id(node) in hidden["any"]:
                    continue
                for kind in _kinds_of(node, id(node) in hidden["lift"]):
                    self.sites[kind].append(Site(kind, name, node))

    # -- builders -----------------------------------------------------------------------------
    def build(self, site: Site, rng: Any) -> Change | None:
        """The change ``site`` allows (None if its text is not what the tree says)."""
        builder: Callable[[Site, Any], Change | None] = getattr(self, f"_{site.kind}")
        return builder(site, rng)

    def _token_change(self, site: Site, left: ast.AST, right: ast.AST, rng: Any) -> Change | None:
        """Swap the operator token between ``left`` and ``right`` of ``site.node``."""
        begin, end = self.task.span(left)[1], self.task.span(right)[0]
        gap = self.task.text(begin, end)
        if "#" in gap:
            return None
        pattern = r"<=|>=|==|!=|<|>" if site.kind == "compare" else r"[-+*/]"
        match = re.search(pattern, gap)
        if match is None:
            return None
        token = match.group()
        expected = _TOKENS.get(type(getattr(site.node, "op", None)))
        if site.kind != "compare" and token != expected:
            return None
        if site.kind == "compare":
            new_token = rng.choice(_COMPARE_SWAPS[token])
        else:
            new_token = _ARITH_SWAPS[token]
        at = begin + len(gap[: match.start()].encode("utf-8"))
        edit = Edit(at, at + len(token), new_token)
        return self._change(site, [edit])

    def _compare(self, site: Site, rng: Any) -> Change | None:
        node = site.node
        assert isinstance(node, ast.Compare)
        return self._token_change(site, node.left, node.comparators[0], rng)

    def _binop(self, site: Site, rng: Any) -> Change | None:
        node = site.node
        if isinstance(node, ast.AugAssign):
            return self._token_change(site, node.target, node.value, rng)
        assert isinstance(node, ast.BinOp)
        return self._token_change(site, node.left, node.right, rng)

    def _minmax(self, site: Site, rng: Any) -> Change | None:
        node = site.node
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        begin, end = self.task.span(node.func)
        return self._change(site, [Edit(begin, end, "max" if node.func.id == "min" else "min")])

    def _drop_term(self, site: Site, rng: Any) -> Change | None:
        node = site.node
        begin, end = self.task.span(node)
        if isinstance(node, ast.AugAssign):
            return self._change(site, [Edit(begin, end, "pass")])
        assert isinstance(node, ast.BinOp)
        keep = node.right if isinstance(node.op, ast.Add) and rng.random() < 0.5 else node.left
        return self._change(site, [Edit(begin, end, self._operand(keep))])

    def _negate_if(self, site: Site, rng: Any) -> Change | None:
        node = site.node
        assert isinstance(node, ast.If)
        begin, end = self.task.span(node.test)
        edit = Edit(begin, end, f"not ({self.task.text(begin, end)})")
        return self._change(Site(site.kind, site.function, node.test), [edit])  # record: the test

    def _drop_cond(self, site: Site, rng: Any) -> Change | None:
        node = site.node
        assert isinstance(node, ast.BoolOp)
        dropped = rng.randrange(len(node.values))
        kept = [self._operand(v, _LOOSE) for i, v in enumerate(node.values) if i != dropped]
        joiner = " and " if isinstance(node.op, ast.And) else " or "
        begin, end = self.task.span(node)
        return self._change(site, [Edit(begin, end, joiner.join(kept))])

    def _drop_rule(self, site: Site, rng: Any) -> Change | None:
        begin, end = self.task.span(site.node)
        if not self.task.text(begin, end).startswith("if"):
            return None  # an ``elif``: its node starts at the keyword of the chain
        return self._change(site, [Edit(begin, end, "pass")])

    def _copy_rule(self, site: Site, rng: Any) -> Change | None:
        node = site.node
        assert isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
        begin, end = self.task.span(node)
        text = self.task.text(begin, end)
        line_start = self.task.text(0, begin).rfind("\n") + 1
        indent = self.task.text(0, begin)[line_start:]
        if not text.startswith("if") or indent.strip():
            return None
        name = self._new_name(site.function)
        threshold = node.test.comparators[0]
        t_begin, t_end = self.task.span(threshold)
        scaled = f'{self._operand(threshold)} * PARAMS["{name}"]'
        copy = text[: t_begin - begin] + scaled + self.task.text(t_end, end)
        rest = (self.task.source or "").encode("utf-8")[end:]
        newline = rest.find(b"\n")
        at = end + (newline if newline >= 0 else len(rest))
        param = {
            "name": name,
            "value": 1.5,
            "space": {"type": "float", "low": 0.25, "high": 4.0, "scale": "log"},
        }
        return self._change(site, [Edit(at, at, "\n" + indent + copy)], param, old=text)

    def _lift(self, site: Site, rng: Any) -> Change | None:
        node = site.node
        assert isinstance(node, ast.Constant)
        begin, end = self.task.span(node)
        value = node.value
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        name = self._new_name(site.function)
        param = {"name": name, "value": value, "space": lift_space(value)}
        return self._change(site, [Edit(begin, end, f'PARAMS["{name}"]')], param)

    # -- helpers ------------------------------------------------------------------------------
    def _operand(self, node: ast.AST, loose: tuple[type, ...] | None = None) -> str:
        """The text of ``node``, parenthesised when it is one of the ``loose`` kinds (by
        default: when it is not an atom)."""
        text = self.task.text(*self.task.span(node))
        if loose is None:
            return text if isinstance(node, _ATOMS) else f"({text})"
        return f"({text})" if isinstance(node, loose) else text

    def _new_name(self, function: str) -> str:
        """A name for a new parameter of ``function`` that ``PARAMS`` does not use yet."""
        base = function.split(".")[-1].strip("_") or "f"
        k = 1
        while f"{base}_c{k}" in self.params:
            k += 1
        return f"{base}_c{k}"

    def _change(
        self,
        site: Site,
        edits: list[Edit],
        param: dict[str, Any] | None = None,
        old: str | None = None,
    ) -> Change:
        """A change of ``site``; its record's old and new texts are the edited node's."""
        begin, end = self.task.span(site.node)
        inner = [Edit(e.begin - begin, e.end - begin, e.text) for e in edits if e.end <= end]
        old_text = self.task.text(begin, end) if old is None else old
        if inner and len(inner) == len(edits):
            new_text = _splice_text(old_text, inner)
        else:  # an insertion after the node (copy_rule): the record is the copy
            new_text = old_text + "".join(e.text for e in edits)
        return Change(site.kind, site.function, edits, old_text, new_text, param)

    def transplants(self, history: History) -> list[tuple[dict[str, Any], float]]:
        """Recorded edits of other members that improved on their parent and apply here."""
        found = []
        lineage = history.lineage()
        for vid in sorted(history.variants, key=sort_key):
            entry = history.variants[vid]
            record = History.meta_info(entry).get("structure")
            parent = history.variants.get(entry.get("parent_id"))
            if not isinstance(record, dict) or parent is None or vid in lineage:
                continue
            if not all(isinstance(record.get(k), str) for k in ("function", "old", "new")):
                continue
            result = history.outcome(entry, parent)
            if result is None or result[0] != "success":
                continue
            if self._locate(record) is not None:
                found.append((record, float(result[1])))
        return found

    def _locate(self, record: dict[str, Any]) -> int | None:
        """Where ``record``'s old text starts in the parent's function of its name."""
        function = self.functions.get(record["function"])
        if function is None or record["old"] == record["new"] or not record["old"]:
            return None
        begin, end = self.task.span(function)
        at = self.task.text(begin, end).find(record["old"])
        if at < 0:
            return None
        return begin + len(self.task.text(begin, end)[:at].encode("utf-8"))

    def transplant(self, record: dict[str, Any]) -> Change | None:
        """Re-make a recorded edit here (with the parameter it added, if its name is free)."""
        at = self._locate(record)
        if at is None:
            return None
        param = record.get("param")
        if param is not None and (not isinstance(param, dict) or param.get("name") in self.params):
            return None
        edit = Edit(at, at + len(record["old"].encode("utf-8")), record["new"])
        change = Change("transplant", record["function"], [edit], record["old"], record["new"])
        change.param = param
        return change


def lift_space(value: float) -> dict[str, Any]:
    """The ``PARAM_SPACE`` entry of a lifted number: a range around its value."""
    if isinstance(value, int):
        spread = max(2, abs(value) // 2)
        return {"type": "int", "low": value - spread, "high": value + spread}
    if value > 0.0:
        low, high = round_sig(value / 4.0), round_sig(value * 4.0)
        return {"type": "float", "low": low, "high": high, "scale": "log"}
    if value < 0.0:
        return {"type": "float", "low": round_sig(value * 4.0), "high": round_sig(value / 4.0)}
    return {"type": "float", "low": -1.0, "high": 1.0}


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """The module's functions and its classes' methods, by name."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield f"{node.name}.{item.name}", item


def _hide(node: ast.AST, hidden: dict[str, set[int]]) -> None:
    """Add the ids of the nodes below ``node`` that no edit touches (``any``: inside f-strings
    and annotations, and a ``while`` loop's condition, where a swapped comparison or operator
    nearly always makes a loop that never ends) and of the numbers that are not lifted
    (``lift``: indices and slices, nested functions' defaults)."""
    if isinstance(node, ast.While):
        hidden["any"].update(id(n) for n in ast.walk(node.test))
    elif isinstance(node, ast.JoinedStr):
        hidden["any"].update(id(n) for n in ast.walk(node))
    elif isinstance(node, ast.AnnAssign | ast.arg) and node.annotation is not None:
        hidden["any"].update(id(n) for n in ast.walk(node.annotation))
    elif isinstance(node, ast.Subscript):
        hidden["lift"].update(id(n) for n in ast.walk(node.slice))
    elif isinstance(node, ast.arguments):
        for default in [*node.defaults, *node.kw_defaults]:
            if default is not None:
                hidden["lift"].update(id(n) for n in ast.walk(default))


def _kinds_of(node: ast.AST, no_lift: bool) -> list[str]:
    """The edit kinds ``node`` is a site of."""
    if isinstance(node, ast.Compare):
        ok = len(node.ops) == 1 and isinstance(node.ops[0], _COMPARE_OPS)
        return ["compare"] if ok else []
    if isinstance(node, ast.BinOp | ast.AugAssign):
        kinds = []
        if isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
            kinds.append("binop")
        if isinstance(node.op, ast.Add | ast.Sub):
            kinds.append("drop_term")
        return kinds
    if isinstance(node, ast.Call):
        is_minmax = isinstance(node.func, ast.Name) and node.func.id in ("min", "max")
        return ["minmax"] if is_minmax else []
    if isinstance(node, ast.If):
        return _if_kinds(node)
    if isinstance(node, ast.BoolOp):
        return ["drop_cond"]
    if isinstance(node, ast.Constant) and not no_lift:
        value = node.value
        counted = isinstance(value, int) and not isinstance(value, bool) and value not in (0, 1)
        return ["lift"] if isinstance(value, float) or counted else []
    return []


def _if_kinds(node: ast.If) -> list[str]:
    """The edit kinds an ``if`` statement is a site of."""
    if node.orelse:
        return ["negate_if"]
    kinds = ["negate_if", "drop_rule"]
    test = node.test
    ordering = ast.Lt | ast.LtE | ast.Gt | ast.GtE
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ordering):
        kinds.append("copy_rule")
    return kinds


def _splice_text(text: str, edits: list[Edit]) -> str:
    """``text`` with edits whose offsets are UTF-8 byte offsets into it."""
    data = text.encode("utf-8")
    out, position = [], 0
    for edit in sorted(edits, key=lambda e: e.begin):
        out.append(data[position : edit.begin] + edit.text.encode("utf-8"))
        position = edit.end
    out.append(data[position:])
    return b"".join(out).decode("utf-8", "replace")


def space_insertion(task: Literals, name: str, spec: dict[str, Any]) -> Edit | None:
    """The edit that adds ``name: spec`` as the last entry of the ``PARAM_SPACE`` literal (its
    other bytes kept); None if ``PARAM_SPACE`` is not a dict display."""
    node = task.node("PARAM_SPACE")
    if not isinstance(node, ast.Dict) or any(key is None for key in node.keys):
        return None
    inline = ", ".join(f"{format_literal(k)}: {format_literal(v)}" for k, v in spec.items())
    entry = f"{format_literal(name)}: {{{inline}}}"
    begin, end = task.span(node)
    if not node.values:
        return Edit(begin + 1, begin + 1, entry)
    first = node.keys[0]
    assert first is not None
    multiline = first.lineno != node.lineno
    pad = "\n" + " " * first.col_offset if multiline else " "
    last_end = task.span(node.values[-1])[1]
    gap = task.text(last_end, end - 1)
    comma = gap.find(",")
    if comma >= 0 and "#" not in gap[:comma]:
        at = last_end + len(gap[: comma + 1].encode("utf-8"))
        return Edit(at, at, pad + entry + ("," if multiline else ""))
    return Edit(last_end, last_end, "," + pad + entry)


def propose_structure(
    task: Literals,
    params: dict[Any, Any],
    history: History,
    rng: Any,
    kind_weights: dict[str, float],
) -> StructuralEdit | None:
    """A structural edit of the task agent that compiles, its kind drawn by ``kind_weights``.

    Returns:
        The edit, or None when the source has no site for any kind with weight (or no edit
        compiled).
    """
    editor = Editor(task, params)
    donors = editor.transplants(history)
    available = [k for k in KINDS if kind_weights.get(k, 0.0) > 0.0]
    available = [k for k in available if editor.sites[k] or (k == "transplant" and donors)]
    for _ in range(_ATTEMPTS):
        if not available:
            return None
        kind = rng.choices(available, weights=[kind_weights[k] for k in available])[0]
        if kind == "transplant":
            ranked = sorted(donors, key=lambda d: -d[1])[:5]
            record = rng.choices(ranked, weights=[1.0 / (i + 1) for i in range(len(ranked))])[0]
            change = editor.transplant(record[0])
        else:
            change = editor.build(rng.choice(editor.sites[kind]), rng)
        checked = _check(task, params, change) if change is not None else None
        if checked is not None:
            return checked
        if kind == "transplant" or len(editor.sites[kind]) <= 1:
            available.remove(kind)
    return None


def _check(task: Literals, params: dict[Any, Any], change: Change) -> StructuralEdit | None:
    """The source ``change`` gives, if it compiles (with its parameter in both literals)."""
    new_params = dict(params)
    edits = list(change.edits)
    if change.param is not None:
        name, spec = change.param.get("name"), change.param.get("space")
        if not isinstance(name, str) or not isinstance(spec, dict) or name in params:
            return None
        insertion = space_insertion(task, name, spec)
        if insertion is None:
            return None
        edits.append(insertion)
        new_params[name] = change.param.get("value")
    try:
        source = task.rewrite("PARAMS", new_params, edits)
        if source is None or source == task.source:
            return None
        compile(source, "task_agent.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    record: dict[str, Any] = {"kind": change.kind, "function": change.function}
    if len(change.old) <= _RECORD_CHARS and len(change.new) <= _RECORD_CHARS:
        record.update(old=change.old, new=change.new)
    if change.param is not None:
        record["param"] = change.param
    return StructuralEdit(source, new_params, record)
