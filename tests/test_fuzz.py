"""Property-based tests (issue 7): every outcome is a verified result or a KernelShapeError.

Random activation texts are drawn from the parser's vocabulary (compositions, sums,
products, powers, ``where``/``max``/``min``/``abs``/``relu`` pieces, a parameter ``a``);
random targets and networks (mlp, resnet, residual/normalized-sum compositions) go to the
solvers. For each example the only acceptable outcomes are:

* a :class:`~kernelshape.errors.KernelShapeError` (raised anywhere along the way), or
* a result that verifies: maps finite, inside their ranges and equal to the independent
  reference of :class:`conftest.Reference` (sympy -> mpmath, no shared code) within 1e-9;
  solver residuals re-evaluated by that reference; local targets re-derived from the
  network (``max_slope(xi) = zeta``, ``max_curvature`` for TAT).

Anything else (a NaN, an inf where a finite value exists, a ``ValueError`` from deep inside,
a hang past :func:`conftest.time_limit`) fails the example. Budgets: see ``conftest.py``
(``HYPOTHESIS_PROFILE=long`` for a longer local hunt). Examples that compile a fresh numba
module (a new expression) are few; solver properties reuse built-in kernels through
``Activation.affine``, which shares the base's compiled module.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import warnings

import numpy as np
import pytest
import sympy as sp
from conftest import Reference, examples, time_limit
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kernelshape as ks
from kernelshape import errors as E
from kernelshape.networks import (
    chain,
    linear,
    mlp,
    nonlinear,
    normalized_sum,
    residual,
    resnet,
)
from kernelshape.parsing import parse_expression
from kernelshape.transforms.dks import dks
from kernelshape.transforms.tat import tat

# -- random activation text ------------------------------------------------------------------
_LEAVES = st.sampled_from(["x", "x", "x", "x", "0.5", "2", "1.5", "a"])
_UNARY = ["tanh({})", "sin({})", "cos({})", "atan({})", "asinh({})", "erf({})",
          "sigmoid({})", "softplus({})", "exp(-({})**2)", "abs({})", "relu({})", "({})**2",
          "({})**3", "exp({})", "-({})", "sign({})", "heaviside({})"]
_BINARY = ["({}) + ({})", "({}) - ({})", "({}) * ({})", "max({}, {})", "min({}, {})",
           "({}) / (1 + ({})**2)"]
_THRESHOLDS = ["-1", "0", "0.5", "1.5"]


def _extend(children):
    unary = st.tuples(st.sampled_from(_UNARY), children).map(lambda t: t[0].format(t[1]))
    binary = st.tuples(st.sampled_from(_BINARY), children, children).map(
        lambda t: t[0].format(t[1], t[2]))
    where = st.tuples(st.sampled_from(_THRESHOLDS), children, children).map(
        lambda t: f"where(x < {t[0]}, {t[1]}, {t[2]})")
    return st.one_of(unary, binary, where)


EXPRESSIONS = st.recursive(_LEAVES, _extend, max_leaves=5).filter(
    lambda text: re.search(r"\bx\b", text) is not None)
PARAMETER = st.floats(-2.0, 2.0, allow_nan=False).map(lambda v: round(v, 3))


def build(text, a):
    """``ks.activation`` with the parameter ``a`` fixed when the text uses it."""
    values = {"a": a} if re.search(r"\ba\b", text) else {}
    return ks.activation(text, **values)


def outcome(fn):
    try:
        return fn()
    except E.KernelShapeError as err:
        return err


@contextlib.contextmanager
def known_solver_warnings():
    """Silence exactly the known bug of test_dks_solver_leaks_numpy_warnings (remove when fixed).

    Everything else still fails the example (the suite runs with filterwarnings=error), and
    the result must still verify.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="invalid value encountered in divide",
                                category=RuntimeWarning, module=r"kernelshape\.transforms\.dks")
        yield


def test_dks_solver_leaks_numpy_warnings():
    # found by test_fuzz_solvers_on_builtin_variants
    got = outcome(lambda: dks("gelu_exact", network=resnet(101, 0.5214376492407263,
                                                           version="v1"),
                              zeta=15.704425112808211, q_slope=1.8948176056764248))
    assert got is not None


# -- cheap: construction, parsing round trip, real and finite where accepted -----------------
@settings(max_examples=examples(0.5), deadline=None)
@given(text=EXPRESSIONS, a=PARAMETER,
       points=st.lists(st.floats(-60, 60, allow_nan=False), min_size=3, max_size=6))
def test_fuzz_activation_text(text, a, points):
    with time_limit(60, f"activation({text!r})"):
        phi = outcome(lambda: build(text, a))
        if isinstance(phi, E.KernelShapeError):
            return
        # The printed template reads back to the same function (Transform.to_dict stores it).
        # (sstr rounds Floats to 15 digits, so only the value is compared here; the JSON
        # round trip keeps the exact tree through srepr: test_round_trip_keeps_structure.)
        parsed = parse_expression(sp.sstr(phi.template), phi.parameters)
        assert parsed == phi.template or sp.simplify(parsed - phi.template) == 0
        import mpmath
        with mpmath.workdps(30):
            for x0 in points:
                value = phi.mp(x0)
                assert mpmath.isfinite(mpmath.mpf(value)), (x0, value)
        pieces = phi.pieces
        assert pieces[0].lo == -math.inf and pieces[-1].hi == math.inf
        assert all(p.hi == q.lo for p, q in itertools.pairwise(pieces))


def _round_trip(text):
    from kernelshape.transforms.result import Transform
    params = {"input_scale": 1.0, "input_shift": 0.0, "output_shift": 0.0, "output_scale": 1.0}
    t = Transform("dks", ks.activation(text), params, {"zeta": 1.5, "xi": 1.5},
                  "mlp(depth=1)", ())
    return t, Transform.from_dict(t.to_dict())


def test_round_trip_of_nested_max():
    # found by test_fuzz_activation_text (long profile): 'min(x, min(0.5, a))'
    t, back = _round_trip("max(x, max(0.5*x, 0.1))")
    assert back.base == t.base


def test_round_trip_keeps_structure():
    # found by test_fuzz_activation_text (long profile)
    t, back = _round_trip("0.5/(1 + x**2)")
    assert back.base == t.base


# -- expensive: fresh expressions through the float64 maps and both solvers ------------------
def _check_maps(phi, q, cs):
    ref = Reference(phi, q)
    Q = phi.q_map(q)
    assert math.isfinite(Q) and Q >= 0
    assert Q == pytest.approx(ref.Q, rel=1e-9, abs=1e-300)
    if Q == 0:
        return
    values = phi.c_map(np.asarray(cs), q=q)
    assert np.all(np.isfinite(values)) and np.all(np.abs(values) <= 1 + 1e-15)
    assert phi.c_map(1.0, q=q) == 1.0
    for c, got in zip(cs, values):
        if abs(c) <= 0.6:
            assert got == pytest.approx(ref.C_series(c), rel=1e-9, abs=1e-12), c
    slopes = phi.c_map(np.asarray(cs), q=q, order=1)
    assert np.all(slopes[np.asarray(cs) >= 0] >= -1e-12)   # C is nondecreasing on [0, 1]


def _check_transform(t, net):
    """Residuals re-evaluated independently; local targets re-derived from the network."""
    for v in t.params.values():
        assert math.isfinite(float(v))
    ref = Reference(t.activation)
    assert ref.Q == pytest.approx(1.0, abs=1e-10)
    if t.method == "dks":
        assert net.max_slope(t.targets["xi"]) == pytest.approx(t.targets["zeta"], rel=1e-12)
        assert ref.C0 == pytest.approx(0.0, abs=1e-10)
        assert ref.C_at_one(1) == pytest.approx(t.targets["xi"], abs=1e-10)
        if "q_slope" in t.targets:
            assert ref.Q_derivative(1) == pytest.approx(t.targets["q_slope"], abs=1e-10)
    else:
        assert t.targets["tau_local"] * net.max_curvature(1.0) == pytest.approx(
            t.targets["tau"], rel=1e-12)
        assert ref.Q_derivative(1) == pytest.approx(1.0, abs=1e-10)
        assert ref.C_at_one(1) == pytest.approx(1.0, abs=1e-10)
        assert ref.C_at_one(2) == pytest.approx(t.targets["tau_local"], abs=1e-9)
    for r in t.residuals:
        assert math.isfinite(float(r.achieved))
        assert r.difference <= 1e-12, r


@settings(max_examples=examples(0.1), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(text=EXPRESSIONS, a=PARAMETER, q=st.sampled_from([0.25, 1.0, 3.0]),
       cs=st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=4),
       depth=st.integers(1, 60), zeta=st.floats(1.01, 5.0), tau=st.floats(0.05, 2.0))
def test_fuzz_fresh_activation_maps_and_solves(text, a, q, cs, depth, zeta, tau):
    phi = outcome(lambda: build(text, a))
    assume(not isinstance(phi, E.KernelShapeError))
    with time_limit(300, f"maps and solves of {text!r}"):   # includes numba compilation
        got = outcome(lambda: _check_maps(phi, q, [*cs, 0.0, -1.0, 0.5]))
        if isinstance(got, E.KernelShapeError):
            return
        net = mlp(depth)
        with known_solver_warnings():
            solves = [outcome(solve) for solve in (
                lambda: dks(phi, network=net, zeta=zeta),
                lambda: tat(phi, network=net, tau=tau))]
        for t in solves:
            if not isinstance(t, E.KernelShapeError):
                _check_transform(t, net)


# -- solvers on random affine variants of built-ins and random networks ----------------------
SMOOTH = ["tanh", "softplus", "gelu", "swish", "erf", "atan", "sigmoid", "sin", "asinh",
          "gelu_exact", "mish", "bentid", "softsign", "elu", "selu"]


@st.composite
def networks(draw):
    kind = draw(st.sampled_from(["mlp", "resnet", "residual-chain", "sum"]))
    if kind == "mlp":
        return mlp(draw(st.integers(1, 200)))
    if kind == "resnet":
        return resnet(draw(st.sampled_from([18, 34, 50, 101])),
                      draw(st.floats(0.0, 0.99)), version=draw(st.sampled_from(["v1", "v2"])))
    if kind == "residual-chain":
        block = residual(chain(nonlinear(), linear(), nonlinear()), draw(st.floats(0.0, 0.99)))
        return chain(*[block] * draw(st.integers(1, 30)))
    w = draw(st.floats(0.05, 0.95))
    return chain(normalized_sum([mlp(draw(st.integers(1, 20))), linear()],
                                [w, math.sqrt(1 - w * w)]), nonlinear())


@settings(max_examples=examples(0.5), deadline=None)
@given(name=st.sampled_from(SMOOTH), scale=st.floats(0.3, 3.0), shift=st.floats(-1.0, 1.0),
       out=st.floats(0.2, 5.0), net=networks(), method=st.sampled_from(["dks", "tat"]),
       zeta=st.floats(1.0001, 20.0), q_slope=st.floats(0.5, 2.0), tau=st.floats(0.01, 3.0))
def test_fuzz_solvers_on_builtin_variants(name, scale, shift, out, net, method, zeta,
                                          q_slope, tau):
    phi = ks.activation(name).affine(scale, shift, 0.0, out)
    with time_limit(120, f"{method} of {name} on {net!r}"), known_solver_warnings():
        if method == "dks":
            t = outcome(lambda: dks(phi, network=net, zeta=zeta, q_slope=q_slope))
        else:
            t = outcome(lambda: tat(phi, network=net, tau=tau))
        if isinstance(t, E.KernelShapeError):
            assert str(t), "an error must say what went wrong"
            return
        _check_transform(t, net)


@settings(max_examples=examples(0.5), deadline=None)
@given(net=networks(), eta=st.floats(0.01, 0.999), zeta=st.floats(1.0001, 20.0))
def test_fuzz_leaky_relu_solvers(net, eta, zeta):
    import mpmath

    def leaky_c(c, slope):   # THEORY.md §1 closed form, 30 digits
        with mpmath.workdps(30):
            k = (1 - mpmath.mpf(slope)) ** 2 / (mpmath.pi * (1 + mpmath.mpf(slope) ** 2))
            c = max(min(mpmath.mpf(c), 1), -1)
            return float(c + k * (mpmath.sqrt(1 - c * c) - c * mpmath.acos(c)))

    with time_limit(120, f"leaky ReLU solves on {net!r}"), known_solver_warnings():
        t = outcome(lambda: tat("leaky_relu", network=net, eta=eta))
        if not isinstance(t, E.KernelShapeError):
            slope = t.params["negative_slope"]
            assert 0 <= slope < 1
            assert net.subnet_max(0.0, lambda c: leaky_c(c, slope)) == pytest.approx(
                eta, abs=1e-12)
        else:
            assert isinstance(t, E.UnreachableTargetError)
            assert net.subnet_max(0.0, lambda c: leaky_c(c, 0.0)) < eta   # really unreachable
        t = outcome(lambda: dks("leaky_relu", network=net, zeta=zeta))
        if not isinstance(t, E.KernelShapeError):
            _check_transform(t, net)
