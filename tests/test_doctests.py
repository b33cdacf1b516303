"""The docstring examples of every kernelshape module run as doctests.

STYLE.md asks for one short runnable example per public function; this file runs them all
(one test per module) with the standard :mod:`doctest` module, and checks that every public
function and class of ``kernelshape.__all__`` has at least one example. Modules that import
torch / jax / matplotlib lazily are imported like any other: the examples that need those
frameworks import them inside the example.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import types

import pytest

import kernelshape as ks

# ``kernelshape.__main__`` runs the command line (and exits) when imported.
_NOT_IMPORTABLE = {"kernelshape.__main__"}

MODULES = ["kernelshape", *sorted(
    info.name for info in pkgutil.walk_packages(ks.__path__, prefix="kernelshape.")
    if info.name not in _NOT_IMPORTABLE)]
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(obj) -> int:
    doc = inspect.getdoc(obj) or ""
    return len(doctest.DocTestParser().get_examples(doc))


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name, tmp_path, monkeypatch):
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)  # examples may write files
    import matplotlib
    matplotlib.use("Agg")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    # globals: a copy of the module namespace, as testmod; a private submodule's examples are
    # written (and rendered in the docs) in its package's public namespace, so add that.
    parent, _, last = name.rpartition(".")
    extra = {}
    if last.startswith("_") and parent:
        package = importlib.import_module(parent)
        extra = {k: getattr(package, k) for k in getattr(package, "__all__", ())}
    tests = finder.find(module, name, extraglobs=extra)
    failures = []
    # DocTestFinder keeps only objects defined in this module: re-exports run where they live.
    for test in sorted(tests, key=lambda t: t.name):
        runner.run(test, out=failures.append, clear_globs=True)
    import matplotlib.pyplot as plt
    plt.close("all")
    assert runner.failures == 0, f"{name}: {runner.failures} doctest failure(s):\n" + \
        "".join(failures)


def test_modules_were_found():
    # Guards against the walk silently finding nothing (then every module test vanishes).
    assert {"kernelshape.activations", "kernelshape.parsing", "kernelshape.errors"} <= set(MODULES)


def _public_callables():
    out = []
    for name in getattr(ks, "__all__", []):
        obj = getattr(ks, name, None)
        if isinstance(obj, types.FunctionType) or (
                isinstance(obj, type) and not issubclass(obj, BaseException)):
            out.append(name)
    return out


@pytest.mark.parametrize("name", _public_callables())
def test_public_callable_has_an_example(name):
    obj = getattr(ks, name)
    count = _examples(obj)
    if isinstance(obj, type) and count == 0:
        # A class may carry its example on its constructor or on a method.
        count = sum(_examples(member) for _, member in inspect.getmembers(obj)
                    if inspect.isfunction(member) or isinstance(member, property))
    assert count >= 1, f"kernelshape.{name} has no docstring example (STYLE.md: one per function)"
