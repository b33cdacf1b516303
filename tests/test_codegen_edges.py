"""Generated code at the edges of the float range (issue 14, point 10).

Catalogue: every built-in activation, transformed by each method the solvers accept on
``mlp(depth=50)`` and by one hand-made transform with a negative input scale (so ``x -> inf``
drives ``u -> -inf``), emitted for NumPy, JAX and PyTorch, evaluated in float32 and float64
at ``x = +-10^k`` up to the dtype's largest finite value, at that value itself and at
``+-inf``; values and gradients (NumPy: the emitted ``_grad``; JAX, PyTorch: autodiff).

References: the transformed activation and its derivative in mpmath at 40 digits at the
exact float inputs; at ``+-inf`` the limits in :data:`LIMITS` (``sympy.limit`` of each
built-in and its derivative, rechecked by ``test_limits_table_is_sympys``), with NaN where
no limit exists (sin, cos). Where the exact value exceeds the dtype's range, the expected
result is the correctly signed infinity.

Tolerance: as in ``test_codegen`` (1e-13 float64, 1e-6 float32), relative to the size of
what the float computation combines, ``|ref| + |g| (|phi(u)| + |d| + |phi'(u)| |u|)``,
the last term being the rounding of ``u = a x + b`` (``|u| = |a x| + |b|``). Gradients:
``|ref'| + |g a| (|phi'(u)| + |phi''(u)| |u|)``, plus ``|g a|`` (autodiff's rounding near
``u = 0``); unlike ``test_codegen``, no term grows like ``|u|`` (that allowance would
accept any finite number at ``|x| = 1e300``).

Cases that failed before the asymptotic tails (kernelshape.codegen.tails): float32 gelu's
gradient NaN at ``|x| = 1e20``; float32 bentid's value inf at ``+-1e30`` and gradient 0.9586
instead of 1.4379; float64 bentid wrong from ``|x| = 1e155``, gelu's gradient NaN at 1e300;
NaN values at ``+-inf`` for swish, softsign, gelu, gelu_exact, mish and bentid.
"""

from __future__ import annotations

import functools
import math
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

import kernelshape as ks
import kernelshape.transforms
from kernelshape import codegen
from kernelshape.parsing import X
from kernelshape.transforms.result import Transform

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

RTOL = {np.float64: 1e-13, np.float32: 1e-6}
DTYPES = (np.float64, np.float32)
oo = sp.oo

_SELU_SCALE = sp.Float("1.0507009873554804934193349852946", 32)
_SELU_ALPHA = sp.Float("1.6732632423543772848170429916717", 32)

#: Per built-in: ((phi(-inf), phi'(-inf)), (phi(inf), phi'(inf))), None = no limit.
#: From sympy.limit (test_limits_table_is_sympys); "slope" is leaky_relu's parameter.
LIMITS = {
    "tanh": ((-1, 0), (1, 0)),
    "softplus": ((0, 0), (oo, 1)),
    "relu": ((0, 0), (oo, 1)),
    "leaky_relu": ((-oo, "slope"), (oo, 1)),
    "selu": ((-_SELU_SCALE * _SELU_ALPHA, 0), (oo, _SELU_SCALE)),
    "elu": ((-1, 0), (oo, 1)),
    "swish": ((0, 0), (oo, 1)),
    "sigmoid": ((0, 0), (1, 0)),
    "erf": ((-1, 0), (1, 0)),
    "bentid": ((-oo, sp.Rational(1, 2)), (oo, sp.Rational(3, 2))),
    "atan": ((-sp.pi / 2, 0), (sp.pi / 2, 0)),
    "asinh": ((-oo, 0), (oo, 0)),
    "square": ((oo, -oo), (oo, oo)),
    "softsign": ((-1, 0), (1, 0)),
    "gelu": ((0, 0), (oo, 1)),
    "gelu_exact": ((0, 0), (oo, 1)),
    "mish": ((0, 0), (oo, 1)),
    "sin": ((None, None), (None, None)),
    "cos": ((None, None), (None, None)),
    "gaussian": ((0, 0), (0, 0)),
    "identity": ((-oo, 1), (oo, 1)),
}

#: Expressions users may write, each reaching one more path: sqrt(x**2 + c) through hypot
#: (no limit, so no tail), tails that hold only at +-inf (exact from |x| ~ 1e40, beyond
#: float32's range), a linear tail with an offset, a slope without an offset.
EXPRESSIONS = {
    "sqrt(x**2 + 1)*sin(x)": ((None, None), (None, None)),
    "x/sqrt(x**2 + 1e64)": ((-1, 0), (1, 0)),
    "x*atan(x)": ((oo, -sp.pi / 2), (oo, sp.pi / 2)),
    "x + log(1 + x**2)": ((-oo, 1), (oo, 1)),
}
LIMITS.update(EXPRESSIONS)

#: A hand-made transform for every built-in: negative input scale, |a| < 1 so that
#: u = a x + b stays finite for finite x (an overflowing u is the caller's range, not phi's).
HAND = {"input_scale": -0.75, "input_shift": 0.25, "output_shift": -0.5, "output_scale": 1.5}


@functools.cache
def _solved(name, method):
    """The solver's transform on mlp(depth=50), or None where the solver refuses it."""
    solver = {"dks": ks.transforms.dks, "tat": ks.transforms.tat}[method]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ks.transforms.ReluWarning)
            return solver(ks.activation(name), network=ks.mlp(50))
    except (ks.TransformError, ks.UnsupportedError):
        return None   # see test_codegen.UNSOLVABLE (checked there)


@functools.cache
def transforms(name):
    """(label, transform) pairs for ``name``: solved by dks / tat, and :data:`HAND`."""
    out = [(m, t) for m in ("dks", "tat")
           if name in ks.builtins() and (t := _solved(name, m)) is not None]
    kwargs = {"negative_slope": 0.3} if name == "leaky_relu" else {}
    out.append(("hand", Transform("dks", ks.activation(name, **kwargs), HAND, {}, "mlp", ())))
    return tuple(out)


def _grid(dtype):
    """+-10^k up to the dtype's largest value, that value, +-inf and a few points near 0."""
    big = float(np.finfo(dtype).max)
    step = 2 if dtype == np.float64 else 1
    mags = [10.0 ** k for k in range(0, int(math.log10(big)) + 1, step)]
    mags += [1e20, 1e30, 1e155, 3e38, big, math.inf, 0.5, 3.0, 30.0]
    x = np.array(sorted({m for m in mags if m <= big or m == math.inf}), dtype=dtype)
    return np.concatenate([-x[::-1], [0.0], x]).astype(np.float64)


def _limit(entry, act):
    if entry is None:
        return None
    if entry == "slope":   # the left branch is slope * x, the slope solved or fixed
        base = act.base
        return sp.diff(base.branches[base.pieces[0].branch], X)
    return sp.sympify(entry)


def _at_infinity(name, t, sign):
    """(value, gradient) of the transformed activation as x -> sign * inf (NaN: no limit)."""
    act = t.activation
    a, _, d, g = (float(v) for v in act.affine_params)
    side = LIMITS[name][1 if sign * a > 0 else 0]
    out = []
    for lim, factor, shift in ((_limit(side[0], act), g, d), (_limit(side[1], act), g * a, 0)):
        if lim is None:
            out.append(math.nan)
        elif lim.is_infinite:
            out.append(math.copysign(math.inf, factor * float(sp.sign(lim))))
        else:
            out.append(factor * (float(lim) + shift))
    return out


@functools.cache
def reference(label, name, dtype):
    """x, value and gradient references and their error scales (see the module docstring)."""
    t = dict(transforms(name))[label]
    act, base = t.activation, t.activation.base
    a, b, d, g = (float(v) for v in act.affine_params)
    x = _grid(dtype)
    rows = []
    with mpmath.workdps(40):
        for xi in x:
            if math.isinf(xi):
                value, grad = _at_infinity(name, t, math.copysign(1, xi))
                phi = value / g - d if math.isfinite(value) else 0.0
                rows.append((value, grad, abs(value) + abs(g) * (abs(phi) + abs(d)),
                             abs(grad) + abs(g * a)))
                continue
            u = a * mpmath.mpf(xi) + b
            p0, p1, p2 = (abs(base.mp(u, k)) for k in range(3))
            value, grad = act.mp(xi), act.mp(xi, 1)
            rows.append((value, grad, abs(value) + abs(g) * (p0 + abs(d) + p1 * abs(u)),
                         abs(grad) + abs(g * a) * (p1 + p2 * abs(u) + 1)))
    ref, dref, scale, dscale = (np.array([float(r[k]) for r in rows]) for k in range(4))
    # Where phi' jumps, rounding u may land on the other side: skip those gradients.
    jumps = [k.location for k in base.kinks if k.order <= 1]
    u = a * x + b
    with np.errstate(invalid="ignore"):
        near = [np.abs(u - k) <= 8 * np.finfo(dtype).eps * (np.abs(a * x) + abs(b))
                for k in jumps]
    dscale = np.where(np.any(near, axis=0), np.inf, dscale) if jumps else dscale
    return x, ref, dref, scale, dscale


def evaluate(target, module, fname, x, dtype):
    """Values and derivatives of the emitted activation at ``x`` in ``dtype``."""
    f = getattr(module, fname)
    if target == "numpy":
        xs = np.asarray(x, dtype=dtype)
        with np.errstate(over="ignore", invalid="ignore"):   # inf results are checked below
            return f(xs), getattr(module, f"{fname}_grad")(xs)
    if target == "torch":
        xt = torch.tensor(np.asarray(x, dtype=dtype), requires_grad=True)
        y = f(xt)
        y.sum().backward()
        return y.detach().numpy(), xt.grad.numpy()
    with jax.enable_x64(dtype == np.float64):
        xj = jnp.asarray(np.asarray(x, dtype=dtype))
        return np.asarray(f(xj)), np.asarray(jax.vmap(jax.grad(f))(xj))


def mismatches(got, ref, scale, x, dtype):
    """Points where ``got`` is not ``ref`` within tolerance (NaN, inf and overflow aware)."""
    got = got.astype(np.float64)
    big, rtol = float(np.finfo(dtype).max), RTOL[dtype]
    bad = []
    for xi, g, r, s in zip(x, got, ref, scale):
        if math.isnan(r):
            ok = math.isnan(g)
        elif math.isinf(s):                            # a one-sided derivative at a kink
            ok = True
        else:   # within tolerance; inf where the value or the tolerance band overflows
            band = rtol * s
            ok = abs(g - r) <= band or (math.isinf(g) and (
                band > big or (abs(r) + band > big and (g > 0) == (r > 0))))
        if not ok:
            bad.append(f"x={xi!r}: got {g!r}, expected {r!r}")
    return bad


@pytest.mark.parametrize("target", codegen.TARGETS)
@pytest.mark.parametrize("name", [*ks.builtins(), *EXPRESSIONS])
def test_values_and_gradients_up_to_the_largest_float_and_at_infinity(name, target):
    failures = []
    for label, t in transforms(name):
        module = codegen.load(t, target, name="act")
        for dtype in DTYPES:
            x, ref, dref, scale, dscale = reference(label, name, dtype)
            values, grads = evaluate(target, module, "act", x, dtype)
            assert values.dtype == dtype and grads.dtype == dtype
            where = f"{label} {name} {target} {dtype.__name__}"
            failures += [f"{where} value {m}" for m in mismatches(values, ref, scale, x, dtype)]
            failures += [f"{where} gradient {m}"
                         for m in mismatches(grads, dref, dscale, x, dtype)]
    assert not failures, "\n".join(failures[:40])


def test_every_builtin_has_a_solved_transform_or_is_excluded_for_a_reason():
    """The catalogue covers the solvers' cases; only linear and x**2 have none."""
    unsolved = {name for name in ks.builtins() if len(transforms(name)) == 1}
    assert unsolved == {"identity", "square"}
    assert sum(len(transforms(name)) - 1 for name in ks.builtins()) == 34


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LIMITS))
def test_limits_table_is_sympys(name):
    act = ks.activation(name, **({"negative_slope": 0.3} if name == "leaky_relu" else {}))
    for side, piece, inf in ((0, act.pieces[0], -oo), (1, act.pieces[-1], oo)):
        branch = act.branches[piece.branch]
        for k, expr in enumerate((branch, sp.diff(branch, X))):
            got = sp.limit(expr, X, inf)
            want = _limit(LIMITS[name][side][k], act)
            if want is None:
                assert got.has(sp.AccumBounds)   # sympy's "oscillates, no limit"
            else:
                assert abs(sp.N(got - want, 30)) < 1e-25 if want.is_finite else got == want


@pytest.mark.parametrize("target", codegen.TARGETS)
def test_nan_input_gives_nan_through_every_piece_layout(target):
    """The unmasked piece is a varying one, so NaN never lands on a constant tail."""
    for name in ("tanh", "softsign", "gelu", "x/sqrt(x**2 + 1e64)"):
        _, t = transforms(name)[-1]
        module = codegen.load(t, target, name="act")
        for dtype in DTYPES:
            values, _ = evaluate(target, module, "act", np.array([np.nan, 1.0, np.inf]), dtype)
            assert np.isnan(values[0]) and np.isfinite(values[1]), (name, dtype, values)


def test_emitted_text_uses_hypot_and_tails():
    _, t = transforms("bentid")[-1]
    numpy_src, torch_src = (codegen.emit(t, target).split("def _orthogonal")[0]
                            for target in ("numpy", "torch"))
    assert "np.hypot(" in numpy_src and "np.sqrt(" not in numpy_src
    assert "_hypot(" in torch_src and "def _hypot(" in torch_src
    assert "**3" not in numpy_src   # the derivative goes through u / hypot(u, c)
    assert "u <= -48000000.0" in numpy_src and "u > 28000000.0" in numpy_src   # the tails
    _, t = transforms("x/sqrt(x**2 + 1e64)")[-1]
    assert 'u == float("inf")' in codegen.emit(t, "jax")   # tails only at +-inf


def test_emitted_files_with_every_piece_layout_pass_ruff(tmp_path):
    import subprocess
    import sys
    paths = []
    for name in ("tanh", "softsign", "x/sqrt(x**2 + 1e64)"):
        _, t = transforms(name)[-1]
        for target in codegen.TARGETS:
            paths.append(codegen.write(t, target, tmp_path / f"{len(paths)}.py", name="act"))
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *paths],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("target", codegen.TARGETS)
def test_the_cases_reported_in_issue_14(target):
    """The issue's numbers, for dks on mlp(50) (the catalogue above covers them too)."""
    def run(name, x, dtype):
        t = dict(transforms(name))["dks"]
        module = codegen.load(t, target, name="act")
        return evaluate(target, module, "act", np.array(x), dtype)

    _, grads = run("gelu", [-1e20, 1e20], np.float32)         # was NaN
    assert grads[0] == 0.0 and grads[1] == pytest.approx(1.4273, abs=1e-4)
    _, grads = run("gelu", [-1e300, 1e300], np.float64)       # was NaN
    assert grads[0] == 0.0 and grads[1] == pytest.approx(1.4273, abs=1e-4)
    values, grads = run("bentid", [-1e30, 1e30], np.float32)  # was inf, and 0.9586
    np.testing.assert_allclose(values, [-4.793e29, 1.4379e30], rtol=1e-4)
    np.testing.assert_allclose(grads, [0.47931, 1.4379], rtol=1e-4)
    values, _ = run("bentid", [-1e155, 1e155, 1e300], np.float64)   # was wrong from 1e155
    np.testing.assert_allclose(values, [-4.793e154, 1.4379e155, 1.4379e300], rtol=1e-4)
    for name in ("swish", "softsign", "gelu", "gelu_exact", "mish", "bentid"):   # were NaN
        for dtype in DTYPES:
            values, grads = run(name, [-np.inf, np.inf], dtype)
            assert not np.any(np.isnan(values)) and not np.any(np.isnan(grads)), name


@pytest.mark.xfail(strict=True, reason="no tail found: mpmath cannot evaluate tanh(exp(u)) "
                   "near u = 1.8e308 (OverflowError), so u = inf meets sech(inf)**2 * inf")
def test_known_limit_tail_needs_mpmath_at_the_largest_float():
    t = Transform("dks", ks.activation("tanh(exp(x))"), HAND, {}, "mlp", ())
    _, grads = evaluate("torch", codegen.load(t, "torch", name="act"), "act",
                        np.array([-np.inf]), np.float64)    # x = -inf is u = +inf
    assert grads[0] == 0.0
