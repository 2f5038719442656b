"""The package's shape: no import cycles (counting imports inside functions too: a lazy import that closes a cycle
is still one), and the layers import downwards only (docs/ARCHITECTURE.md)."""
from __future__ import annotations

import ast
from pathlib import Path

import snncheck

ROOT = Path(snncheck.__file__).parent

# a lower layer never imports a higher one (graph < backends < plan/align/compare < diagnose < pipeline < ...)
LAYERS = [
    {"errors", "files", "kernels"},
    {"graph"},
    {"backends", "parallel", "records"},
    {"align", "compare", "data", "checkpoint", "convert", "frontends", "memory", "plan", "inputs"},
    {"diagnose", "mutations", "ann2snn"},
    {"report"},
    {"pipeline"},
    {"api", "case", "pytest_plugin"},
    {"commands", "cli", "__main__"},
]


def modules() -> dict:
    """{dotted module name: set of snncheck modules it imports}."""
    names = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        names[".".join(parts)] = path
    out = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("snncheck")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if not base.startswith("snncheck"):
                    continue
                for alias in node.names:
                    deps.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base)
        out[name] = {d for d in deps if d in names and d != name and not name.startswith(d + ".")}
    return out


def test_no_import_cycles():
    graph, cycles = modules(), []
    state = {}

    def visit(n, stack):
        state[n] = "open"
        for d in sorted(graph[n]):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not cycles, cycles


def test_layers_import_downwards_only():
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}

    def top(module: str) -> int:
        return rank[module.split(".")[1]] if "." in module else len(LAYERS)

    upward = [(m, d) for m, deps in modules().items() for d in deps if "." in m and top(d) > top(m)]
    assert not upward, upward
