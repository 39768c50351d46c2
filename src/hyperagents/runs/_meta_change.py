"""Tell a meta agent adapting its own state from a change of its code.

A meta agent keeps what it learns in its state file (:data:`~hyperagents.tasks.META_STATE_FILE`,
where the offline seed writes its adapted strategy in every child), or, as older programs do,
in its own source as literal data (``META = {...}`` rewritten in every child). For the approval
gate either is adaptation, not a new meta agent: the code that reads the state is unchanged,
and it was itself accepted when it appeared. A change to the state file is always state (it is
data, whatever it holds); a change to a source file counts as state only when both versions
parse and are the same program once the values of top-level literal assignments
(``NAME = <literal>``, ``NAME: T = <literal>``, where the literal is what
:func:`ast.literal_eval` accepts, in both versions) are set aside.
"""

from __future__ import annotations

import ast

from hyperagents.tasks import META_STATE_FILE

__all__ = ["state_change", "state_only_change"]


def _decode(source: bytes | str | None) -> str | None:
    if source is None:
        return None
    if isinstance(source, str):
        return source
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_literal(node: ast.expr | None) -> bool:
    if node is None:
        return False
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _skeleton(source: str) -> tuple[str, tuple[str, ...]] | None:
    """The module with its top-level literal values blanked, and the names so blanked (None
    when it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    names: list[str] = []
    for statement in tree.body:
        if isinstance(statement, ast.Assign | ast.AnnAssign) and _is_literal(statement.value):
            statement.value = ast.Constant(value=None)
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names.extend(ast.unparse(t) for t in targets)
    try:
        return ast.dump(tree, include_attributes=False), tuple(names)
    except RecursionError:
        return None


def state_only_change(before: bytes | str | None, after: bytes | str | None) -> bool:
    """Whether ``after`` differs from ``before`` only in the values of top-level literal
    assignments (state a meta agent keeps in its own source), not in its code.

    A file added, deleted, undecodable or unparsable on either side is a change of code.
    """
    old, new = _decode(before), _decode(after)
    if old is None or new is None:
        return False
    a, b = _skeleton(old), _skeleton(new)
    return a is not None and a == b


def state_change(path: str, before: bytes | str | None, after: bytes | str | None) -> bool:
    """Whether the change of the meta file ``path`` from ``before`` to ``after`` is adaptation
    of the meta agent's state (its state file, or literal values in its source), not code."""
    return path == META_STATE_FILE or state_only_change(before, after)
