"""The two-q C map ``E[phi(sqrt(q1) u) phi(sqrt(q2) v)] / sqrt(Q(q1) Q(q2))`` (THEORY.md §1).

References, independent of kernelshape's quadrature:

* closed forms from ``E[exp(i (a U + b V))] = exp(-(a^2 + b^2 + 2 a b c) / 2)`` (sin, cos),
  the arcsine kernel ``E[erf(a U) erf(b V)] = (2/pi) arcsin(2 a b c / sqrt((1 + 2 a^2)(1 +
  2 b^2)))`` (Williams 1997), and for positively homogeneous activations (ReLU, leaky ReLU
  degree 1, Heaviside degree 0) the ``sqrt(q)`` factors cancel: their arc-cosine closed forms
  (THEORY.md §1; Cho & Saul 2009) hold for any q1, q2;
* mpmath at 20 digits (25 for the affine case): for piecewise activations (ReLU, a shifted ReLU, ELU) the inner
  Gaussian expectation in closed form and the outer one by ``mpmath.quad`` split at the kink;
  for tanh a tensor composite Gauss-Legendre rule in mpmath.
"""

import math

import mpmath
import numpy as np
import pytest

import kernelshape as ks
from kernelshape.errors import DomainError, KernelShapeError, UnsupportedError
from kernelshape.maps import c_map, q_map, two_q

CS = [-1.0, -0.95, -0.3, 0.0, 0.4, 0.9, 0.999, 1.0]
QS = [(0.25, 4.0), (1.0, 3.0), (2.0, 0.01)]


def _erf(c, q1, q2):
    k = lambda a, b, cc: 2 / math.pi * math.asin(2 * a * b * cc / math.sqrt(
        (1 + 2 * a * a) * (1 + 2 * b * b)))
    a, b = math.sqrt(q1), math.sqrt(q2)
    return k(a, b, c) / math.sqrt(k(a, a, 1.0) * k(b, b, 1.0))


def _sin(c, q1, q2):
    return math.sinh(math.sqrt(q1 * q2) * c) / math.sqrt(math.sinh(q1) * math.sinh(q2))


def _cos(c, q1, q2):
    return math.cosh(math.sqrt(q1 * q2) * c) / math.sqrt(math.cosh(q1) * math.cosh(q2))


def _relu(c, q1, q2):
    return (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi


def _leaky(slope):
    k = (1 - slope) ** 2 / (math.pi * (1 + slope * slope))
    return lambda c, q1, q2: c + k * (math.sqrt(1 - c * c) - c * math.acos(c))


def _heaviside(c, q1, q2):
    return 0.5 + math.asin(c) / math.pi


CLOSED = {
    "erf": (ks.activation("erf(x)"), _erf),
    "sin": (ks.activation("sin"), _sin),
    "cos": (ks.activation("cos"), _cos),
    "relu": (ks.activation("relu"), _relu),
    "leaky_relu": (ks.activation("leaky_relu", negative_slope=0.2), _leaky(0.2)),
    "heaviside": (ks.activation("heaviside(x)"), _heaviside),
}


@pytest.mark.parametrize("q1, q2", QS)
@pytest.mark.parametrize("name", list(CLOSED))
def test_closed_forms(name, q1, q2):
    # float64 claim: about 1e-14; asserted at 1e-13 absolute (|C| <= 1)
    act, exact = CLOSED[name]
    got = c_map(act, np.array(CS), q=q1, q2=q2)
    want = [exact(c, q1, q2) for c in CS]
    assert got == pytest.approx(want, rel=0, abs=1e-13)


def _mp_q(f, q, splits=(0,)):
    """``E[f(sqrt(q) z)^2]`` by mpmath.quad (tanh-sinh), split at the kinks."""
    r = mpmath.sqrt(q)
    return mpmath.quad(lambda z: mpmath.npdf(z) * f(r * z) ** 2,
                       [-mpmath.inf, *sorted(t / r for t in splits), mpmath.inf])


def _mp_semi_analytic(f, inner, q1, q2, c, kink):
    """``E[f(a U) f(b V)] = E_U[f(a U) m(b c U, b s)]``, ``m(mu, sig) = E[f(mu + sig W)]`` in
    closed form; the outer integral by mpmath.quad split at the kink ``a U = kink``."""
    a, b = mpmath.sqrt(q1), mpmath.sqrt(q2)
    c = mpmath.mpf(c)
    s = mpmath.sqrt(1 - c * c)
    return mpmath.quad(lambda u: mpmath.npdf(u) * f(a * u) * inner(b * c * u, b * s),
                       [-mpmath.inf, kink / a, mpmath.inf])


def _relu_shift(d):
    f = lambda x: max(x + d, 0)
    # E[relu(mu + d + sig W)] = m Phi(m / sig) + sig phi(m / sig), m = mu + d
    inner = lambda mu, sig: ((mu + d) * mpmath.ncdf((mu + d) / sig)
                             + sig * mpmath.npdf((mu + d) / sig))
    return f, inner, -d


def _elu():
    f = lambda x: x if x > 0 else mpmath.expm1(x)
    # E[f(mu + sig W)] = mu Phi(mu/sig) + sig phi(mu/sig) + e^(mu + sig^2/2) Phi(-mu/sig - sig)
    #                    - Phi(-mu/sig)
    inner = lambda mu, sig: (mu * mpmath.ncdf(mu / sig) + sig * mpmath.npdf(mu / sig)
                             + mpmath.exp(mu + sig * sig / 2) * mpmath.ncdf(-mu / sig - sig)
                             - mpmath.ncdf(-mu / sig))
    return f, inner, 0


SEMI_ANALYTIC = {
    # kinked activations on the 2-D route: (activation, reference pieces, (q1, q2, c) cases)
    "relu": (ks.activation("relu"), _relu_shift(0), [(1.0, 4.0, 0.6), (0.3, 1.5, -0.99)]),
    "shifted_relu": (ks.activation("relu").affine(1.0, 0.5), _relu_shift(mpmath.mpf(0.5)),
                     [(1.0, 4.0, 0.6), (0.3, 1.5, -0.99), (2.0, 0.5, 0.9999)]),
    "elu": (ks.activation("elu", alpha=1.0), _elu(), [(0.5, 2.0, 0.3), (3.0, 0.2, -0.8)]),
}


@pytest.mark.parametrize("name", list(SEMI_ANALYTIC))
def test_against_mpmath_semi_analytic(name):
    act, (f, inner, kink), cases = SEMI_ANALYTIC[name]
    for q1, q2, c in cases:
        with mpmath.workdps(20):
            want = _mp_semi_analytic(f, inner, q1, q2, c, kink) / mpmath.sqrt(
                _mp_q(f, q1, (kink,)) * _mp_q(f, q2, (kink,)))
        assert c_map(act, c, q=q1, q2=q2) == pytest.approx(float(want), rel=1e-13, abs=1e-15)


def _mp_gauss_legendre_2d(f, q1, q2, c, reach=9, width=2):
    """``E[f(sqrt(q1) U) f(sqrt(q2) V)]`` by a tensor composite Gauss-Legendre rule in mpmath
    (24 nodes on panels ``width`` wide over [-reach, reach]^2, Gaussian truncation below
    1e-17): for tanh at these q the nearest poles are >= 1.4 away in U and W, so each panel
    rule is accurate far beyond 1e-16."""
    nodes = mpmath.calculus.quadrature.GaussLegendre(mpmath.mp).calc_nodes(4, mpmath.mp.prec)
    h = mpmath.mpf(width) / 2
    rule = [(mid + h * x, h * w * mpmath.npdf(mid + h * x)) for mid in
            (mpmath.mpf(-reach) + (2 * k + 1) * h for k in range(int(2 * reach / width)))
            for x, w in nodes]
    a, b = mpmath.sqrt(q1), mpmath.sqrt(q2)
    c = mpmath.mpf(c)
    s = mpmath.sqrt(1 - c * c)
    return mpmath.fsum(wu * f(a * u) * mpmath.fsum(ww * f(b * (c * u + s * w)) for w, ww in rule)
                       for u, wu in rule)


def test_tanh_against_mpmath_2d():
    with mpmath.workdps(20):
        want = _mp_gauss_legendre_2d(mpmath.tanh, 1.0, 2.5, 0.7) / mpmath.sqrt(
            _mp_q(mpmath.tanh, 1.0) * _mp_q(mpmath.tanh, 2.5))
    assert c_map(ks.activation("tanh"), 0.7, q=1.0, q2=2.5) == pytest.approx(float(want),
                                                                              rel=1e-13)


@pytest.mark.parametrize("name", ["tanh", "gelu", "elu", "relu", "heaviside(x)", "sin"])
def test_both_routes_reduce_to_the_c_map_at_equal_q(name):
    # the general-q quadrature (Hermite series or 2-D rule) at q1 = q2 against the
    # library's one-q C map, an independent implementation (maps/fast.py)
    act = ks.activation(name)
    for q in (0.1, 1.7, 300.0):
        got = two_q.c_map(act, np.array(CS), q, q)
        assert got == pytest.approx(c_map(act, np.array(CS), q=q), rel=0, abs=2e-15)


def test_equal_or_absent_q2_is_the_c_map_itself():
    act = ks.activation("gelu")
    for c in CS:
        ref = c_map(act, c, q=1.3)
        assert c_map(act, c, q=1.3, q2=1.3) == ref
        assert c_map(act, c, q=1.3, q2=None) == ref


@pytest.mark.parametrize("name", ["tanh", "elu"])
def test_symmetric_and_below_one(name):
    act = ks.activation(name)
    a = c_map(act, np.array(CS), q=0.5, q2=2.0)
    b = c_map(act, np.array(CS), q=2.0, q2=0.5)
    assert a == pytest.approx(b, rel=0, abs=1e-14)
    assert np.all(np.abs(a) < 1)   # Cauchy-Schwarz, strict: phi(sqrt(q) x) differ in shape
    assert a[-1] < 1 - 1e-3


def test_affine_activation_is_evaluated_through_its_base():
    # C does not see the output scale; the input scale and shift act like sqrt(q) and a bias
    base = ks.activation("relu")
    act = base.affine(1.5, 0.5, -0.1, 3.0)
    assert c_map(act, 0.3, q=0.7, q2=1.9) == pytest.approx(
        c_map(base.affine(1.5, 0.5, -0.1), 0.3, q=0.7, q2=1.9), rel=1e-14)
    f, inner, kink = _relu_shift(mpmath.mpf(0.5))
    g = lambda x: f(x) - mpmath.mpf(0.1)
    with mpmath.workdps(25):   # relu(1.5 x + 0.5) - 0.1 at q = 0.7, 1.9: shift the inner mean
        cross = _mp_semi_analytic(g, lambda mu, sig: inner(mu, sig) - mpmath.mpf(0.1),
                                  0.7 * 2.25, 1.9 * 2.25, 0.3, kink)
        want = cross / mpmath.sqrt(_mp_q(g, 0.7 * 2.25, (kink,)) * _mp_q(g, 1.9 * 2.25, (kink,)))
    assert c_map(act, 0.3, q=0.7, q2=1.9) == pytest.approx(float(want), rel=1e-13)


def test_shape_and_scalar():
    act = ks.activation("relu")
    assert isinstance(c_map(act, 0.5, q=1.0, q2=2.0), float)
    assert c_map(act, np.zeros((2, 3)), q=1.0, q2=2.0).shape == (2, 3)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda a: c_map(a, 0.5, q=1.0, q2=0.0), DomainError, "q2"),
    (lambda a: c_map(a, 0.5, q=1.0, q2=-2.0), DomainError, "-2.0"),
    (lambda a: c_map(a, 0.5, q=1.0, q2=math.nan), DomainError, "nan"),
    (lambda a: c_map(a, 0.5, q=1.0, q2=[1.0, 2.0]), DomainError, "(2,)"),
    (lambda a: c_map(a, 0.5, q=1.0, q2="2"), DomainError, "'2'"),
    (lambda a: c_map(a, 0.5, q=1.0, q2=2.0, order=1), UnsupportedError, "order=1"),
    (lambda a: c_map(a, 0.5, q=1.0, q2=2.0, digits=20), UnsupportedError, "digits=20"),
    (lambda a: c_map(a, 1.5, q=1.0, q2=2.0), DomainError, "1.5"),
])
def test_bad_input(call, error, fragment):
    with pytest.raises(error) as info:
        call(ks.activation("tanh"))
    assert isinstance(info.value, KernelShapeError) and fragment in str(info.value)


def test_q_map_used_for_the_norm():
    # the normalization is the library's own Q map at each input
    act = ks.activation("softplus")
    cross = two_q.cross_moment(act, np.array([0.25]), 0.5, 2.0)[0]
    norm = math.sqrt(q_map(act, 0.5) * q_map(act, 2.0))
    assert c_map(act, 0.25, q=0.5, q2=2.0) == cross / norm


def test_activation_method_passes_q2_through():
    tanh = ks.activation("tanh")
    assert tanh.c_map(0.4, q=0.5, q2=2.0) == c_map(tanh, 0.4, q=0.5, q2=2.0)
    assert tanh.c_map(0.4, q=0.5, q2=0.5) == tanh.c_map(0.4, q=0.5)


@pytest.mark.parametrize("name", ["erf", "tanh", "x*sigmoid(x)", "elu", "relu(x) - 0.3"])
def test_cross_moments_in_bulk_give_the_bits_of_one_pair_at_a_time(name):
    # kernels on inputs meet up to (inputs x positions) distinct second moments: the bulk
    # route computes Hermite coefficients once per moment (series) or the 2-D rule once per
    # pair (kinks: elu, shifted relu), and must give exactly what cross_moment gives
    phi = ks.activation(name)
    rng = np.random.default_rng(3)
    q1 = rng.choice([0.5, 1.3, 2.7], 40)
    q2 = rng.choice([0.5, 1.3, 2.7, 4.0], 40)
    c = np.concatenate([rng.uniform(-1.0, 1.0, 37), [1.0, -1.0, 0.0]])
    bulk = two_q.cross_moments(phi, c, q1, q2)
    each = np.array([two_q.cross_moment(phi, np.array([v]), a, b)[0]
                     for v, a, b in zip(c, q1, q2)])
    assert np.array_equal(bulk, each)


def test_kernels_on_inputs_with_many_distinct_second_moments():
    # 8 inputs of 6x6 with 'same' padding: 288 distinct second moments, ~41,000 pairs of
    # them (one two-q call per pair took minutes: the Hermite cache of 64 moments thrashed)
    x = np.random.default_rng(0).standard_normal((8, 6, 6, 3))
    net = ks.chain(ks.conv(3, sigma_w=1.4, sigma_b=0.1), ks.nonlinear("erf"),
                   ks.global_avg_pool(), ks.linear())
    k = net.kernel(x, ntk=True)
    assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    # every entry maps to its own pair of moments: three inputs alone give the same block
    part = net.kernel(x[:3], ntk=True)
    np.testing.assert_allclose(part.nngp, k.nngp[:3, :3], rtol=1e-14, atol=0)
    np.testing.assert_allclose(part.ntk, k.ntk[:3, :3], rtol=1e-14, atol=0)
    np.testing.assert_allclose(k.nngp, k.nngp.T, rtol=1e-14, atol=0)


def test_many_pairs_on_the_2d_rule_log_their_expected_cost(caplog, monkeypatch):
    # a kinked activation that is not positively homogeneous has no series: one 2-D rule
    # per distinct pair of second moments, slow enough that the user is told how slow
    monkeypatch.setattr(two_q, "PROGRESS_PAIRS", 3)
    q1, q2 = np.array([0.5, 0.7, 0.9, 1.1]), np.array([1.3, 1.5, 1.7, 1.9])
    with caplog.at_level("WARNING", logger="kernelshape.maps"):
        out = two_q.cross_moments(ks.activation("elu"), np.full(4, 0.3), q1, q2)
    assert np.all(np.isfinite(out))
    (record,) = [r for r in caplog.records if "two-dimensional rule" in r.getMessage()]
    assert "4 distinct pairs of second moments" in record.getMessage()
    assert "expected about" in record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="kernelshape.maps"):
        two_q.cross_moments(ks.activation("elu"), np.full(2, 0.3), q1[:2], q2[:2])
    assert not caplog.records   # below the threshold: silent


@pytest.mark.parametrize("name", ["erf", "2*erf(0.5*x) + 0.1"])
def test_kernels_take_erf_with_unequal_moments_in_closed_form(name):
    # kernels on inputs: E[phi phi] and E[phi' phi'] of the ERF kind at unequal second
    # moments from the arcsine kernel, against Mehler's series (plain) and the one-q
    # closed form at equal moments (with an input scale, output shift and gain)
    from kernelshape.networks import _dual
    phi = ks.activation(name)
    rng = np.random.default_rng(4)
    q1, q2 = rng.uniform(0.2, 5.0, 60), rng.uniform(0.2, 5.0, 60)
    c = np.concatenate([rng.uniform(-1.0, 1.0, 56), [1.0, -1.0, 0.9999999, 0.0]])
    value, slope = _dual._erf_two_q(phi, q1, q2, c * np.sqrt(q1 * q2), True)
    series = two_q.cross_moments(phi, c, q1, q2)
    dseries = two_q.cross_moments(_dual._derivative(phi), c, q1, q2)
    np.testing.assert_allclose(value, series, rtol=0, atol=2e-15 * np.max(np.abs(series)))
    np.testing.assert_allclose(slope, dseries, rtol=0, atol=2e-15 * np.max(np.abs(dseries)))
    shaped = phi.affine(1.7, 0.0, 0.3, 1.5)
    for q in (0.3, 1.0, 4.2):
        k12 = np.linspace(-q, q, 41)
        value, slope = _dual._erf_two_q(shaped, np.full(41, q), np.full(41, q), k12, True)
        want, dwant = _dual.one_q_cov(shaped, q, k12, True)
        np.testing.assert_allclose(value, want, rtol=0, atol=2e-15 * np.max(np.abs(want)))
        np.testing.assert_allclose(slope, dwant, rtol=0, atol=2e-15 * np.max(np.abs(dwant)))
    assert _dual._erf_two_q(ks.activation("tanh"), q1, q2, c, True) is None
    assert _dual._erf_two_q(phi.affine(1.0, 0.2), q1, q2, c, True) is None   # input shift
