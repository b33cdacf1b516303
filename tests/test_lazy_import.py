"""``import kernelshape`` loads no heavy dependency; every public name resolves on first use
(issue 17). Each check runs in a fresh interpreter, since this test process has imported
everything already."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kernelshape as ks

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "sympy", "mpmath", "scipy", "numba", "matplotlib", "torch", "jax")


def _fresh(code):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def test_import_loads_no_heavy_dependency():
    loaded = _fresh("import sys, json, kernelshape\n"
                    f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert loaded == []


def test_every_public_name_imports_from_a_fresh_process():
    names = _fresh(
        "import json, kernelshape\n"
        "ok = []\n"
        "for name in kernelshape.__all__:\n"
        "    namespace = {}\n"
        "    exec(f'from kernelshape import {name} as value', namespace)\n"
        "    ok.append(name)\n"
        "print(json.dumps(ok))")
    assert names == list(ks.__all__)


def test_dir_lists_every_public_name_and_lazy_submodule():
    listed = set(_fresh("import json, kernelshape\nprint(json.dumps(dir(kernelshape)))"))
    assert set(ks.__all__) <= listed
    assert {"torch", "jax", "maps", "transforms", "networks", "codegen"} <= listed
    assert set(ks.__all__) <= set(dir(ks))


def test_names_resolve_to_their_definitions():
    from kernelshape.activations import activation
    from kernelshape.errors import ImmutableError
    from kernelshape.transforms import dks
    assert ks.activation is activation and ks.dks is dks
    assert ks.ImmutableError is ImmutableError
    assert isinstance(ks.__version__, str) and ks.__version__


def test_pln_stays_the_function_after_its_submodule_is_imported():
    # kernelshape.pln is both a submodule and the function it defines: importing the
    # submodule later must not replace the function on the package
    kinds = _fresh("import json, kernelshape\n"
                   "from kernelshape.pln import HOMOGENEOUS_MODES\n"
                   "import kernelshape.networks\n"
                   "print(json.dumps([callable(kernelshape.pln),\n"
                   "                  type(kernelshape.pln).__name__,\n"
                   "                  type(kernelshape.networks).__name__]))")
    assert kinds == [True, "function", "module"]


def test_submodules_are_reachable_as_attributes():
    found = _fresh("import json, kernelshape as ks\n"
                   "print(json.dumps([ks.parsing.__name__, ks.maps.__name__,\n"
                   "                  ks.init.suo is ks.suo]))")
    assert found == ["kernelshape.parsing", "kernelshape.maps", True]
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = ks.no_such_name
