"""Reading and rewriting top-level literals in Python source (``PARAMS``), and the agent's state
file.

Only the source span of a literal is rewritten; every other byte of the file is kept, so a
child's diff shows exactly the values that changed. A source is parsed once
(:class:`Literals`), whatever is read from it or written into it.
"""

from __future__ import annotations

import ast
import json
import math
from typing import Any


def read_text(path: str) -> str | None:
    """Return the UTF-8 text of ``path``, or ``None`` if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, byte for byte (no newline translation)."""
    with open(path, "wb") as handle:
        handle.write(text.encode("utf-8"))


def read_state(path: str) -> dict[str, Any] | None:
    """The JSON object in the state file ``path`` (``None`` if absent, unreadable or not an
    object)."""
    text = read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def write_state(path: str, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` as JSON, one key per line (readable diffs)."""
    write_text(path, json.dumps(state, indent=2) + "\n")


class Literals:
    """The top-level literal assignments of one source, parsed once.

    Args:
        source: Python source (``None``, or source that does not parse, holds no literal).
    """

    def __init__(self, source: str | None) -> None:
        self.source = source
        self._nodes: dict[str, ast.expr | None] = {}
        if source is None:
            return
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self._nodes[target.id] = node.value if len(node.targets) == 1 else None
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                self._nodes[node.target.id] = node.value

    def node(self, name: str) -> ast.expr | None:
        """The value node of the last top-level ``name = <value>`` assignment, if any."""
        return self._nodes.get(name)

    def value(self, name: str) -> Any:
        """The value of the top-level literal ``name`` (``None`` if absent or not a literal)."""
        node = self.node(name)
        if node is None:
            return None
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None

    def rewrite(self, name: str, value: Any) -> str | None:
        """The source with exactly the span of the literal assigned to ``name`` replaced by
        ``value`` (``None`` for no source).

        The new literal is formatted one key per line (``ruff format`` style); everything outside
        the span is kept byte for byte. Offsets from :mod:`ast` are UTF-8 byte offsets, so the
        splice is done on bytes.
        """
        node = self.node(name)
        if self.source is None or node is None or node.end_lineno is None:
            return self.source
        assert node.end_col_offset is not None
        data = self.source.encode("utf-8")
        starts = [0]
        for line in data.splitlines(keepends=True):
            starts.append(starts[-1] + len(line))
        begin = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset
        line_bytes = data[starts[node.lineno - 1] : begin]
        indent = len(line_bytes) - len(line_bytes.lstrip(b" \t"))
        text = format_literal(value, indent)
        return (data[:begin] + text.encode("utf-8") + data[end:]).decode("utf-8")


def round_sig(value: float, digits: int = 6) -> float:
    """Round ``value`` to ``digits`` significant digits (keeps diffs readable)."""
    if not math.isfinite(value) or value == 0.0:
        return 0.0 if not math.isfinite(value) else value
    return float(f"{value:.{digits}g}")


def format_literal(value: Any, indent: int = 0) -> str:
    """Format ``value`` as a Python literal; non-empty dicts get one key per line."""
    if isinstance(value, dict) and value:
        pad = " " * (indent + 4)
        lines = [
            f"{pad}{format_literal(key)}: {format_literal(item, indent + 4)},"
            for key, item in value.items()
        ]
        return "{\n" + "\n".join(lines) + "\n" + " " * indent + "}"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        return repr(round_sig(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(format_literal(item, indent) for item in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(format_literal(item, indent) for item in value)
        return "(" + inner + ("," if len(value) == 1 else "") + ")"
    return repr(value)
