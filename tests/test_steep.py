"""Steep activations: a transition narrower than the quadrature panels is resolved or refused.

Issue 14 point 3: ``tanh(1e4 x)`` gave Q(1) = 1.0 (true 0.99992021154), ``tanh(1e5 x)`` at
digits=30 gave 1.000..., ``tanh(1e6 x)`` gave ``sign(x)``'s C(0.5) = 1/3. References here
are independent of kernelshape's quadrature: the closed form of erf's C map
(``E[erf(a u) erf(a v)] = (2/pi) arcsin(2 a^2 q c / (1 + 2 a^2 q))``, THEORY.md §1) and
``mpmath.quad`` split by hand at the transition.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import kernelshape as ks
from kernelshape.errors import ConvergenceError, UnsupportedError
from kernelshape.maps._features import features
from kernelshape.maps.gauss import expect


def erf_c(a, c, q=1.0, order=0, dps=60):
    """C^(order)(c) of erf(a x) at q from the arcsin closed form, in mpmath."""
    with mpmath.workdps(dps):
        a, q = mpmath.mpf(a), mpmath.mpf(q)
        k = 2 * a * a * q / (1 + 2 * a * a * q)

        def c_map(x):
            return mpmath.asin(k * x) / mpmath.asin(k)
        if order == 0:
            return c_map(mpmath.mpf(c))
        return mpmath.diff(c_map, mpmath.mpf(c), order)


def erf_q(a, q=1.0, dps=60):
    with mpmath.workdps(dps):
        a, q = mpmath.mpf(a), mpmath.mpf(q)
        return 2 / mpmath.pi * mpmath.asin(2 * a * a * q / (1 + 2 * a * a * q))


def split_quad(fn, centre, dps):
    """E[fn(z)] by mpmath.quad on intervals graded by hand towards ``centre``."""
    with mpmath.workdps(dps):
        centre = mpmath.mpf(centre)
        pts = [centre] + [centre + s * mpmath.mpf(10) ** -k for k in range(13)
                          for s in (-1, 1)]
        pts = sorted(set(pts) | {mpmath.mpf(-40), mpmath.mpf(40)})
        return mpmath.quad(lambda z: fn(z) * mpmath.npdf(z), pts)


@pytest.mark.parametrize("text, location, scale", [
    ("tanh(1e6*x)", 0.0, 1e-6),
    ("tanh(1e4*(x - 0.3))", 0.3, 1e-4),
    ("1/(1 + 1e8*x**2)", 0.0, 1e-4),
    ("sigmoid(1e4*x)", 0.0, 1e-4),
    ("softplus(1e5*x)/1e5", 0.0, 1e-5),
    ("tanh(1e4*tanh(x))", 0.0, 1e-4),
    ("tanh(1e4*erf(x))", 0.0, np.sqrt(np.pi) / 2e4),     # erf: no numpy function
])
def test_features_are_read_from_the_expression(text, location, scale):
    (feat,) = features(ks.activation(text).base)
    assert feat.x == pytest.approx(location, abs=1e-12)
    assert feat.scale == pytest.approx(scale, rel=1e-9)


@pytest.mark.parametrize("text", ["tanh", "gelu", "relu", "softplus", "sin", "swish", "mish",
                                  "sin(100*x)"])
def test_ordinary_activations_have_no_steep_features(text):
    assert features(ks.activation(text).base) == ()


@pytest.mark.parametrize("a", [1e2, 1e4, 1e6])
def test_float64_erf_q_and_c_maps_match_the_closed_form(a):
    phi = ks.activation(f"erf({a:g}*x)")
    for q in (1.0, 2.5):
        assert abs(phi.q_map(q) - erf_q(a, q)) <= 1e-13 * erf_q(a, q)
    cs = np.array([-0.99, -0.5, 0.5, 0.9, 0.9999])
    for order in (0, 1):
        got = phi.c_map(cs, order=order)
        for c, v in zip(cs, got):
            ref = erf_c(a, c, order=order)
            assert abs(v - ref) <= 1e-13 * abs(ref), (a, order, c, v, ref)
    ref = erf_c(a, 1.0, order=1)
    assert abs(phi.c_map(1.0, order=1) - ref) <= 1e-13 * ref


@pytest.mark.parametrize("a", [1e4, 1e6])
def test_float64_c2_of_a_steep_activation_is_right_or_refused(a):
    phi = ks.activation(f"erf({a:g}*x)")
    for c in (-0.99, 0.5, 0.9999):
        ref = erf_c(a, c, order=2)
        try:
            got = phi.c_map(c, order=2)
        except ConvergenceError as err:
            assert "cancellation" in str(err) and "digits=N" in str(err)
            continue
        assert abs(got - ref) <= 1e-13 * abs(ref) + 1e-16, (c, got, ref)


def test_float64_tanh_1e4_q_map_is_the_issue_value():
    phi = ks.activation("tanh(1e4*x)")
    ref = split_quad(lambda z: mpmath.tanh(10**4 * z) ** 2, 0, 30)
    assert float(ref) == pytest.approx(0.99992021154, abs=1e-11)
    assert abs(phi.q_map(1.0) - ref) <= 1e-14


def test_float64_tanh_1e6_c_map_is_not_signs():
    # tanh(a x) = sign(x) + r(x), r odd and of width 1/a: E[tanh(aU) tanh(aV)] equals
    # sign's (2/pi) arcsin(c) up to O(1/a^2) (r's first moment vanishes, its second is
    # O(1/a^2)), while Q = 1 - O(1/a). So C(c) = (2/pi) arcsin(c) / Q + O(1e-12).
    a = 10**6
    phi = ks.activation("tanh(1e6*x)")
    q_ref = split_quad(lambda z: mpmath.tanh(a * z) ** 2, 0, 30)
    for c in (0.5, -0.3, 0.9):
        ref = 2 / mpmath.pi * mpmath.asin(c) / q_ref
        got = phi.c_map(c)
        assert abs(got - ref) <= 5e-12, (c, got, ref)
        assert abs(got - 2 / np.pi * np.arcsin(c)) > 1e-7   # not sign(x)'s value


def test_float64_shifted_feature_matches_split_mpmath():
    phi = ks.activation("tanh(1e4*(x - 0.3))")
    ref = split_quad(lambda z: mpmath.tanh(10**4 * (z - mpmath.mpf(3) / 10)) ** 2,
                     mpmath.mpf(3) / 10, 30)
    assert abs(phi.q_map(1.0) - ref) <= 1e-14
    ref1 = split_quad(lambda z: mpmath.tanh(10**4 * (z - mpmath.mpf(3) / 10)),
                      mpmath.mpf(3) / 10, 30)
    assert abs(phi.c_map(0.0) - ref1**2 / ref) <= 1e-14


def test_solver_moments_resolve_a_steep_feature():
    a = 1e4
    got = expect(ks.activation(f"erf({a:g}*x)"), [(0, 0, 0), (1, 1, 0)])
    assert got[0] == pytest.approx(float(erf_q(a)), rel=1e-13)
    # E[phi'^2] = (4 a^2 / pi) / sqrt(1 + 4 a^2)
    assert got[1] == pytest.approx(4 * a * a / np.pi / np.sqrt(1 + 4 * a * a), rel=1e-12)


def test_digits_q_map_of_tanh_1e5_is_right():
    phi = ks.activation("tanh(1e5*x)")
    got = phi.q_map(1.0, digits=30)
    ref = split_quad(lambda z: mpmath.tanh(10**5 * z) ** 2, 0, 45)
    with mpmath.workdps(45):
        assert abs(got - ref) <= mpmath.mpf(10) ** -29 * ref
    assert mpmath.nstr(got, 12) == "0.999992021154"


def test_digits_edges_of_erf_1e6_match_the_closed_form():
    a = 10**6
    phi = ks.activation("erf(1e6*x)")
    for c in (1, -1):
        got = phi.c_map(c, order=1, digits=25)
        ref = erf_c(a, c, order=1, dps=80)
        with mpmath.workdps(60):
            assert abs(got - ref) <= mpmath.mpf(10) ** -24 * abs(ref)


def test_digits_interior_of_a_too_steep_activation_is_refused():
    phi = ks.activation("tanh(1e6*x)")
    with pytest.raises(UnsupportedError, match=r"changes within 1\.0e-6 of x = 0"):
        phi.c_map(0.5, digits=30)


@pytest.mark.parametrize("a", [1e4, 1e6])
def test_two_q_c_map_of_a_steep_activation_matches_the_closed_form(a):
    # E[erf(a sqrt(q1) u) erf(a sqrt(q2) v)] = (2/pi) arcsin(2 a^2 sqrt(q1 q2) c /
    # sqrt((1 + 2 a^2 q1)(1 + 2 a^2 q2))), normalized by sqrt(Q(q1) Q(q2))
    phi = ks.activation(f"erf({a:g}*x)")
    q1, q2 = 1.0, 4.0
    for c in (-0.9, 0.3, 0.95):
        with mpmath.workdps(50):
            aa = mpmath.mpf(a) ** 2
            cross = 2 / mpmath.pi * mpmath.asin(
                2 * aa * mpmath.sqrt(q1 * q2) * c / mpmath.sqrt((1 + 2 * aa * q1)
                                                                * (1 + 2 * aa * q2)))
            ref = cross / mpmath.sqrt(erf_q(a, q1) * erf_q(a, q2))
        got = phi.c_map(c, q=q1, q2=q2)
        assert abs(got - ref) <= 1e-13 * abs(ref), (c, got, ref)
