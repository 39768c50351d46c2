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
        self.tree: ast.Module | None = None
        self._starts: list[int] | None = None
        self._nodes: dict[str, ast.expr | None] = {}
        if source is None:
            return
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return
        self.tree = tree
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

    def rewrite(self, name: str, value: Any, extra: list[Edit] | None = None) -> str | None:
        """The source with exactly the span of the literal assigned to ``name`` replaced by
        ``value`` (``None`` for no source), and the ``extra`` span edits made too.

        The new literal is formatted one key per line (``ruff format`` style); everything outside
        the spans is kept byte for byte.
        """
        if self.source is None:
            return None
        edits = list(extra or [])
        node = self.node(name)
        if node is not None and node.end_lineno is not None:
            begin, end = self.span(node)
            data = self.source.encode("utf-8")
            line_start = data.rfind(b"\n", 0, begin) + 1
            line_bytes = data[line_start:begin]
            indent = len(line_bytes) - len(line_bytes.lstrip(b" \t"))
            edits.append(Edit(begin, end, format_literal(value, indent)))
        return splice(self.source, edits)

    def span(self, node: ast.AST) -> tuple[int, int]:
        """The UTF-8 byte offsets ``(begin, end)`` of ``node`` in the source (:mod:`ast`'s
        offsets are byte offsets within a line)."""
        if self._starts is None:
            data = (self.source or "").encode("utf-8")
            self._starts = [0]
            for line in data.splitlines(keepends=True):
                self._starts.append(self._starts[-1] + len(line))
        lineno, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
        end_lineno = getattr(node, "end_lineno", None) or lineno
        end_col = getattr(node, "end_col_offset", None)
        end_col = col if end_col is None else end_col
        starts = self._starts
        return starts[lineno - 1] + col, starts[end_lineno - 1] + end_col

    def text(self, begin: int, end: int) -> str:
        """The source between two byte offsets."""
        return (self.source or "").encode("utf-8")[begin:end].decode("utf-8", "replace")


# Plain classes rather than dataclasses: every sandboxed process imports this module afresh,
# and creating a dataclass costs about half a millisecond of CPU.
class Edit:
    """Replace the source's bytes ``[begin, end)`` by ``text``.

    Attributes:
        begin: First byte replaced (UTF-8 offset).
        end: First byte kept after the replaced span (``begin`` for an insertion).
        text: The new text.
    """

    __slots__ = ("begin", "end", "text")

    def __init__(self, begin: int, end: int, text: str) -> None:
        self.begin = begin
        self.end = end
        self.text = text

    def __repr__(self) -> str:
        return f"Edit({self.begin!r}, {self.end!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Edit):
            return NotImplemented
        return (self.begin, self.end, self.text) == (other.begin, other.end, other.text)

    def __hash__(self) -> int:
        return hash((self.begin, self.end, self.text))


def splice(source: str, edits: list[Edit]) -> str:
    """``source`` with non-overlapping ``edits`` made (spliced on its UTF-8 bytes).

    Raises:
        ValueError: Two edits overlap.
    """
    data = source.encode("utf-8")
    out: list[bytes] = []
    position = 0
    for edit in sorted(edits, key=lambda e: (e.begin, e.end)):
        if edit.begin < position:
            raise ValueError("overlapping source edits")
        out.append(data[position : edit.begin])
        out.append(edit.text.encode("utf-8"))
        position = edit.end
    out.append(data[position:])
    return b"".join(out).decode("utf-8")


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
