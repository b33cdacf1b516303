"""Hostile expressions the parser accepts: each gives a KernelShapeError or the right value.

Issue 14 (points 6, 7 and "Small") and issue 13 (points 3 and 5). The catalogue
:data:`REFUSED` lists text with the error class it must raise (never MemoryError,
OverflowError, ZeroDivisionError or NameError, never minutes of work); the tests below it
check the values of the cases that must work. Work is bounded by the package's own limits,
so every case finishes in seconds; ``time_limit`` only turns a regression into a failure
instead of a hang (it asserts nothing about speed).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
from conftest import time_limit

import kernelshape as ks
from kernelshape import errors as E
from kernelshape.transforms.result import Transform

#: kernelshape._structure.MAX_BREAKPOINTS (checked in test_limits_are_named_in_the_error)
MAX_BREAKPOINTS = 64


def _abs_sum(n):
    return " + ".join(f"abs(x - {i})" for i in range(n))


#: text -> the KernelShapeError it raises when the activation is built.
REFUSED = {
    # numbers beyond float64 or beyond memory
    "exp(exp(exp(x)))": E.MagnitudeError,               # was MemoryError (mpmath at x=33)
    "x + sin(exp(exp(exp(10))))": E.MagnitudeError,     # was OverflowError (printing)
    "x*1e308*10": E.MagnitudeError,                     # was NameError 'inf' in maps
    "1e200*1e200*x": E.MagnitudeError,
    "tanh(x) + exp(exp(800))": E.MagnitudeError,
    "x*exp(1000)": E.MagnitudeError,
    # an infinite slope at a kink: the maps' derivatives do not exist there
    "sqrt(abs(x))": E.UnsupportedError,                 # was ZeroDivisionError in c_map
    "abs(x)**(3/2)": E.UnsupportedError,
    # bounded work: nesting, derivative size, number of breakpoints
    "tanh(" * 20 + "x" + ")" * 20: E.ExpressionError,   # was > 120 s in singularities
    "tanh(" * 60 + "x" + ")" * 60: E.ExpressionError,
    "*".join(f"tanh({k}*x)" for k in range(1, 31)): E.ExpressionError,
    _abs_sum(MAX_BREAKPOINTS + 1): E.ExpressionError,
    # poles that are not removable
    "1/x": E.NotRealError,
    "cos(x)/x": E.NotRealError,
    "x/sin(x)": E.NotRealError,
    "1/(x - 1)**2": E.NotRealError,
    "tan(x)": E.NotRealError,
    "log(x**2)": E.NotRealError,
}


@pytest.mark.parametrize("text", sorted(REFUSED), ids=lambda t: t[:40])
def test_hostile_text_raises_its_kernelshape_error(text):
    with time_limit(60, f"activation({text[:40]!r})"), pytest.raises(REFUSED[text]) as info:
        ks.activation(text)
    assert len(str(info.value)) < 2000


def test_limits_are_named_in_the_error():
    from kernelshape import _structure
    assert _structure.MAX_BREAKPOINTS == MAX_BREAKPOINTS
    with pytest.raises(E.ExpressionError, match=f"at most {_structure.MAX_NESTING}"):
        ks.activation("tanh(" * 60 + "x" + ")" * 60)
    with pytest.raises(E.ExpressionError, match=f"at most {_structure.MAX_DERIVATIVE_OPS}"):
        ks.activation("tanh(" * 20 + "x" + ")" * 20)
    with pytest.raises(E.ExpressionError, match=f"at most {_structure.MAX_BREAKPOINTS}"):
        ks.activation(_abs_sum(_structure.MAX_BREAKPOINTS + 1))
    with pytest.raises(E.MagnitudeError, match="exp\\(exp\\(10\\)\\)"):
        ks.activation("x + sin(exp(exp(exp(10))))")
    with pytest.raises(E.UnsupportedError, match="first derivative .* infinite at x = 0"):
        ks.activation("sqrt(abs(x))")


def test_magnitude_errors_are_also_overflow_errors():
    with pytest.raises(OverflowError):
        ks.activation("x*1e308*10")


def test_sympy_input_is_checked_like_text():
    with pytest.raises(E.MagnitudeError):
        ks.activation(sp.Symbol("x") * sp.exp(sp.exp(sp.exp(10))))


def test_from_dict_with_a_slow_expression_is_bounded():
    data = ks.dks(ks.activation("tanh"), network=ks.mlp(3)).to_dict()
    data["base"]["expr"] = "tanh(" * 20 + "x" + ")" * 20
    data["base"].pop("srepr", None)
    with time_limit(60, "from_dict"), pytest.raises(E.KernelShapeError):
        Transform.from_dict(data)


def test_derivative_constants_beyond_float64_are_a_clear_error():
    # tanh(1e300 x) is representable, its second derivative's 2e600 is not: float64
    # evaluation used to print the constant as `inf` (NameError in the generated code).
    phi = ks.activation("tanh(10**300*x)")
    with time_limit(120, "tanh(10**300*x)"):
        with pytest.raises(E.MagnitudeError, match="float64"):
            phi.c_map(0.5)
        with pytest.raises(E.MagnitudeError, match="float64"):
            phi(0.5)


# -- piecewise-linear sums: n kinks, n + 1 pieces (not 2^n branches) ------------------------
def test_sum_of_abs_terms_has_linear_structure():
    n = 13
    with time_limit(60, "13 abs terms"):
        phi = ks.activation(_abs_sum(n))
        pieces, kinks = phi.pieces, phi.kinks
    assert len(pieces) == n + 1 and len(phi.branches) == n + 1
    assert [k.location for k in kinks] == [float(i) for i in range(n)]
    assert all(k.order == 1 and k.jumps == (0.0, 2.0, 0.0) for k in kinks)
    for x in (-3.5, 0.0, 2.25, 6.0, 12.5, 20.0):
        exact = sum(abs(x - i) for i in range(n))
        assert float(phi.mp(x)) == pytest.approx(exact, rel=1e-15)


def test_sum_of_abs_terms_evaluates_in_float64():
    phi = ks.activation(_abs_sum(6))
    xs = np.linspace(-3, 9, 25)
    with time_limit(120, "compiling 7 linear branches"):
        got = phi(xs)
    np.testing.assert_allclose(got, [sum(abs(x - i) for i in range(6)) for x in xs],
                               rtol=1e-15)


# -- continuous kinks are continuous (issue 13 point 3) ---------------------------------------
@pytest.mark.parametrize("text, locations, slopes", [
    ("Max(x, x**3/3)", [-3**0.5, 0.0, 3**0.5], [2.0, 1.0, 2.0]),
    ("Max(x, 0.2*x**3)", [-5**0.5, 0.0, 5**0.5], [2.0, 1.0, 2.0]),
    ("where(x < 1, x, x**2)", [1.0], [1.0]),
    ("where(x < 0, x, x + x**2)", [0.0], [None]),
])
def test_continuous_kinks_have_no_value_jump(text, locations, slopes):
    phi = ks.activation(text)
    assert [k.location for k in phi.kinks] == pytest.approx(locations, abs=1e-15)
    for kink, slope in zip(phi.kinks, slopes):
        assert kink.jumps[0] == 0.0
        if slope is not None:
            assert kink.order == 1 and kink.jumps[1] == pytest.approx(slope, rel=1e-15)


@pytest.mark.parametrize("text, order, jumps", [
    ("where(x < 0, x, x + x**2)", 2, (0.0, 0.0, 2.0)),   # equal value and slope at 0
    ("Max(x**3, 0)", 3, (0.0, 0.0, 0.0)),
    ("where(x < sqrt(2), x**2, 2*sqrt(2)*x - 2)", 2, (0.0, 0.0, -2.0)),
])
def test_tangent_pieces_are_kinks_of_higher_order(text, order, jumps):
    phi = ks.activation(text)
    assert [(k.order, k.jumps) for k in phi.kinks] == [(order, jumps)]


def test_real_jumps_are_still_jumps():
    phi = ks.activation("where(x < 1, x, 2*x)")
    assert [(k.order, k.jumps[0]) for k in phi.kinks] == [(0, 1.0)]


def test_dks_accepts_a_continuous_kinked_activation():
    phi = ks.activation("Max(x, x**3/3)")
    with time_limit(300, "dks of Max(x, x**3/3)"):
        t = ks.dks(phi, network=ks.mlp(20))
    assert max(r.difference for r in t.residuals) < 1e-10


# -- built-in names as functions (issue 13 point 5) --------------------------------------------
@pytest.mark.parametrize("text, builtin, scale, shift, offset", [
    ("swish(x)", "swish", 1, 0, 0),
    ("gelu(x)", "gelu", 1, 0, 0),
    ("gelu_exact(x)", "gelu_exact", 1, 0, 0),
    ("mish(x)", "mish", 1, 0, 0),
    ("selu(x)", "selu", 1, 0, 0),
    ("swish(2*x) - 1", "swish", 2, 0, -1),
    ("bentid(x + 1)", "bentid", 1, 1, 0),
    ("softsign(x)", "softsign", 1, 0, 0),
])
def test_builtin_names_work_inside_expressions(text, builtin, scale, shift, offset):
    phi = ks.activation(text)
    base = ks.activation(builtin)
    x = sp.Symbol("x", real=True)
    assert sp.simplify(phi.expr - (base.expr.subs(x, scale * x + shift) + offset)) == 0


def test_builtin_inside_products():
    phi = ks.activation("x*softplus(x)")
    assert float(phi.mp(1.5)) == pytest.approx(1.5 * float(mpmath.log1p(mpmath.exp(1.5))),
                                               rel=1e-15)


def test_builtin_parameters_inside_expressions():
    free = ks.activation("leaky_relu(x)")
    assert free.free == ("negative_slope",)
    fixed = ks.activation("leaky_relu(x)", negative_slope=0.2)
    assert float(fixed.mp(-2)) == pytest.approx(-0.4)
    by_argument = ks.activation("leaky_relu(x, 0.2)")
    assert float(by_argument.mp(-2)) == pytest.approx(-0.4)
    assert float(ks.activation("elu(x)").mp(-1)) == pytest.approx(float(mpmath.expm1(-1)))
    assert float(ks.activation("elu(x, 2)").mp(-1)) == pytest.approx(2 * float(mpmath.expm1(-1)))
    declared = ks.activation("elu(x)", alpha=3)
    assert float(declared.mp(-1)) == pytest.approx(3 * float(mpmath.expm1(-1)))
    with pytest.raises(E.ExpressionError, match="elu takes 1 to 2"):
        ks.activation("elu(x, 1, 2)")
    with pytest.raises(E.ExpressionError, match="without calling"):
        ks.activation("x*swish")


def test_unknown_names_suggest_and_keep_python_hints_out_of_the_summary():
    with pytest.raises(E.UnknownNameError) as info:
        ks.activation("tahn")
    err = info.value
    assert err.suggestions[0] == "tanh" and err.name == "tahn"
    assert "did you mean tanh" in str(err) and "parameters=" not in err.summary
    with pytest.raises(E.UnknownNameError) as info:
        ks.activation("x*sigmiod(x)")
    assert info.value.suggestions[0] == "sigmoid"
    with pytest.raises(E.UnknownNameError) as info:
        ks.activation("tanh(a*x)")
    err = info.value
    assert "parameters=" in str(err) and "parameters=" not in err.summary
    assert err.name == "a"


# -- removable poles (issue 14 "Small") ---------------------------------------------------------
SINC_POINTS = [0.0, 1e-300, 1e-12, -1e-8, 1e-5, -0.3, 0.999, 1.0, 1.001, 2.0, -7.5]


def _sinc_derivative(x, order):
    with mpmath.workdps(50):
        return float(mpmath.diff(mpmath.sinc, mpmath.mpf(x), order))


@pytest.mark.parametrize("order", [0, 1, 2])
def test_sinc_values_near_its_removable_pole(order):
    phi = ks.activation("sin(x)/x")
    assert phi.smooth
    got = phi(np.array(SINC_POINTS), order)
    want = [_sinc_derivative(x, order) for x in SINC_POINTS]
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=1e-300)
    assert float(phi.mp(0, order)) == _sinc_derivative(0.0, order)


def test_removable_pole_maps_agree_with_mpmath():
    phi = ks.activation("sin(x)/x")
    for c in (0.3, 0.9):
        fast = phi.c_map(c, order=1)
        precise = phi.c_map(c, order=1, digits=20)
        assert fast == pytest.approx(float(precise), rel=1e-12)
    assert phi.q_map(1.0) == pytest.approx(float(phi.q_map(1.0, digits=20)), rel=1e-13)


def test_other_removable_poles():
    phi = ks.activation("(exp(x) - 1)/x")
    assert phi(0.0) == 1.0 and phi(0.0, 1) == pytest.approx(0.5, rel=1e-15)
    shifted = ks.activation("sin(x - 2)/(x - 2)")
    assert shifted(2.0) == 1.0 and float(shifted.mp(2)) == 1.0
