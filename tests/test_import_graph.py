"""Imports flow one way: outputs depend on transforms, never back (issue 13, point 8).

``codegen/__init__.py`` and ``transforms/result.py`` imported each other (each lazily,
inside functions). Now ``codegen`` imports ``Transform`` at module level and nothing under
``kernelshape.transforms`` imports ``codegen`` at all, at any level: the convenience methods
``Transform.emit / as_numpy / as_jax / as_torch`` are gone, the functions of
:mod:`kernelshape.codegen` are the one way (as API.md and the docs use them).

The graph is read from the source with :mod:`ast`, not by importing: module-level imports
(what runs when a module is imported, ``if TYPE_CHECKING:`` blocks left out) give the edges.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "kernelshape"


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(module, node):
    """Module names an import node refers to (kernelshape's own only)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "kernelshape"]
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if base.split(".")[0] != "kernelshape":
        return []
    # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _is_type_checking(node):
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def _module_level(body):
    """Import nodes that run at import time (not inside def / class bodies)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)) and not _is_type_checking(node):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    yield from _module_level(getattr(child, "body", [child])
                                             if isinstance(child, ast.ExceptHandler)
                                             else [child])


def _graph(level="module"):
    edges = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = (_module_level(tree.body) if level == "module" else
                 (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))))
        edges[module] = {t for n in nodes for t in _resolve(module, n)
                         if t in MODULES and t != module}
    return edges


def _cycles_through(edges, prefixes):
    """Every module-level import cycle through a module whose name starts with a prefix."""
    found = []
    for start in sorted(m for m in edges if m.startswith(prefixes)):
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    found.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def test_the_graph_reader_sees_known_edges():
    edges = _graph()
    assert "kernelshape.transforms.result" in edges["kernelshape.codegen"]
    assert "kernelshape.codegen.emitter" in edges["kernelshape.codegen"]
    assert "kernelshape.transforms.result" in edges["kernelshape.transforms.dks"]
    assert "kernelshape.errors" in edges["kernelshape.codegen.printer"]


@pytest.mark.parametrize("package", ["kernelshape.codegen", "kernelshape.transforms"])
def test_no_import_cycle_through_codegen_or_transforms(package):
    assert _cycles_through(_graph(), (package,)) == []


def test_transforms_never_import_codegen_even_lazily():
    edges = _graph(level="any")
    back = {m: sorted(t for t in targets if t.startswith("kernelshape.codegen"))
            for m, targets in edges.items() if m.startswith("kernelshape.transforms")}
    assert {m: t for m, t in back.items() if t} == {}


def test_codegen_is_not_reached_from_transform_methods():
    from kernelshape.transforms.result import Transform
    for method in ("emit", "as_numpy", "as_jax", "as_torch"):
        assert not hasattr(Transform, method), method


def test_networks_modules_import_one_way_even_lazily():
    # issue 15 ("shape of the code"): _nodes and _walk imported each other; the networks
    # package is now a DAG counting imports inside functions too.
    edges = _graph(level="any")
    inner = {m: {t for t in targets if t.startswith("kernelshape.networks.")}
             for m, targets in edges.items() if m.startswith("kernelshape.networks.")}
    assert _cycles_through(inner, ("kernelshape.networks.",)) == []


@pytest.mark.parametrize("adapter", ["kernelshape.torch", "kernelshape.jax"])
def test_the_core_never_imports_the_model_adapters(adapter):
    edges = _graph(level="any")
    users = sorted(m for m, targets in edges.items()
                   if not m.startswith(adapter) and m != "kernelshape"
                   and any(t.startswith(adapter) for t in targets))
    assert users == []
