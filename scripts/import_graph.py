"""Count the import cycles between ragecg modules and the imports of ragecg modules made inside functions,
for a source tree (docs/architecture.md, "Layers"). Usage: python scripts/import_graph.py [ROOT] [-v]

A cycle is a strongly connected component of the module graph (every import statement, wherever it sits,
TYPE_CHECKING imports aside, which never run); a package's __init__ counts as the module of that name.
"""
from __future__ import annotations

import ast
import sys
from collections import Counter, defaultdict
from pathlib import Path


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_package: bool, modules: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        names = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
    out = []
    for name in names:
        if name.split(".")[0] != "ragecg":
            continue
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        if name != module:
            out.append(name)
    return out


def analyse(root: Path) -> tuple[dict[str, set[str]], list[tuple[str, int]], list[tuple[str, int]]]:
    files = {_module_name(root, p): p for p in sorted((root / "ragecg").rglob("*.py"))}
    graph: dict[str, set[str]] = defaultdict(set)
    in_function: list[tuple[str, int]] = []
    type_checking: list[tuple[str, int]] = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = _targets(module, node, path.name == "__init__.py", set(files))
            if not targets:
                continue
            up, inside_function, guarded = node, False, False
            while up in parents:
                up = parents[up]
                inside_function |= isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef))
                guarded |= isinstance(up, ast.If) and "TYPE_CHECKING" in ast.unparse(up.test)
            if guarded:
                type_checking.append((module, node.lineno))
                continue
            if inside_function:
                in_function.append((module, node.lineno))
            graph[module].update(targets)
    return graph, in_function, type_checking


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "-v"]
    root = Path(args[0] if args else Path(__file__).resolve().parents[1])
    graph, in_function, type_checking = analyse(root)
    found = cycles(graph)
    print(f"{root}: {len(found)} import cycle(s); {len(in_function)} in-function import statement(s) of ragecg "
          f"modules; {len(type_checking)} TYPE_CHECKING import(s) of ragecg modules")
    for c in found:
        print("  cycle:", " <-> ".join(c))
    by_module = Counter(m for m, _ in in_function)
    print("  in-function imports by module:", dict(sorted(by_module.items())))
    if "-v" in argv:
        for m, line in in_function:
            print(f"    {m}:{line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
