"""Closed forms vs mpmath quadrature vs Hermite series: three independent routes.

Each expected number comes from one of the other routes: ``kernelshape.maps.precise``
(mpmath quadrature at 20 digits, claim 10^-20 relative) and ``kernelshape.maps.hermite``
(truncated Mehler series with its own Parseval tail bound). Tolerances follow the claims:
closed form vs quadrature 1e-17 relative (quadrature at 20 digits; 1e-14 when float
parameters enter the closed form as 53-bit sympy Floats); Hermite within its bound + 1e-17.
"""

import math

import mpmath
import pytest
import sympy as sp

import kernelshape as ks
from kernelshape.maps import closed_forms, hermite, precise
from kernelshape.maps.closed_forms import C, Q

DIGITS = 20
TOL = 1e-17


def _tol(spec):
    """Float parameters enter closed forms as 53-bit sympy Floats, and sympy rounds products
    of Floats to 53 bits: such closed forms are good to ~1e-15, not to 20 digits."""
    _, values, affine = spec
    return 1e-14 if values or affine else TOL


def _act(spec):
    name, values, affine = spec
    act = ks.activation(name, **values)
    return act.affine(*affine) if affine else act


# (activation spec, q) with a closed form
CLOSED = [
    (("relu", {}, None), 1.0),
    (("relu", {}, None), 2.5),
    (("Max(0, x)", {}, None), 0.5),
    (("leaky_relu", {"negative_slope": 0.2}, None), 1.0),
    (("leaky_relu", {"negative_slope": -0.7}, None), 0.3),
    (("erf", {}, None), 0.1),
    (("erf", {}, None), 1.0),
    (("erf", {}, None), 7.0),
    (("sin", {}, None), 1.0),
    (("cos", {}, None), 2.0),
    (("exp(x)", {}, None), 0.5),
    (("gaussian", {}, None), 1.0),
    (("x**3 - 2*x + 1", {}, None), 1.5),
    (("relu", {}, (1.7, 0.0, 0.3, 2.0)), 1.0),
    (("relu", {}, (-0.4, 0.0, -0.1, 1.5)), 1.0),
    (("sin", {}, (1.7, 0.5, 0.1, 2.0)), 1.0),
    (("erf", {}, (0.3, 0.0, 0.1, 2.0)), 1.0),
]
CS = [-1.0, -0.6, 0.0, 0.35, 0.9, 1.0]


def _ids(case):
    (name, values, affine), q = case
    extra = f"{values}" if values else ""
    return f"{name}{extra}{'-affine' + str(affine) if affine else ''}-q{q}"


def _value(expr, **subs):
    with mpmath.workdps(30):
        out = sp.N(expr.subs({Q: sp.Rational(subs.get("q", 1.0)),
                              C: sp.Rational(subs.get("c", 0.0))}), 30)
        if out in (sp.oo, sp.zoo) or out.has(sp.zoo):
            return mpmath.inf
        if out == -sp.oo:
            return -mpmath.inf
        return mpmath.mpf(str(out))


def _close(a, b, tol=TOL):
    if mpmath.isinf(a) or mpmath.isinf(b):
        return a == b
    with mpmath.workdps(30):
        return abs(a - b) <= tol * max(1, abs(b))


@pytest.mark.parametrize("case", CLOSED, ids=_ids)
def test_q_map_expr_matches_quadrature(case):
    spec, q = case
    act = _act(spec)
    for order in range(3):
        expr = closed_forms.q_map_expr(act, order)
        assert expr is not None and expr.free_symbols <= {Q}
        assert _close(_value(expr, q=q), precise.q_map(act, q, order, DIGITS), _tol(spec))


@pytest.mark.parametrize("case", CLOSED, ids=_ids)
def test_c_map_expr_matches_quadrature_at_edges_and_zero(case):
    # c in {-1, 0, 1}: one-dimensional quadrature routes (with Dirac masses at c = +-1)
    spec, q = case
    act = _act(spec)
    for order in range(3):
        expr = closed_forms.c_map_expr(act, order, q=sp.Rational(q))
        assert expr is not None and expr.free_symbols <= {C}
        for c in (-1.0, 0.0, 1.0):
            if abs(c) == 1:
                exact = _value(sp.limit(expr, C, sp.Integer(int(c)), "+" if c < 0 else "-"))
            else:
                exact = _value(expr, c=c)
            numeric = precise.c_map(act, c, q, order, DIGITS)
            assert _close(exact, numeric, _tol(spec)), (order, c, exact, numeric)


INTERIOR = [CLOSED[i] for i in (0, 3, 8, 12, 13)]


@pytest.mark.parametrize("case", INTERIOR, ids=_ids)
def test_c_map_expr_matches_double_integral(case):
    spec, q = case
    act = _act(spec)
    c = 0.35
    for order in range(3):
        expr = closed_forms.c_map_expr(act, order, q=sp.Rational(q))
        assert _close(_value(expr, c=c), precise.c_map(act, c, q, order, DIGITS), _tol(spec))


HERMITE = [
    (("relu", {}, None), 1.0, 0.3, 36),
    (("erf", {}, None), 2.0, -0.3, 44),
    (("sin", {}, None), 1.0, 0.8, 24),
    (("exp(x)", {}, None), 0.5, 0.6, 30),
    (("x**3 - 2*x + 1", {}, None), 1.5, 0.7, 4),
]


@pytest.mark.parametrize("spec, q, c, n_max", HERMITE, ids=lambda v: str(v))
def test_hermite_series_matches_closed_form(spec, q, c, n_max):
    act = _act(spec)
    for order in (0, 2):
        series = hermite.series(act, c, q, order=order, n_max=n_max, digits=DIGITS)
        exact = _value(closed_forms.c_map_expr(act, order, q=sp.Rational(q)), c=c)
        assert series.bound < 1e-15
        with mpmath.workdps(30):
            assert abs(series.value - exact) <= series.bound + TOL * max(1, abs(exact))


def test_polynomial_hermite_coefficients_are_exact():
    # x**3 - 2x + 1 at q = 1: sqrt(q) z = z, z^3 = He_3 + 3 He_1 -> a_3 = sqrt(6), a_1 = 1,
    # a_0 = 1 (by hand from He_3 = z^3 - 3 z)
    a = hermite.coefficients(ks.activation("x**3 - 2*x + 1"), 1.0, n_max=5, digits=DIGITS)
    with mpmath.workdps(30):
        expected = [1, 1, 0, mpmath.sqrt(6), 0, 0]
        assert all(abs(x - y) < 1e-19 for x, y in zip(a, expected))


def test_structure_not_name_decides():
    relu = closed_forms.c_map_expr(ks.activation("relu"))
    assert closed_forms.c_map_expr(ks.activation("Max(0, x)")) == relu
    assert closed_forms.c_map_expr(ks.activation("Piecewise((0, x < 0), (x, True))")) == relu
    # THEORY.md §1: ReLU C'' = 1 / (pi sqrt(1 - c^2)), leaky ReLU Q = q (1 + a^2) / 2
    assert sp.simplify(closed_forms.c_map_expr(ks.activation("relu"), 2)
                       - 1 / (sp.pi * sp.sqrt(1 - C**2))) == 0
    slope = closed_forms.q_map_expr(ks.activation("leaky_relu", negative_slope=0.5))
    assert math.isclose(float(slope.subs(Q, 2)), 2 * (1 + 0.25) / 2, rel_tol=1e-15)


@pytest.mark.parametrize("spec", [
    ("tanh", {}, None),               # no closed form known
    ("erf", {}, (0.3, 0.5, 0.0, 1.0)),  # erf with an input shift
    ("relu", {}, (1.0, 0.5, 0.0, 1.0)),  # kink moved away from 0
    ("softsign", {}, None),
])
def test_no_closed_form_returns_none(spec):
    act = _act(spec)
    assert closed_forms.c_map_expr(act) is None
    assert closed_forms.q_map_expr(act) is None


def test_erf_theory_formula():
    # THEORY.md §1: E[erf(sqrt q u) erf(sqrt q v)] = (2/pi) arcsin(2 q c / (1 + 2 q))
    k = closed_forms.kernel_expr(ks.activation("erf"))
    assert sp.simplify(k - 2 / sp.pi * sp.asin(2 * Q * C / (1 + 2 * Q))) == 0
