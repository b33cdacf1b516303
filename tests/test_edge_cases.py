"""Numerical edge cases (issue 7): the answer is right, or a clear KernelShapeError is raised.

* correlations exactly at +-1 and within 1e-12 of them;
* input second moments q tiny (1e-8) and large (1e4);
* activations with huge or tiny scales (1e-6*x, 1e6*tanh(x), tanh(1e-6 x), tanh(1e6 x));
* targets at the edge of what is reachable (zeta = 1 + 1e-9, tau = 1e-9, eta at its
  maximum, huge zeta);
* networks of depth 10,000.

References (each says where it comes from): closed forms of THEORY.md §1 (ReLU family,
exp, linear), Taylor expansions about c = +-1 whose dropped terms are far below the
tolerance (``C(1 - d) = 1 - C'(1) d + O(d^2)``, d = 1e-12), the independent Gauss-Legendre
reference of :class:`conftest.Reference` (sympy -> mpmath, shares no code with kernelshape),
and mpmath.quad at 30 digits. Tolerances follow the float64 claim (about 1e-14 relative,
1e-16 absolute near zero) unless the case says why it is looser.
"""

from __future__ import annotations

import math
import re

import mpmath
import numpy as np
import pytest
from conftest import Reference, time_limit

import kernelshape as ks
from kernelshape import errors as E
from kernelshape.networks import chain, linear, mlp, nonlinear, resnet
from kernelshape.transforms.dks import dks
from kernelshape.transforms.tat import tat

DELTAS = (1e-12, 2.0**-52)   # distances from +-1: the 1e-12, and one ulp below 1


def _act(name):
    if name == "leaky_relu_0.2":
        return ks.activation("leaky_relu", negative_slope=0.2)
    return ks.activation(name)


def relu_c(c, order=0):
    """ReLU's normalized C map and derivatives at q = 1 (THEORY.md §1), mpmath, exact c."""
    c = mpmath.mpf(c)
    if order == 0:
        return (mpmath.sqrt(1 - c * c) + (mpmath.pi - mpmath.acos(c)) * c) / mpmath.pi
    if order == 1:
        return (mpmath.pi - mpmath.acos(c)) / mpmath.pi
    return 1 / (mpmath.pi * mpmath.sqrt((1 - c) * (1 + c)))


def outcome(fn):
    """``fn()``'s result, or the KernelShapeError it raised (anything else propagates)."""
    try:
        return fn()
    except E.KernelShapeError as err:
        return err


# -- c at and near +-1 ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "softplus", "gelu", "relu", "leaky_relu_0.2"])
def test_c_exactly_one_and_minus_one(name):
    phi = _act(name)
    ref = Reference(phi)
    assert phi.c_map(1.0) == 1.0                                   # C(1) = 1 by definition
    assert phi.c_map(-1.0) == pytest.approx(ref.C_at_one(0, -1), rel=1e-13, abs=1e-15)
    assert phi.c_map(1.0, order=1) == pytest.approx(ref.C_at_one(1), rel=1e-13)
    assert phi.c_map(-1.0, order=1) == pytest.approx(ref.C_at_one(1, -1), rel=1e-13,
                                                     abs=1e-15)
    second = phi.c_map(1.0, order=2)
    if phi.smooth:
        assert second == pytest.approx(ref.C_at_one(2), rel=1e-12)
    else:   # two Dirac masses of phi'' meet at c = 1 (issue 2): inf, not a finite number
        assert second == math.inf


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("name", ["tanh", "softplus", "gelu", "relu", "leaky_relu_0.2"])
def test_c_within_delta_of_plus_and_minus_one(name, delta):
    # Taylor about +-1: the dropped terms are O(delta^2) for smooth phi and O(delta^1.5)
    # for kinked phi (C'' ~ (1 - c)^(-1/2)), at most 1e-18 here, far below 1e-14.
    phi = _act(name)
    ref = Reference(phi)
    c = 1.0 - delta
    delta = 1.0 - c               # exact (Sterbenz): the distance of the float c from 1
    near_one = phi.c_map(c)
    assert near_one == pytest.approx(1.0 - ref.C_at_one(1) * delta, abs=1e-14)
    assert near_one <= 1.0
    near_minus_one = phi.c_map(-c)
    expected = ref.C_at_one(0, -1) + ref.C_at_one(1, -1) * delta
    assert near_minus_one == pytest.approx(expected, abs=1e-14)
    slopes = phi.c_map(np.array([-c, c]), order=1)
    if phi.smooth:
        assert slopes[1] == pytest.approx(ref.C_at_one(1) - ref.C_at_one(2) * delta,
                                          rel=1e-13)
    assert np.all(np.isfinite(slopes))


@pytest.mark.parametrize("delta", DELTAS + (0.0,))
def test_relu_c_map_near_one_matches_closed_form(delta):
    phi = ks.activation("relu")
    c = 1.0 - delta
    for order in (0, 1):
        assert phi.c_map(c, order=order) == pytest.approx(float(relu_c(c, order)), rel=1e-14)
        assert phi.c_map(-c, order=order) == pytest.approx(float(relu_c(-c, order)),
                                                           rel=1e-14, abs=1e-16)
    second = phi.c_map(c, order=2)
    if delta == 0.0:
        assert second == math.inf
    else:   # 1/(pi sqrt(1 - c^2)) ~ 2e5 at delta = 1e-12: finite and right
        assert second == pytest.approx(float(relu_c(c, 2)), rel=1e-12)


# -- q tiny and large ----------------------------------------------------------------------
def _mp_expect(fn, sqrt_q, points=(0.0,)):
    """E[fn(sqrt_q z)], z ~ N(0, 1), by mpmath.quad at 30 digits, split at ``points`` (x)."""
    with mpmath.workdps(30):
        root = mpmath.mpf(sqrt_q)
        cuts = sorted({mpmath.mpf(p) / root for p in points} | {-1, 1})
        edges = [-mpmath.inf] + cuts + [mpmath.inf]
        total = mpmath.quad(lambda z: fn(root * z) * mpmath.npdf(z), edges)
        return float(total)


@pytest.mark.parametrize("q", [1e-8, 1e4])
def test_relu_q_map_tiny_and_large_q(q):
    phi = ks.activation("relu")
    assert phi.q_map(q) == pytest.approx(q / 2, rel=1e-14)          # Q(q) = q / 2
    assert phi.q_map(q, order=1) == pytest.approx(0.5, rel=1e-13)
    # Q'' = 0; the density-derivative formula divides by (2q)^2, so rounding of size
    # 1e-16 * Q becomes 1e-16 * Q / q^2 absolute.
    assert abs(phi.q_map(q, order=2)) <= 1e-13 * (q / 2) / q**2
    assert phi.c_map(0.3, q=q) == pytest.approx(float(relu_c(0.3)), rel=1e-14)


@pytest.mark.parametrize("name, q", [
    (name, q) for name in ("tanh", "softplus", "gelu") for q in (1e-8, 1e4)])
def test_smooth_q_map_tiny_and_large_q(name, q):
    phi = ks.activation(name)
    fn = {"tanh": mpmath.tanh, "softplus": lambda x: mpmath.log1p(mpmath.exp(x)),
          "gelu": lambda x: x * (1 + mpmath.tanh(mpmath.sqrt(2 / mpmath.pi)
                                                   * (x + mpmath.mpf("0.044715") * x**3))) / 2
          }[name]
    expected = _mp_expect(lambda x: fn(x) ** 2, math.sqrt(q))
    assert phi.q_map(q) == pytest.approx(expected, rel=1e-13)
    values = phi.c_map(np.linspace(-1, 1, 9), q=q)
    assert np.all(np.isfinite(values)) and np.all(np.abs(values) <= 1.0)
    assert np.all(np.diff(values) >= -1e-15)   # C is nondecreasing (Hermite coefficients)


@pytest.mark.parametrize("name", ["tanh", "softplus"])
def test_c_map_at_tiny_q_matches_reference(name):
    phi = ks.activation(name)
    ref = Reference(phi, 1e-8)
    for c in (-0.6, 0.0, 0.5):
        assert phi.c_map(c, q=1e-8) == pytest.approx(ref.C_series(c), rel=1e-13, abs=1e-16)
        assert phi.c_map(c, q=1e-8, order=1) == pytest.approx(ref.C_series(c, 1), rel=1e-12)


@pytest.mark.parametrize("q", [1.0, 10.0, 100.0, 300.0])
def test_exponential_maps_at_large_q(q):
    # E[exp(2 sqrt(q) z)] = exp(2q); C(c; q) = exp(q (c - 1)) (Gaussian moment generating
    # function). exp(600) ~ 4e260 is still a float64, but refusing it is allowed.
    phi = ks.activation("exp(x)")
    got = outcome(lambda: phi.q_map(q))
    if isinstance(got, E.KernelShapeError):
        assert q > 100, f"Q({q}) of exp is an ordinary float64: {got}"
        return
    assert got == pytest.approx(math.exp(2 * q), rel=1e-12)
    for c in (-0.5, 0.0, 0.5, 0.9):
        # the float64 claim: 1e-14 relative, or 1e-16 absolute for values near zero
        assert phi.c_map(c, q=q) == pytest.approx(math.exp(q * (c - 1)), rel=1e-12,
                                                  abs=1e-16)


def test_exponential_q_map_overflow_raises():
    big = outcome(lambda: ks.activation("exp(x)").q_map(1e4))   # exp(20000) > float64 max
    assert isinstance(big, E.KernelShapeError), f"Q(1e4) of exp should raise, got {big!r}"


# -- huge and tiny scales ------------------------------------------------------------------
C_GRID = np.array([-1.0, -1.0 + 1e-12, -0.5, 0.0, 0.3, 1.0 - 1e-12, 1.0])


def test_tiny_linear_activation_1e_minus_6_x():
    phi = ks.activation("1e-6*x")
    for q in (1e-8, 1.0, 1e4):
        assert phi.q_map(q) == pytest.approx(1e-12 * q, rel=1e-13)
    np.testing.assert_allclose(phi.c_map(C_GRID), C_GRID, rtol=0, atol=1e-14)   # C(c) = c
    np.testing.assert_allclose(phi.c_map(C_GRID, order=1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(phi.c_map(C_GRID[1:-1], order=2), 0.0, atol=1e-13)
    with pytest.raises(E.UnreachableTargetError):
        dks(phi, network=mlp(5))


@pytest.mark.parametrize("make", [
    lambda: ks.activation("1e6*tanh(x)"),
    lambda: ks.activation("tanh").affine(output_scale=1e6),
    lambda: ks.activation("tanh").affine(output_scale=1e-6),
], ids=["text-1e6*tanh", "affine-output-1e6", "affine-output-1e-6"])
def test_output_scale_changes_q_only(make):
    phi, tanh = make(), ks.activation("tanh")
    scale2 = phi.q_map(1.0) / tanh.q_map(1.0)
    assert scale2 == pytest.approx(float(phi(1.0) / tanh(1.0)) ** 2, rel=1e-13)
    for order in (0, 1, 2):
        np.testing.assert_allclose(phi.c_map(C_GRID, order=order),
                                   tanh.c_map(C_GRID, order=order), rtol=1e-13, atol=1e-15)


def test_dks_of_1e6_tanh_is_dks_of_tanh_rescaled():
    # phi -> 1e6 phi leaves (input_scale, input_shift), multiplies output_shift by 1e6 and
    # divides output_scale by 1e6 (Martens et al. 2021 §4: delta = -E[phi], gamma = Var^-1/2).
    big = dks(ks.activation("1e6*tanh(x)"), network=mlp(10))
    ref = dks(ks.activation("tanh"), network=mlp(10))
    assert big.params["input_scale"] == pytest.approx(ref.params["input_scale"], rel=1e-9)
    assert big.params["input_shift"] == pytest.approx(ref.params["input_shift"], rel=1e-9)
    assert big.params["output_shift"] == pytest.approx(1e6 * ref.params["output_shift"],
                                                       rel=1e-9)
    assert big.params["output_scale"] == pytest.approx(1e-6 * ref.params["output_scale"],
                                                       rel=1e-9)
    assert big.max_residual <= 1e-13


def test_tanh_of_tiny_input_is_nearly_linear():
    # tanh(e x) = e x - e^3 x^3 / 3 + ...: C(c) - c = O(e^2) = 1e-12 (Hermite degree 3 part).
    phi = ks.activation("tanh").affine(input_scale=1e-6)
    values = phi.c_map(C_GRID)
    assert np.all(np.abs(values - C_GRID) <= 1e-11)
    assert phi.q_map(1.0) == pytest.approx(1e-12, rel=1e-11)


def test_tanh_of_huge_input_is_nearly_sign():
    # tanh(k x) differs from sign(x) only on |x| < ~1/k: C(c) = (2/pi) arcsin(c) + O(1/k).
    phi = ks.activation("tanh").affine(input_scale=1e6)
    for c in (-0.9, -0.3, 0.0, 0.5, 0.99):
        got = outcome(lambda c=c: phi.c_map(c))
        if isinstance(got, E.KernelShapeError):
            continue   # a clear refusal is allowed; a wrong number is not
        assert got == pytest.approx(2 / math.pi * math.asin(c), abs=1e-5)
    assert phi.q_map(1.0) == pytest.approx(1.0, abs=1e-5)


# -- targets at the limits -----------------------------------------------------------------
def _check_dks_residuals(t, *, tol):
    """Q(1)=1, Q'(1)=q_slope, C(0)=0, C'(1)=xi re-evaluated by the independent Reference."""
    ref = Reference(t.activation)
    assert ref.Q == pytest.approx(1.0, abs=tol)
    assert ref.Q_derivative(1) == pytest.approx(t.targets.get("q_slope", ref.Q_derivative(1)),
                                                abs=tol)
    assert ref.C0 == pytest.approx(0.0, abs=tol)
    assert ref.C_at_one(1) == pytest.approx(t.targets["xi"], abs=tol)


@pytest.mark.parametrize("name, network", [
    ("tanh", mlp(10)), ("softplus", resnet(50, 0.9)),
], ids=["tanh-mlp10", "softplus-resnet50"])
def test_dks_zeta_just_above_one(name, network):
    got = outcome(lambda: dks(name, network=network, zeta=1 + 1e-9))
    if isinstance(got, E.KernelShapeError):
        assert not isinstance(got, E.UnreachableTargetError), str(got)
    else:
        _check_dks_residuals(got, tol=1e-12)


def test_dks_leaky_relu_zeta_just_above_one():
    t = dks("leaky_relu", network=mlp(10), zeta=1 + 1e-9)
    assert t.targets["xi"] == pytest.approx((1 + 1e-9) ** 0.1, rel=1e-15)
    assert 0 < t.params["negative_slope"] < 1
    _check_dks_residuals(t, tol=1e-12)


def test_tat_tau_tiny():
    got = outcome(lambda: tat("tanh", network=mlp(10), tau=1e-9))
    if isinstance(got, E.KernelShapeError):
        assert not isinstance(got, E.UnreachableTargetError), str(got)
    else:
        ref = Reference(got.activation)
        assert ref.C_at_one(1) == pytest.approx(1.0, abs=1e-12)
        assert ref.C_at_one(2) == pytest.approx(got.targets["tau_local"], abs=1e-12)


def _leaky_network_c0(slope, depth):
    """M(0) of mlp(depth) for leaky ReLU: the closed-form C map composed, at 40 digits."""
    with mpmath.workdps(40):
        a = mpmath.mpf(slope)
        k = (1 - a) ** 2 / (mpmath.pi * (1 + a * a))
        c = mpmath.mpf(0)
        for _ in range(depth):
            c = c + k * (mpmath.sqrt(1 - c * c) - c * mpmath.acos(c))
        return c


ETA_MAX_50 = float(_leaky_network_c0(0, 50))   # ReLU's value: the largest reachable eta


@pytest.mark.parametrize("offset", [-1e-12, 0.0])
def test_tat_eta_at_its_reachable_maximum(offset):
    got = outcome(lambda: tat("leaky_relu", network=mlp(50), eta=ETA_MAX_50 + offset))
    if isinstance(got, E.KernelShapeError):
        assert offset == 0.0, f"eta below its maximum must be solved: {got}"
        return
    slope = got.params["negative_slope"]
    assert 0 <= slope < 1e-6
    assert float(_leaky_network_c0(slope, 50)) == pytest.approx(ETA_MAX_50 + offset,
                                                                abs=1e-14)


def test_tat_eta_just_above_maximum_is_unreachable_and_says_so():
    eta = ETA_MAX_50 + 1e-12
    with pytest.raises(E.UnreachableTargetError) as info:
        tat("leaky_relu", network=mlp(50), eta=eta)
    assert repr(eta) in str(info.value)


def _closest_claim(message):
    number = r"(?:np\.float64\()?([-+0-9.eE]+)\)?"
    value = re.search(r"closest value reached C'\(1\) = " + number, message)
    scale = re.search(r"input_scale=" + number, message)
    shift = re.search(r"input_shift=" + number, message)
    out_shift = re.search(r"output_shift=" + number, message)
    return (float(value.group(1)), float(scale.group(1)), float(shift.group(1)),
            float(out_shift.group(1)))


def test_unreachable_message_reports_a_true_closest_value():
    with pytest.raises(E.UnreachableTargetError) as info:
        dks("tanh", network=mlp(10), zeta=1e300)
    # C'(1) of the DKS-centred activation (output shift -E[phi], THEORY.md §4) at the point
    claimed, a, b, d = _closest_claim(str(info.value))
    tanh = ks.activation("tanh").affine(a, b, d)
    assert claimed == pytest.approx(Reference(tanh).C_at_one(1), rel=1e-6)


# -- depth 10,000 --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deep_dks():
    with time_limit(120, "dks on mlp(10000)"):
        return dks("tanh", network=mlp(10_000), zeta=1.5)


def test_dks_depth_10000(deep_dks):
    assert deep_dks.targets["xi"] == pytest.approx(1.5 ** (1 / 10_000), rel=1e-15)
    _check_dks_residuals(deep_dks, tol=1e-13)


def test_network_c_map_depth_10000_matches_composed_reference(deep_dks):
    phi = deep_dks.activation
    ref = Reference(phi)
    b2 = ref.hermite_coefficients(120) ** 2 / ref.Q
    powers = np.arange(len(b2))
    c = 0.5
    for _ in range(10_000):      # c stays in [0, 0.5]: the series tail is below 1e-36
        c = float(np.sum(b2 * c**powers))
    with time_limit(120, "mlp(10000).c_map"):
        got = mlp(10_000).c_map(phi, 0.5)
    # 10,000 compositions of maps with slope <= 1 on [0, 0.5]: rounding adds up to ~1e-12.
    assert got == pytest.approx(c, abs=1e-10)
    assert mlp(10_000).q_map(phi, 1.0) == pytest.approx(1.0, abs=1e-10)   # Q(1) = 1 fixed


def test_tat_leaky_relu_depth_10000():
    with time_limit(120, "tat leaky on mlp(10000)"):
        t = tat("leaky_relu", network=mlp(10_000), eta=0.9)
    slope = t.params["negative_slope"]
    assert float(_leaky_network_c0(slope, 10_000)) == pytest.approx(0.9, abs=1e-12)
    with time_limit(120, "mlp(10000).c_map of leaky ReLU"):
        got = mlp(10_000).c_map(t.activation, 0.0)
    # the network's own C map composes the same closed form 10,000 times
    assert got == pytest.approx(0.9, abs=1e-11)


def test_deeply_nested_network_description():
    net = nonlinear()
    got = None
    try:
        for _ in range(10_000):
            net = chain(net, linear())
        got = outcome(lambda: net.max_slope(1.0001))
    except E.KernelShapeError as err:
        got = err
    if not isinstance(got, E.KernelShapeError):
        assert got == pytest.approx(1.0001)


def test_absurd_depth_is_a_clear_error_or_works():
    got = outcome(lambda: mlp(10**12))
    if not isinstance(got, E.KernelShapeError):
        assert got.max_slope(1.0) == 1.0
