"""Print the structure figures of the package: the largest modules, the longest functions, the
attributes and methods of ``Run``, the import graph between subpackages with its cycles, and
imports of another package's private modules.

    python scripts/structure.py [--top N] [--src src/hyperagents]

Reads the source only (nothing is imported). Imports inside functions count: a cycle hidden by
a lazy import is still a cycle.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "hyperagents"


@dataclass
class Module:
    """One source file: its dotted name, its length and its syntax tree."""

    name: str
    path: Path
    lines: int
    tree: ast.Module
    imports: list[str] = field(default_factory=list)


def load(src: Path) -> list[Module]:
    modules = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        text = path.read_text(encoding="utf-8")
        module = Module(".".join(parts), path, text.count("\n"), ast.parse(text, str(path)))
        module.imports = list(_imports(module))
        modules.append(module)
    return modules


def _imports(module: Module) -> Iterator[str]:
    is_package = module.path.name == "__init__.py"
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def subpackage(name: str) -> str | None:
    """``hyperagents.runs._run`` -> ``runs``; top-level modules are their own unit."""
    parts = name.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def functions(modules: list[Module]) -> list[tuple[int, str]]:
    found = []
    for module in modules:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                found.append((length, f"{module.name}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def run_class(modules: list[Module]) -> tuple[str, int, int, int] | None:
    """(module, lines, attributes, methods) of the class ``Run``."""
    for module in modules:
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef) and node.name == "Run":
                methods = [n for n in node.body if isinstance(n, ast.FunctionDef)]
                attributes = set()
                for sub in ast.walk(node):
                    if (
                        isinstance(sub, ast.Attribute)
                        and isinstance(sub.value, ast.Name)
                        and sub.value.id == "self"
                        and isinstance(sub.ctx, ast.Store)
                    ):
                        attributes.add(sub.attr)
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                return module.name, length, len(attributes), len(methods)
    return None


def graph(modules: list[Module]) -> dict[str, set[str]]:
    units = {unit for m in modules if (unit := subpackage(m.name)) is not None}
    edges: dict[str, set[str]] = defaultdict(set)
    for module in modules:
        source = subpackage(module.name)
        if source is None:
            continue
        edges.setdefault(source, set())
        for target_name in module.imports:
            target = subpackage(target_name)
            if target is not None and target != source and target in units:
                edges[source].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def private_imports(modules: list[Module]) -> list[str]:
    """Imports of a private module (``_name``) of another subpackage, one line per pair."""
    found = set()
    for module in modules:
        source = subpackage(module.name)
        for target in module.imports:
            parts = target.split(".")
            if parts[0] != PACKAGE or len(parts) < 3 or subpackage(target) == source:
                continue
            for depth in range(2, len(parts)):
                if parts[depth].startswith("_") and not parts[depth].startswith("__"):
                    found.add(f"{module.name} -> {'.'.join(parts[: depth + 1])}")
                    break
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--src", type=Path, default=Path(__file__).parents[1] / "src" / PACKAGE)
    args = parser.parse_args(argv)
    modules = load(args.src)
    total = sum(m.lines for m in modules)
    print(f"{len(modules)} modules, {total} lines")
    print(f"\nlargest modules (top {args.top}):")
    for module in sorted(modules, key=lambda m: -m.lines)[: args.top]:
        print(f"  {module.lines:6d}  {module.name}")
    over = [m for m in modules if m.lines > 600]
    print(f"  modules over 600 lines: {len(over)}")
    funcs = functions(modules)
    print(f"\nlongest functions (top {args.top}):")
    for length, where in funcs[: args.top]:
        print(f"  {length:6d}  {where}")
    print(f"  functions over 60 lines: {sum(1 for n, _ in funcs if n > 60)}")
    found = run_class(modules)
    if found is not None:
        name, length, attributes, methods = found
        print(f"\nRun ({name}): {length} lines, {attributes} attributes, {methods} methods")
    edges = graph(modules)
    print("\nimports between subpackages:")
    for source in sorted(edges):
        print(f"  {source} -> {', '.join(sorted(edges[source])) or '(none)'}")
    loops = cycles(edges)
    print(f"import cycles: {len(loops)}")
    for loop in loops:
        print(f"  {' <-> '.join(loop)}")
    private = private_imports(modules)
    print(f"\nprivate modules imported from another subpackage: {len(private)}")
    for line in private:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
