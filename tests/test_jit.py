"""The generated numba modules: stable rewrites, on-disk cache, fallbacks, staleness."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
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


@pytest.mark.parametrize("expr", [
    sp.exp(X) / (sp.exp(X) + 1),                 # softplus'
    sp.exp(X) / (1 + sp.exp(X)) ** 2,            # softplus'', sigmoid'
    X / (1 + sp.exp(-X)),                        # swish
    sp.tanh(sp.log(1 + sp.exp(X))),              # mish / x
    sp.exp(2 * X) / (sp.exp(X) + 3) ** 2,        # mixed powers of exp(x)
    X * sp.log(1 + sp.exp(X)) + sp.exp(-X) / (1 + sp.exp(-X)),   # log kept whole
])
def test_exponential_ratios_are_printed_overflow_free(expr):
    # Each of these has a finite limit as x -> +-inf; printed naively, exp(710) = inf
    # gives inf / inf = nan (numba) or OverflowError (Python's math). The printed code runs
    # here in plain Python float64. Reference: the sympy expression in mpmath at 50 digits
    # (exponent range unlimited); the tolerance is float64 rounding at |x| <= 800.
    code = _jit._MathPrinter().doprint(_jit.stabilize(expr))
    assert "abs(x)" in code
    namespace = {"math": math, "njit": lambda **_: (lambda f: f), "_CACHE": False}
    template = (Path(_jit.__file__).with_name("_kernels") / "base.py").read_text()
    exec(template, namespace)  # noqa: S102 - kernelshape's own helper template
    fn = eval(f"lambda x: float({code})", namespace)
    for x0 in (-800.0, -30.0, -1.5, 0.0, 0.7, 30.0, 800.0):
        with mpmath.workdps(50):
            ref = sp.lambdify(X, expr, "mpmath")(mpmath.mpf(x0))
        assert fn(x0) == pytest.approx(float(ref), rel=1e-13, abs=1e-300), x0


def test_rational_sums_are_combined_when_leading_terms_cancel():
    # bentid'' = (1 - x^2 / (x^2 + 1)) / (2 sqrt(x^2 + 1)): the bracket is 1 / (x^2 + 1).
    code = _jit.branch_source([sp.diff(sp.sqrt(X**2 + 1) / 2 + X, X)])
    assert "((x*x) + 1.0)**(1.5)" in code
    # ... but a sum without such cancellation is left as written
    assert _jit.stabilize(X + 1 / (X + 2)) == X + 1 / (X + 2)


#: |x| up to 1e5 (q = 1e4 and a Gaussian reach of ~10 standard deviations), the float64
#: overflow thresholds of exp (709.8) and its underflow to zero (745.1), and small |x|.
_WIDE = np.concatenate([[0.0, 0.3, 1.7, 709.5, 710.5, 745.5, 1.2e5], np.logspace(-6, 5, 12)])
_WIDE = np.concatenate([-_WIDE[1:], _WIDE])


def _resolved(fn, x):
    """fn(x) in mpmath, precision raised until two precisions agree to 25 digits on a
    value far above the working precision's absolute resolution (so cancellation in the
    sympy form, e.g. 1 - tanh(x)^2 or log(1 + exp(x)) for x << 0, cannot fake
    agreement); values still unresolved at 450 digits are below 1e-400: 0 in float64."""
    for dps in (50, 150, 450):
        with mpmath.workdps(dps + 30):
            fine = fn(mpmath.mpf(x))
        with mpmath.workdps(dps):
            coarse = fn(mpmath.mpf(x))
            if abs(fine) > mpmath.mpf(10) ** (40 - dps) and abs(coarse - fine) <= abs(
                    fine) * mpmath.mpf(10) ** -25:
                return fine
    return fine if abs(fine) > 1e-300 else mpmath.mpf(0)


@pytest.mark.parametrize("name", ks.builtins())
def test_branch_derivatives_on_a_wide_grid(name):
    # Claim: phi, phi', phi'' in float64 (numba kernels and the numpy branch functions of
    # the solvers, both printed by _jit) are finite wherever the true value is, within
    # 1e-14 of |phi^(k)(x)| + |x phi^(k+1)(x)| (the second term: the change of phi^(k)
    # when x moves by its relative rounding, which no float64 formula can avoid near a
    # zero of phi^(k)). Reference: the sympy derivatives in mpmath (_resolved). Measured
    # worst: 7e-16.
    from kernelshape.maps._vector import branch_functions
    phi = ks.activation(name, **({"negative_slope": 0.2} if name == "leaky_relu" else {}))
    xs = np.array([x for x in _WIDE if x not in phi.breakpoints])
    branch = [next(p.branch for p in phi.pieces if p.lo < x < p.hi) for x in xs]
    ders = [[sp.lambdify(X, sp.diff(b, X, d), "mpmath") for d in range(4)]
            for b in phi.branches]
    vector = branch_functions(phi)
    for order in range(3):
        got = phi(xs, order)
        with np.errstate(all="ignore"):   # inf in intermediates (cosh(1e5)) is fine
            numpy_got = np.array([vector[k][order](np.array([x]))[0]
                                  for x, k in zip(xs, branch)])
        for x, k, g, gn in zip(xs, branch, got, numpy_got):
            ref = _resolved(ders[k][order], x)
            scale = abs(ref) + abs(x * _resolved(ders[k][order + 1], x))
            for value in (g, gn):
                assert math.isfinite(value), (order, x, value, ref)
                assert abs(value - ref) <= 1e-14 * scale + 1e-300, (order, x, value, ref)


def _run(code, env):
    full = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True,
                         text=True, env=full, timeout=300, check=False)
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
