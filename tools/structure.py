#!/usr/bin/env python3
"""The package's shape against the rules of docs/architecture.md ("Rules the tree keeps"):

- no file over 400 lines (the zoo's data tables excepted);
- no function over 80 lines or 8 parameters (self/cls not counted; *args/**kwargs neither:
  a keyword table is how a wide call is passed on);
- no import loop between modules, counting imports inside functions and under
  TYPE_CHECKING (an import a function defers to dodge a loop is still a loop);
- no `from module import _private` across modules.

    python tools/structure.py [src/gmi] [--json]

Prints each breach, then a summary line; exit 1 when there is any. Standard library only, so
it runs before the venv exists (CI, a pre-commit hook).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 8
DATA_TABLES = ("zoo/models.py", "zoo/heldout.py", "zoo/styles.py", "zoo/prompts.py")


@dataclass
class Module:
    name: str  # dotted, e.g. gmi.registry.packed.writer
    path: Path
    lines: int
    imports: set[str] = field(default_factory=set)  # modules of the package it imports


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(node: ast.AST, here: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """(module, names) an import statement reaches, relative imports resolved."""
    if isinstance(node, ast.Import):
        return [(alias.name, []) for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = here.split(".")
        keep = len(base) - node.level + (1 if is_package else 0)
        prefix = ".".join(base[:keep])
        target = f"{prefix}.{node.module}" if node.module else prefix
    else:
        target = node.module or ""
    return [(target, [alias.name for alias in node.names])]


def scan(root: Path) -> tuple[dict[str, Module], list[str]]:
    """Every module of the package under `root`, with its in-package imports; and the
    breaches found while reading them (sizes, parameters, private imports)."""
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p, root): Module(module_name(p, root), p, 0) for p in files}
    breaches: list[str] = []
    for module in modules.values():
        text = module.path.read_text(encoding="utf-8")
        module.lines = len(text.splitlines())
        rel = module.path.relative_to(root).as_posix()
        exempt = rel.endswith(DATA_TABLES)
        if module.lines > MAX_FILE_LINES and not exempt:
            breaches.append(f"{rel}: {module.lines} lines (> {MAX_FILE_LINES})")
        is_package = module.path.name == "__init__.py"
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            breaches.append(f"{rel}:{exc.lineno}: cannot be parsed ({exc.msg})")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not exempt:
                breaches += function_breaches(node, rel)
            for target, names in imported(node, module.name, is_package):
                for candidate in (target, *(f"{target}.{n}" for n in names)):
                    if candidate in modules and candidate != module.name:
                        module.imports.add(candidate)
                if target in modules and target != module.name:
                    breaches += [
                        f"{rel}: imports the private name {target}.{n}"
                        for n in names
                        if n.startswith("_") and not n.startswith("__")
                    ]
    return modules, breaches


def function_breaches(node: ast.FunctionDef | ast.AsyncFunctionDef, rel: str) -> list[str]:
    args = node.args
    named = [
        a.arg
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)
        if a.arg not in ("self", "cls")
    ]
    length = (node.end_lineno or node.lineno) - node.lineno + 1
    out = []
    if length > MAX_FUNCTION_LINES:
        out.append(f"{rel}:{node.lineno} {node.name}: {length} lines (> {MAX_FUNCTION_LINES})")
    if len(named) > MAX_PARAMETERS:
        out.append(f"{rel}:{node.lineno} {node.name}: {len(named)} parameters (> {MAX_PARAMETERS})")
    return out


def import_loops(modules: dict[str, Module]) -> list[list[str]]:
    """Groups of modules that import each other (strongly connected components of the
    import graph, Kosaraju's two passes, iteratively). A package importing its own
    submodules to re-export them is not a loop unless two of its members reach each other."""
    order: list[str] = []
    seen: set[str] = set()
    for start in modules:
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(sorted(modules[start].imports)))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                order.append(node)
                stack.pop()
            elif child not in seen:
                seen.add(child)
                stack.append((child, iter(sorted(modules[child].imports))))
    reverse: dict[str, set[str]] = {name: set() for name in modules}
    for name, module in modules.items():
        for target in module.imports:
            reverse[target].add(name)
    component: dict[str, int] = {}
    groups: list[list[str]] = []
    for start in reversed(order):
        if start in component:
            continue
        component[start] = len(groups)
        members, todo = [start], [start]
        while todo:
            for source in reverse[todo.pop()]:
                if source not in component:
                    component[source] = len(groups)
                    members.append(source)
                    todo.append(source)
        groups.append(sorted(members))
    loops = []
    for members in groups:
        leaves = [m for m in members if not any(o.startswith(m + ".") for o in members)]
        if len(leaves) > 1:
            loops.append(members)
    return loops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default="src/gmi", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    modules, breaches = scan(args.root)
    loops = import_loops(modules)
    breaches += ["import loop: " + " <-> ".join(loop) for loop in loops]
    biggest = sorted(modules.values(), key=lambda m: -m.lines)[:5]
    summary = {
        "modules": len(modules),
        "lines": sum(m.lines for m in modules.values()),
        "breaches": breaches,
        "import_loops": len(loops),
        "biggest": {m.path.relative_to(args.root).as_posix(): m.lines for m in biggest},
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        for breach in breaches:
            print(breach)
        sizes = ", ".join(f"{k} {v}" for k, v in summary["biggest"].items())
        print(
            f"structure: {len(modules)} modules, {summary['lines']} lines; "
            f"{len(breaches)} breach(es), {len(loops)} import loop(s); biggest: {sizes}"
        )
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
