"""The generated numba modules: stable rewrites, on-disk cache, fallbacks, staleness."""

import json
import os
import subprocess
import sys

import pytest
import sympy as sp

import kernelshape as ks
from kernelshape import _jit
from kernelshape.parsing import X


@pytest.mark.parametrize("expr, fragment", [
    (sp.exp(X) - 1, "math.expm1(x)"),
    (3 * sp.exp(X) - 3, "math.expm1(x)"),
    (1 + sp.erf(X), "math.erfc(-x)"),
    (1 - sp.erf(X), "math.erfc(x)"),
    (1 + sp.tanh(X), "_one_plus_tanh(x)"),
    (1 - sp.tanh(X) ** 2, "math.cosh(x)"),
    (sp.sqrt(X**2 + 1) - 1, "math.sqrt((x*x) + 1.0) + 1.0"),
    (sp.log(1 + sp.exp(X)), "_softplus(x)"),
])
def test_cancellation_free_printing(expr, fragment):
    assert fragment in _jit.branch_source([expr])


def test_stabilize_keeps_the_value():
    for expr in (sp.exp(X) - 1, 1 + sp.erf(X), 2 + 2 * sp.tanh(X), 1 - sp.tanh(X) ** 2,
                 sp.sqrt(X**2 + 1) - 1, 5 * sp.exp(2 * X) - 5):
        stable = _jit.stabilize(expr)
        for x0 in (-3.0, -0.1, 0.2, 4.0):
            assert float(stable.subs(X, x0)) == pytest.approx(float(expr.subs(X, x0)), rel=1e-14)


def _run(code, env):
    full = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True,
                         text=True, env=full, timeout=300)
    assert out.returncode == 0, out.stderr
    return out


SNIPPET = ("import kernelshape as ks, json; phi = ks.activation('tanh(x) + x/7');"
           "print(json.dumps(float(phi(0.5))))")


def test_unwritable_cache_dir_falls_back_and_says_so_once(tmp_path):
    # A cache path below a regular file can never be created, even by root.
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = _run(SNIPPET + ";phi2 = ks.activation('tanh(x) + x/9'); phi2(0.1)",
               {"KERNELSHAPE_CACHE_DIR": str(blocker / "cache"), "TMPDIR": str(tmp_path)})
    assert json.loads(out.stdout) == pytest.approx(0.46211715726000974 + 0.5 / 7, rel=1e-15)
    assert out.stderr.count("CacheWarning") == 2  # one for the failure, one for the fallback


def test_cache_is_reused_and_keyed_by_content(tmp_path):
    env = {"KERNELSHAPE_CACHE_DIR": str(tmp_path)}
    _run(SNIPPET, env)
    files = sorted(p.name for p in tmp_path.glob("_kernelshape_jit_*.py"))
    assert len(files) == 1
    _run(SNIPPET, env)  # second process: same file, loads the cached machine code
    assert sorted(p.name for p in tmp_path.glob("_kernelshape_jit_*.py")) == files
    assert any(tmp_path.rglob("*.nbi")), "numba index files should be on disk"


def test_module_name_changes_with_version(monkeypatch):
    branches = (sp.tanh(X) + X / 11,)
    first = _jit.jit_module(branches)
    monkeypatch.setattr(_jit, "_version", lambda: "999.0-test")
    second = _jit.jit_module(branches)
    assert first.__name__ != second.__name__


def test_same_activation_same_module():
    assert ks.activation("tanh").jit is ks.activation("tanh").jit
