"""Public Q/C map API (kernelshape.maps) and its float64 fast path (kernelshape.maps.fast).

References are computed here in mpmath at 40 digits from closed forms (ReLU family, erf,
sin, cos: THEORY.md §1) or from one-dimensional mpmath integrals whose inner Gaussian
expectation is closed (shifted ReLU, ELU); the big reference-file sweep over every built-in
lives in tests/test_maps_accuracy.py. Float64 claim: 1e-13 relative, 1e-15 absolute.
"""

import math

import mpmath as mp
import numpy as np
import pytest

import kernelshape as ks
from kernelshape import maps
from kernelshape.errors import (
    DomainError,
    FreeParameterError,
    InfiniteMomentError,
    PrecisionError,
    UnsupportedError,
)
from kernelshape.maps import fast

RTOL, ATOL = 1e-13, 1e-15
C_GRID = (-1.0, -0.999, -0.7, -0.2, 0.0, 0.35, 0.8, 0.99, 0.999999, 1.0)


def close(value, ref, rtol=RTOL, atol=ATOL):
    ref = float(ref)
    if math.isinf(ref):
        return value == ref
    return abs(value - ref) <= rtol * abs(ref) + atol


# -- mpmath references (40 digits) ----------------------------------------------------------
def _two_slope_ref(c, order, sl, sr):
    """C^(k) of ``sl x 1{x<0} + sr x 1{x>0}`` (q-independent): THEORY.md §1 ReLU forms."""
    with mp.workdps(40):
        c = mp.mpf(c)
        q_norm = (sl**2 + sr**2) / mp.mpf(2)
        jump = (mp.mpf(sr) - sl) ** 2 / (2 * mp.pi)
        if order == 0:
            k = sl * sr * c + jump * (mp.sqrt(1 - c * c) + c * mp.acos(-c))
        elif order == 1:
            k = sl * sr + jump * mp.acos(-c)
        else:
            k = jump / mp.sqrt(1 - c * c) if abs(c) < 1 else mp.inf
        return k / q_norm


def _analytic_ref(name, c, q, order):
    """erf: arcsin form; sin/cos: exp(-q) sinh/cosh(q c) (THEORY.md §1); mp.diff for C', C''."""
    with mp.workdps(40):
        q = mp.mpf(q)
        kern = {
            "erf": lambda t: mp.asin(2 * q * t / (1 + 2 * q)),
            "sin": lambda t: mp.sinh(q * t),
            "cos": lambda t: mp.cosh(q * t),
        }[name]
        return mp.diff(kern, mp.mpf(c), order) / kern(mp.mpf(1))


def _gauss_inner_ref(act_kind, params, c, q, order):
    """``E[f^(k)(U) f^(k)(V)] / Q`` as a 1-D mpmath integral over u, inner E_W closed.

    shifted ReLU ``g (relu(a x + b) + d)``: E[relu(m + s W)] = m Phi(m/s) + s phi(m/s);
    ELU: E[elu(m + s W)] = m Phi(m/s) + s phi(m/s) + e^(m + s^2/2) Phi(-m/s - s) - Phi(-m/s).
    Dirac mass of the shifted ReLU's f'' at t = -b/a: weight g |a|, density p_c(t, t).
    18 digits: ample for a 1e-13 check, and quick.
    """
    with mp.workdps(18):
        c, q = mp.mpf(c), mp.mpf(q)
        s = mp.sqrt(1 - c * c)
        cdf = mp.ncdf
        if act_kind == "relu":
            a, b, d, g = (mp.mpf(v) for v in params)
            a = a * mp.sqrt(q)

            def f(u, k):
                x = a * u + b
                return [g * (max(x, 0) + d), g * a * (1 if x > 0 else 0), 0][k]

            def inner(m, k):   # E_W[f^(k)(m + s W)] in u-coordinates
                mu, sig = a * m + b, abs(a) * s
                return [g * (mu * cdf(mu / sig) + sig * mp.npdf(mu / sig) + d),
                        g * a * cdf(mu / sig), 0][k]
            split = [-b / a]
        else:
            sq = mp.sqrt(q)

            def f(u, k):
                x = sq * u
                return sq**k * (x if x > 0 else mp.expm1(x)) if k == 0 else sq**k * (
                    (1 if x > 0 else mp.exp(x)) if k == 1 else (0 if x > 0 else mp.exp(x)))

            def inner(m, k):
                mu, sig = sq * m, sq * s
                tail = mp.exp(mu + sig**2 / 2) * cdf(-mu / sig - sig)
                return sq**k * [mu * cdf(mu / sig) + sig * mp.npdf(mu / sig) + tail
                                - cdf(-mu / sig), cdf(mu / sig) + tail, tail][k]
            split = [mp.mpf(0)]
        pts = [-mp.inf, *sorted(set(split + ([split[0] / c] if c else []))), mp.inf]
        k_val = mp.quad(lambda u: mp.npdf(u) * f(u, order) * inner(c * u, order), pts)
        if act_kind == "relu" and order == 2:
            t, weight = split[0], g * abs(a)
            k_val = weight**2 * mp.exp(-t * t / (1 + c)) / (2 * mp.pi * s)
        q_val = mp.quad(lambda u: mp.npdf(u) * f(u, 0) ** 2, [-mp.inf, split[0], mp.inf])
        return k_val / q_val


# -- dispatch, shapes, types -------------------------------------------------------------------
def test_scalars_give_python_floats_and_arrays_keep_shape():
    phi = ks.activation("tanh")
    assert type(phi.c_map(0.3)) is float
    assert type(phi.q_map(np.float64(2.0))) is float
    grid = np.linspace(-1, 1, 6).reshape(2, 3)
    out = phi.c_map(grid, order=1)
    assert out.shape == (2, 3) and out.dtype == np.float64
    assert phi.q_map([[0.5, 1.0]]).shape == (1, 2)
    # each element equals the scalar call (same route for small arrays)
    assert out[1, 2] == phi.c_map(1.0, order=1)


def test_digits_route_dispatches_to_precise(monkeypatch):
    from kernelshape.maps import precise
    calls = []

    def fake_c_map(act, c, q, order, digits):
        calls.append((c, q, order, digits))
        return mp.mpf(c) * 2

    monkeypatch.setattr(precise, "c_map", fake_c_map)
    phi = ks.activation("tanh")
    out = phi.c_map(np.array([[0.25, -0.5]]), q=2.0, order=1, digits=12)
    assert out.dtype == object and out.shape == (1, 2)
    assert out[0, 1] == mp.mpf(-1)
    assert calls[0] == (mp.mpf(0.25), 2.0, 1, 12)
    assert phi.c_map(0.5, digits=30) == mp.mpf(1)      # scalar -> mpf


def test_expr_routes_dispatch_to_closed_forms():
    assert str(ks.activation("relu").q_map_expr()) == "q/2"
    assert str(ks.activation("identity").c_map_expr()) == "c"


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, words", [
    (lambda p: p.c_map(1.5), DomainError, "c must be a correlation in [-1, 1], got 1.5"),
    (lambda p: p.c_map([0.0, -1.01]), DomainError, "[-1, 1], got -1.01"),
    (lambda p: p.q_map(0.0), DomainError, "q must be > 0"),
    (lambda p: p.q_map(-2.0), DomainError, "got -2.0"),
    (lambda p: p.c_map(0.5, q=-1.0), DomainError, "q must be > 0"),
    (lambda p: p.c_map(0.5, order=3), DomainError, "order must be 0, 1 or 2"),
    (lambda p: p.q_map(1.0, order=-1), DomainError, "got -1"),
    (lambda p: p.c_map(0.5, digits=0), PrecisionError, "digits must be None"),
    (lambda p: p.q_map(1.0, digits=2.5), PrecisionError, "got 2.5"),
    (lambda p: p.c_map(float("nan")), DomainError, "c must be finite, got nan"),
    (lambda p: p.c_map([0.1, math.inf]), DomainError, "finite, got inf at index [1]"),
    (lambda p: p.q_map(math.inf), DomainError, "q must be finite"),
    (lambda p: p.c_map(0.1, q=math.nan), DomainError, "q must be finite"),
    (lambda p: p.c_map("x"), DomainError, "c must be a real number"),
    (lambda p: p.c_map(0.5j), DomainError, "c must be"),
    (lambda p: p.c_map(0.5, q=[1.0, 2.0]), DomainError, "q must be a single number"),
])
def test_bad_arguments_raise_and_name_the_problem(call, error, words):
    with pytest.raises(error) as info:
        call(ks.activation("tanh"))
    assert words in str(info.value)


def test_free_parameters_and_infinite_moments():
    with pytest.raises(FreeParameterError, match="negative_slope"):
        ks.activation("leaky_relu").c_map(0.5)
    with pytest.raises(FreeParameterError, match="negative_slope"):
        ks.activation("leaky_relu").q_map(1.0)
    with pytest.raises(InfiniteMomentError, match="infinite"):
        ks.activation("exp(x**2)").q_map(1.0)
    with pytest.raises(InfiniteMomentError, match="infinite"):
        ks.activation("exp(x**2)").c_map(0.2)


def test_rounding_excursions_are_clipped():
    phi = ks.activation("relu")
    assert phi.c_map(1.0 + 4e-16) == 1.0
    assert phi.c_map(-1.0 - 4e-16, order=1) == phi.c_map(-1.0, order=1)


# -- exact facts ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "relu", "elu", "softsign", "gelu", "sin"])
@pytest.mark.parametrize("q", [0.1, 2.0])
def test_c_of_one_is_one_exactly(name, q):
    assert ks.activation(name).c_map(1.0, q=q) == 1.0


@pytest.mark.parametrize("name", ["tanh", "erf", "atan", "sin", "softsign"])
def test_odd_activations_give_odd_c_maps(name):
    # phi(-x) = -phi(x)  =>  C(-c) = -C(c), C'(-c) = C'(c)
    phi, cs = ks.activation(name), np.array([0.1, 0.5, 0.9, 1.0])
    assert np.allclose(phi.c_map(-cs), -phi.c_map(cs), rtol=RTOL, atol=ATOL)
    assert np.allclose(phi.c_map(-cs, order=1), phi.c_map(cs, order=1), rtol=RTOL)


def test_mirrored_activation_has_the_same_c_map():
    # E[phi(-U) phi(-V)] = E[phi(U) phi(V)]: ELU mirrored by input_scale -1 (2-D rule)
    elu = ks.activation("elu")
    cs = np.array([-0.6, 0.3, 0.95])
    for order in (0, 1, 2):
        assert np.allclose(elu.affine(-1.0).c_map(cs, order=order),
                           elu.c_map(cs, order=order), rtol=RTOL, atol=ATOL)


# -- ReLU family: Dirac masses and closed forms ---------------------------------------------
@pytest.mark.parametrize("c", C_GRID)
@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("slope", [0.0, 0.2, 0.01])
def test_relu_family_matches_closed_form(c, order, slope):
    phi = ks.activation("relu") if slope == 0 else ks.activation("leaky_relu",
                                                                   negative_slope=slope)
    ref = _two_slope_ref(c, order, slope, 1.0)
    if order == 2 and c == -1.0:
        ref = mp.inf if slope == 0.0 else ref   # masses at 0 and -0 meet: C'' -> +inf
    assert close(phi.c_map(c, q=0.5, order=order), ref)


def test_relu_second_derivative_is_the_dirac_density():
    # THEORY.md §1: C(c) = (sqrt(1-c^2) + (pi - arccos c) c) / pi  =>  C'' = 1/(pi sqrt(1-c^2))
    cs = np.array([-0.9, -0.3, 0.0, 0.5, 0.99])
    expected = 1.0 / (np.pi * np.sqrt(1 - cs**2))
    assert np.allclose(ks.activation("relu").c_map(cs, q=3.0, order=2), expected, rtol=RTOL)
    assert ks.activation("relu").c_map(1.0, order=2) == math.inf
    assert ks.activation("selu").c_map(1.0, order=2) == math.inf


@pytest.mark.parametrize("c", [-0.95, 0.0, 0.97])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_shifted_relu_two_dimensional_rule(c, order):
    # kink off the origin: closed form does not apply; the 2-D rule with Dirac terms does
    params = (1.3, 0.4, -0.2, 1.5)
    phi = ks.activation("relu").affine(*params)
    ref = _gauss_inner_ref("relu", params, c, 0.7, order)
    assert close(phi.c_map(c, q=0.7, order=order), ref)


@pytest.mark.parametrize("c", [-1.0, -0.8, 0.9999, 1.0])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_elu_matches_mpmath(c, order):
    q = 2.0
    phi = ks.activation("elu")
    if abs(c) == 1.0:   # 1-D forms, references by mpmath quad at 20 digits
        with mp.workdps(20):
            sq = mp.sqrt(q)
            f = lambda u, k: sq**k * (phi.mp(sq * u, k))
            num = mp.quad(lambda u: mp.npdf(u) * f(u, order) * f(c * u, order),
                          [-mp.inf, 0, mp.inf])
            ref = num / mp.quad(lambda u: mp.npdf(u) * f(u, 0) ** 2, [-mp.inf, 0, mp.inf])
    else:
        ref = _gauss_inner_ref("elu", None, c, q, order)
    assert close(phi.c_map(c, q=q, order=order), ref)


@pytest.mark.parametrize("name", ["erf", "sin", "cos"])
@pytest.mark.parametrize("q", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_smooth_closed_forms(name, q, order):
    phi = ks.activation(name)
    cs = np.array([-1.0, -0.6, 0.0, 0.3, 0.95, 1.0])
    got = phi.c_map(cs, q=q, order=order)
    refs = [_analytic_ref(name, c, q, order) for c in cs]
    scale = max(abs(float(r)) for r in refs)   # absolute floor: 1e-15 of the map's scale
    assert all(close(g, r, atol=ATOL * scale) for g, r in zip(got, refs)), (got, refs)


@pytest.mark.parametrize("name, q", [("tanh", 1.0), ("tanh", 2.0), ("softplus", 1.0),
                                     ("gelu_exact", 0.5), ("mish", 1.0)])
def test_hermite_series_agrees_with_two_dimensional_rule(name, q):
    # two independent float64 routes: series (1-D projections) vs 2-D Gauss-Legendre rule
    prep = fast.prepared(ks.activation(name), q)
    assert prep.series() is not None
    cs = np.array([-0.999, -0.5, 0.2, 0.9, 0.9999])
    for order in (0, 1, 2):
        series, direct = prep.interior(cs, order), prep.direct(cs, order)
        assert np.allclose(series, direct, rtol=RTOL, atol=ATOL), order


# tanh, q = 1: mpmath Hermite series at 25 digits (330 terms; coefficients by 30-point
# Gauss-Legendre panels of width 0.25 on [-16, 16]), equal to kernelshape.maps.precise
# (digits=25) in all 22 printed digits.
TANH_REF = {-0.5: "-0.4725513993752428100306", 0.3: "0.2806744406592708917612",
            0.9: "0.8856409589431005231571"}


@pytest.mark.parametrize("c", sorted(TANH_REF))
def test_tanh_series_against_stored_mpmath(c):
    assert close(ks.activation("tanh").c_map(c), mp.mpf(TANH_REF[c]))


def test_large_arrays_use_the_interpolant_within_the_claim():
    phi = ks.activation("selu")
    cs = np.linspace(-1.0, 1.0, 301)[1:-1]
    big = phi.c_map(cs, q=1.0, order=0)
    sample = cs[::37]
    assert np.allclose(big[::37], fast.prepared(phi, 1.0).direct(sample, 0),
                       rtol=5e-14, atol=ATOL)


@pytest.mark.parametrize("name", ["tanh", "relu", "softsign"])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_q_map_matches_mpmath(name, order):
    # Q^(k)(q) = d^k/dq^k int phi(x)^2 N(x; 0, q) dx: mpmath quad at 20 digits of the
    # q-derivatives of the density, written out (He_2, He_4 of x / sqrt(q))
    phi, q = ks.activation(name), mp.mpf(1.7)
    with mp.workdps(20):
        def density_derivative(x):
            z2 = x * x / q
            return mp.npdf(x, 0, mp.sqrt(q)) * [1, (z2 - 1) / (2 * q),
                                                 (z2 * z2 - 6 * z2 + 3) / (4 * q * q)][order]
        ref = mp.quad(lambda x: phi.mp(x) ** 2 * density_derivative(x), [-mp.inf, 0, mp.inf])
    assert close(phi.q_map(q, order=order), ref)


def test_jumps_support_c_and_c_prime_but_not_c_second():
    # Heaviside: C(c) = (1/2 + arcsin(c) / pi) / ... ; E[H(U) H(V)] = 1/4 + arcsin(c)/(2 pi)
    step = ks.activation("Heaviside(x)")
    c = 0.3
    assert close(step.c_map(c), 2 * (0.25 + math.asin(c) / (2 * math.pi)))
    assert close(step.c_map(c, order=1), 2 / (2 * math.pi * math.sqrt(1 - c * c)))
    assert step.c_map(1.0, order=1) == math.inf
    with pytest.raises(UnsupportedError, match="Dirac"):
        step.c_map(c, order=2)
    assert maps.C_SLACK < 1e-14
