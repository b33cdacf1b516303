"""The float64 Gaussian engine (kernelshape.maps.gauss): moments by exponents and solver frames.

Reference: composite 16-point Gauss-Legendre on unit panels over |z| <= 10 (split at the
kinks), integrands evaluated in mpmath at 30 digits with ``phi.mp`` (sympy-lambdified, not
the numpy or numba branches). The Gaussian tail beyond |z| = 10 is below 1e-21 and the
float64 nodes limit the rule to ~1e-16 relative, so it resolves the 1e-13 claims here; at
30 digits the difference quotient ``(phi(b + a z) - phi(b)) / a`` keeps 24 digits even at
``a = 1e-6``.
"""

import itertools
import math

import mpmath
import numpy as np
import pytest

from kernelshape import activation
from kernelshape.maps import gauss

_ACTS = {}


def _act(name):
    if name not in _ACTS:
        _ACTS[name] = activation(name)
    return _ACTS[name]


def _mp_expect(act, a, b, integrands):
    """``E[f(z)]`` for each ``f(z, values)`` in ``integrands``; ``values`` holds
    ``u, ua, ub, f1, f2`` at ``z`` (mpmath, 30 digits)."""
    xs, ws = np.polynomial.legendre.leggauss(16)
    with mpmath.workdps(30):
        a, b = mpmath.mpf(a), mpmath.mpf(b)
        pb, p1b = act.mp(b), act.mp(b, 1)
        cuts = {(mpmath.mpf(k.location) - b) / a for k in act.kinks}
        edges = sorted({mpmath.mpf(v) for v in range(-10, 11)} | {c for c in cuts if -10 < c < 10})
        sums = [mpmath.mpf(0)] * len(integrands)
        for lo, hi in itertools.pairwise(edges):
            half, mid = (hi - lo) / 2, (hi + lo) / 2
            for xq, wq in zip(xs, ws):
                z = mid + half * mpmath.mpf(xq)
                x = a * z + b
                f0, f1, f2 = act.mp(x), act.mp(x, 1), act.mp(x, 2)
                u = (f0 - pb) / a
                values = {"u": u, "ua": (z * f1 - u) / a, "ub": (f1 - p1b) / a,
                          "f1": f1, "f2": f2}
                w = mpmath.mpf(wq) * half * mpmath.npdf(z)
                for i, f in enumerate(integrands):
                    sums[i] += w * f(z, values)
        return [float(s) for s in sums]


_INTEGRANDS = {
    "E[u]": lambda z, v: v["u"],
    "E[u^2]": lambda z, v: v["u"] ** 2,
    "E[u f1 z]": lambda z, v: v["u"] * v["f1"] * z,
    "E[f1^2]": lambda z, v: v["f1"] ** 2,
    "E[u ua]": lambda z, v: v["u"] * v["ua"],
    "E[u ub]": lambda z, v: v["u"] * v["ub"],
    "E[u f2 z]": lambda z, v: v["u"] * v["f2"] * z,
}


def _frame_values(fr):
    u, ua, ub, f1, f2, z, w = fr.u, fr.ua, fr.ub, fr.f1, fr.f2, fr.z, fr.w
    return [u @ w, (u * u) @ w, (u * f1 * z) @ w, (f1 * f1) @ w, (u * ua) @ w, (u * ub) @ w,
            (u * f2 * z) @ w]


@pytest.mark.parametrize("a", [1e-6, 0.01, 0.3, 2.0])
@pytest.mark.parametrize("name, b", [("tanh", 0.4), ("softplus", -1.2), ("gelu", 0.3),
                                     ("selu", -0.2), ("elu", 0.5)])
def test_frame_matches_mpmath(name, b, a):
    # claim: every node quantity of the solver frame integrates to its 30-digit value
    # within 1e-13 of the integral's scale (E[|integrand|]; 1e-16 absolute where that
    # vanishes, e.g. u_a = 0 on elu's linear piece), in the difference and t-integral forms
    act = _act(name)
    fr = gauss.moments_of(act).frame(a, b)
    got = _frame_values(fr)
    fs = list(_INTEGRANDS.values())
    both = _mp_expect(act, a, b, fs + [lambda z, v, f=f: abs(f(z, v)) for f in fs])
    want, scale = both[:len(fs)], both[len(fs):]
    for key, g, r, s in zip(_INTEGRANDS, got, want, scale):
        assert abs(g - r) <= 1e-13 * s + 1e-16, (key, g, r)
    assert fr.pb == pytest.approx(float(act.mp(b)), rel=1e-15, abs=1e-300)


@pytest.mark.parametrize("name, b", [("tanh", 0.5493), ("softplus", 0.4055)])
def test_slope_minus_one_keeps_its_digits_at_tiny_scale(name, b):
    # C'(1) - 1 = E[phi'^2] / Var[u] - 1 is O(a^2) = 1e-12 at a = 1e-6; the frame's
    # t-integral form gets it to 1e-15 absolute (the plain difference phi(x) - phi(b)
    # would leave only ~1e-10 of u, so C'(1) would be off by ~1e-10)
    act = _act(name)
    a = 1e-6
    fr = gauss.moments_of(act).frame(a, b)
    assert fr.small
    uc = fr.u - fr.u @ fr.w
    slope = (fr.f1 * fr.f1) @ fr.w / ((uc * uc) @ fr.w)
    m1, m2, e11 = _mp_expect(act, a, b, [lambda z, v: v["u"], lambda z, v: v["u"] ** 2,
                                         lambda z, v: v["f1"] ** 2])
    with mpmath.workdps(30):
        exact = mpmath.mpf(e11) / (mpmath.mpf(m2) - mpmath.mpf(m1) ** 2)
    assert abs(slope - float(exact)) <= 1e-15


def test_small_form_is_used_only_away_from_kinks():
    moments = gauss.moments_of(_act("selu"))
    assert moments.frame(1e-4, -0.5).small            # the kink at 0 is 5000 sd away
    assert not moments.frame(1e-4, -1e-4).small       # within reach: difference form
    assert not moments.frame(0.3, -0.5).small


@pytest.mark.parametrize("a", [gauss.A_SMALL * (1 - 1e-12), gauss.A_SMALL * (1 + 1e-12)])
def test_both_forms_agree_at_the_switch(a):
    # the difference form loses ~eps |phi(b)| / a of u: at a = 0.02 about 1e-14 relative
    fr = gauss.moments_of(_act("tanh")).frame(a, 0.7)
    want = _mp_expect(_act("tanh"), a, 0.7, [_INTEGRANDS["E[u^2]"], _INTEGRANDS["E[u ua]"]])
    assert fr.small == (a <= gauss.A_SMALL)
    assert (fr.u * fr.u) @ fr.w == pytest.approx(want[0], rel=5e-14)
    assert (fr.u * fr.ua) @ fr.w == pytest.approx(want[1], rel=1e-10, abs=1e-13)


@pytest.mark.parametrize("name", ["relu", "selu"])
def test_dirac_masses_at_kinks(name):
    # phi'' of a kinked activation holds jump(phi') * pdf(z_k) / |a| at z_k = (x_k - b) / a:
    # d/db E[phi'(a z + b)] = E[phi''] (smooth part) + that mass, checked against the
    # central difference of the 30-digit E[phi'] (step 1e-5: error ~1e-10 * E[phi''''])
    act = _act(name)
    a, b = 0.7, 0.3
    fr = gauss.moments_of(act).frame(a, b)
    (zk, omega, uk, _), = fr.diracs
    assert zk == pytest.approx(-b / a, rel=1e-15)
    got = fr.f2 @ fr.w + omega
    h = 1e-5
    plus, minus = (_mp_expect(act, a, b + s, [lambda z, v: v["f1"]])[0] for s in (h, -h))
    assert got == pytest.approx((plus - minus) / (2 * h), rel=1e-8)
    assert uk == pytest.approx(float((act.mp(0) - act.mp(b)) / a), rel=1e-14)


def test_frame_of_a_transformed_activation_folds_the_affine_map():
    # phi_hat(x) = g (phi(s x + t) + d): u_hat = g s u(s a, s b + t), phi_hat' = g s phi'
    base = _act("softplus")
    s, t, d, g = 1.7, -0.4, 0.3, 2.5
    hat = base.affine(s, t, d, g)
    a, b = 0.2, 0.6
    fh = gauss.moments_of(hat).frame(a, b)
    fb = gauss.moments_of(base).frame(s * a, s * b + t)
    np.testing.assert_allclose(fh.u, g * s * fb.u, rtol=1e-14)
    np.testing.assert_allclose(fh.ua, g * s * s * fb.ua, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(fh.f2, g * s * s * fb.f2, rtol=1e-14)
    assert fh.pb == pytest.approx(g * (fb.pb + d), rel=1e-15)


def test_moments_depend_only_on_their_arguments():
    # every call starts from refinement level 0: a call that needs fine panels does not
    # change the bits of a later call elsewhere
    act = _act("tanh").affine(40.0)
    terms, _ = gauss.terms_array([(2, 0, 0, 0), (0, 2, 0, 1)])
    moments = gauss.Moments(act)
    first = moments(terms, 0.3, 0.1)
    moments(terms, 1.0, 0.0)
    assert np.array_equal(first, moments(terms, 0.3, 0.1))
    assert np.array_equal(first, gauss.Moments(act)(terms, 0.3, 0.1))


def test_moments_refine_until_the_rules_agree():
    # tanh(40 x) at input scale 1: panels of width 3 in z see a near-step; the embedded
    # check refines (reference: E[tanh(40 z)^2] = 1 - E[sech^2(40 z)] by mpmath.quad)
    act = _act("tanh").affine(40.0)
    terms, _ = gauss.terms_array([(2, 0, 0, 0)])
    got = gauss.Moments(act)(terms, 1.0, 0.0)[0]
    with mpmath.workdps(30):
        ref = 1 - mpmath.quad(lambda z: mpmath.sech(40 * z) ** 2 * mpmath.npdf(z),
                              [-mpmath.inf, -0.5, 0, 0.5, mpmath.inf])
    assert got == pytest.approx(float(ref), rel=1e-13)


def test_expect_example_values():
    # closed forms: E[relu(z)^2] = 1/2, E[relu'(z) z] = pdf(0) (Stein: E[z 1{z>0}])
    got = gauss.expect(_act("relu"), [(0, 0, 0), (1, -1, 1)])
    assert got[0] == pytest.approx(0.5, rel=1e-15)
    assert got[1] == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-15)


@pytest.mark.parametrize("a, b", [(0.3, -3.0), (0.1, -3.0), (0.3, -6.0)])
def test_mass_beyond_the_usual_range(a, b):
    # relu(a z + b) with b < 0 is 0 on |z| < -b/a: all the mass is in the tail beyond it
    # (the z-range once stopped at 12 and returned 0 or lost 8 digits). Exact (THEORY §1):
    # E[relu^2] = a^2 ((1 + t^2) P(z > t) - t pdf(t)), E[relu'^2] = P(z > t), t = -b/a.
    got = gauss.expect(activation("relu"), [(0, 0, 0), (1, 1, 0)], a, b)
    with mpmath.workdps(40):
        t = -mpmath.mpf(b) / mpmath.mpf(a)
        tail = mpmath.erfc(t / mpmath.sqrt(2)) / 2
        want = [mpmath.mpf(a) ** 2 * ((1 + t * t) * tail - t * mpmath.npdf(t)), tail]
    for g, w in zip(got, want):
        assert g == pytest.approx(float(w), rel=1e-13)
