"""DKS / TAT / EOC solvers: residuals re-checked in mpmath, analytic cases, bad input.

Independent check: every float64 solve is re-evaluated here with ``mpmath.quad`` at 20
digits on ``phi.mp`` (split at the kinks), never with the solver's own numbers; 20 digits
resolve the 1e-14 residual claim with six digits to spare.
"""

import itertools
import math
import warnings

import mpmath
import pytest

from kernelshape import activation, builtins
from kernelshape.errors import (
    FreeParameterError,
    NetworkError,
    PrecisionError,
    TransformError,
    UnreachableTargetError,
    UnsupportedError,
)
from kernelshape.networks import mlp, nonlinear, normalized_sum, resnet
from kernelshape.transforms import EdgeOfChaos, ReluWarning, Transform, dks, eoc, tat

NETWORKS = {
    "mlp10": mlp(10), "mlp50": mlp(50), "mlp100": mlp(100),
    **{f"resnet{d}_{w}": resnet(d, w) for d in (50, 101) for w in (0.0, 0.6, 0.9)},
}
# Built-ins the methods support (others are tested as errors below).
DKS_ACTS = [n for n in builtins() if n not in ("square", "identity")]
TAT_SMOOTH = ["tanh", "softplus", "swish", "erf", "bentid", "atan", "asinh", "softsign",
              "gelu", "gelu_exact", "elu", "mish", "sin", "cos"]
ACTS = {}


def _act(name):
    if name not in ACTS:
        ACTS[name] = activation(name)
    return ACTS[name]


_GL_X, _GL_W = None, None


def _gl_rule():
    global _GL_X, _GL_W
    if _GL_X is None:
        import numpy as np
        x, w = np.polynomial.legendre.leggauss(16)
        _GL_X, _GL_W = [mpmath.mpf(v) for v in x], [mpmath.mpf(v) for v in w]
    return _GL_X, _GL_W


def _mp_conditions(t: Transform):
    """Q(1), Q'(1), C(0), C'(1), C''(1) of the transformed activation in mpmath (20 digits).

    phi is evaluated with ``phi.mp`` (sympy-lambdified mpmath, not the numba kernels) and
    integrated against the Gaussian with a 16-point Gauss-Legendre rule on unit panels over
    [-10, 10] (the tail beyond is below 1e-21), split at the kinks; the float64 nodes limit the rule to ~1e-16 relative,
    far below the 1e-14 being checked.
    """
    base = t.base
    if "negative_slope" in t.params:
        base = base.fix(negative_slope=float(t.params["negative_slope"]))
    p = {"input_scale": 1.0, "input_shift": 0.0, "output_shift": 0.0, **t.params}
    curv = t.method == "tat" and "tau" in t.targets
    with mpmath.workdps(20):
        a, b = mpmath.mpf(p["input_scale"]), mpmath.mpf(p["input_shift"])
        d, g = mpmath.mpf(p["output_shift"]), mpmath.mpf(p["output_scale"])
        cuts = [(mpmath.mpf(k.location) - b) / a for k in base.kinks]
        edges = sorted({mpmath.mpf(v) for v in range(-10, 11)}
                       | {c for c in cuts if -10 < c < 10})
        xs, ws = _gl_rule()
        sums = [mpmath.mpf(0)] * 5
        for lo, hi in itertools.pairwise(edges):
            half, mid = (hi - lo) / 2, (hi + lo) / 2
            for xq, wq in zip(xs, ws):
                z = mid + half * xq
                w = wq * half * mpmath.npdf(z)
                x = a * z + b
                f0 = g * (base.mp(x) + d)
                f1 = g * a * base.mp(x, 1)
                f2 = g * a * a * base.mp(x, 2) if curv else 0
                for i, v in enumerate((f0 * f0, f0 * f1 * z, f0, f1 * f1, f2 * f2)):
                    sums[i] += w * v
        q1 = sums[0]
        out = {"Q(1)": q1, "Q'(1)": sums[1], "C(0)": sums[2] ** 2 / q1, "C'(1)": sums[3] / q1}
        if curv:
            out["C''(1)"] = sums[4] / q1
        return out


def _check_mp(t, tol=1e-14):
    values = _mp_conditions(t)
    for r in t.residuals:
        if r.condition in values:
            assert abs(float(values[r.condition]) - r.target) <= tol, (r, values[r.condition])


@pytest.mark.parametrize("net", list(NETWORKS), ids=str)
@pytest.mark.parametrize("name", DKS_ACTS)
def test_dks_residuals_mpmath(name, net):
    # claim: float64 DKS meets every local condition to 1e-14 (independently re-evaluated)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReluWarning)
        t = dks(_act(name), network=NETWORKS[net])
    assert t.max_residual <= 1e-14
    assert all(math.isfinite(float(v)) for v in t.params.values())
    _check_mp(t)


def test_dks_start_picks_a_solution():
    # selu has two DKS solutions on resnet(101, 0.6): the default starts reach input_scale
    # ~1.05; start= near the other one gives input_scale ~0.11; both exact roots
    net = resnet(101, 0.6)
    large = dks(_act("selu"), network=net)
    small = dks(_act("selu"), network=net, start=(0.1, -0.3))
    assert large.params["input_scale"] > 1.0 and large.params["input_shift"] > 1.5
    assert 0.1 < small.params["input_scale"] < 0.12 and small.params["input_shift"] < -0.2
    for t in (large, small):
        assert t.max_residual <= 1e-14
        _check_mp(t)


@pytest.mark.parametrize("net", ["resnet101_0.6", "resnet50_0.0"])
def test_selu_start_near_the_small_root_gives_that_root(net):
    # selu has two DKS solutions on these networks (input_scale ~0.11-0.13 with a negative
    # shift, and ~0.9-1.05 with shift ~1.4-1.8). Starts anywhere near the small one give
    # one and the same exact root (not a point of a cloud): the float64 solves agree to
    # 1e-13, and the 30-digit solve from the same start is that root (to 1e-12: residuals
    # of 1e-15 move the parameters by up to 1e-13 here, output_scale ~7 at input_scale ~0.1)
    network = NETWORKS[net]
    starts = [(0.1, -0.3), (0.12, -0.35), (0.14, -0.25)]
    solves = [dks(_act("selu"), network=network, start=s) for s in starts]
    for t in solves:
        assert t.max_residual <= 1e-14
        assert 0.1 < t.params["input_scale"] < 0.14 and t.params["input_shift"] < -0.2
        for key, value in t.params.items():
            assert abs(value - solves[0].params[key]) <= 1e-13 * (1 + abs(value)), key
    exact = dks(_act("selu"), network=network, start=starts[0], digits=30)
    for key, value in exact.params.items():
        assert abs(float(value) - solves[0].params[key]) <= 1e-12 * (1 + abs(float(value)))


def _mp_dks_conditions(t, dps):
    """Q(1), Q'(1), C(0), C'(1) of ``t`` by ``mpmath.quad`` at ``dps`` digits on the base
    activation's ``phi.mp`` with the solved parameters, split at the kinks (independent of
    the solver's quadrature and of Transform.activation)."""
    p = t.params
    with mpmath.workdps(dps):
        a, b = mpmath.mpf(p["input_scale"]), mpmath.mpf(p["input_shift"])
        d, g = mpmath.mpf(p["output_shift"]), mpmath.mpf(p["output_scale"])
        cuts = sorted((mpmath.mpf(k.location) - b) / a for k in t.base.kinks)
        points = [-mpmath.inf, *cuts, mpmath.inf]

        def e(fn):
            return mpmath.quad(lambda z: fn(z) * mpmath.npdf(z), points)
        q1 = e(lambda z: (g * (t.base.mp(a * z + b) + d)) ** 2)
        qs = e(lambda z: g * g * a * (t.base.mp(a * z + b) + d) * t.base.mp(a * z + b, 1) * z)
        m = e(lambda z: g * (t.base.mp(a * z + b) + d))
        cs = e(lambda z: (g * a * t.base.mp(a * z + b, 1)) ** 2) / q1
        return {"Q(1)": q1, "Q'(1)": qs, "C(0)": m * m / q1, "C'(1)": cs}


@pytest.mark.parametrize("net", ["resnet101_0.6", "resnet50_0.0"])
def test_selu_both_roots_meet_the_conditions_in_mpmath(net):
    # both DKS solutions of selu, solved at 30 digits, re-checked by mpmath.quad at 40
    # digits: every condition to 1e-25 (the digits=N claim: 10^-(N-5))
    network = NETWORKS[net]
    large = dks(_act("selu"), network=network, digits=30)
    small = dks(_act("selu"), network=network, start=(0.1, -0.3), digits=30)
    assert large.params["input_scale"] > 0.9 and large.params["input_shift"] > 1.3
    assert small.params["input_scale"] < 0.14 and small.params["input_shift"] < -0.2
    for t in (large, small):
        values = _mp_dks_conditions(t, 40)
        with mpmath.workdps(40):    # the targets are mpf at the solve's precision
            for r in t.residuals:
                assert abs(values[r.condition] - mpmath.mpf(r.target)) <= 1e-25, r


def test_tat_start_picks_a_solution():
    # asinh has several TAT solutions on mlp(50): the default search returns dks's
    # (input_scale ~0.158); start= near another gives input_scale ~0.177; both exact roots
    default = tat(_act("asinh"), network=mlp(50))
    other = tat(_act("asinh"), network=mlp(50), start=(1.0, -1.0, 0.5))
    assert abs(default.params["input_scale"] - 0.1582) < 1e-3
    assert abs(other.params["input_scale"] - 0.1771) < 1e-3
    for t in (default, other):
        assert t.max_residual <= 1e-14
        assert abs(t.params["input_scale"]) * t.params["output_scale"] < 2
        _check_mp(t)


@pytest.mark.parametrize("net", list(NETWORKS), ids=str)
@pytest.mark.parametrize("name", TAT_SMOOTH)
def test_tat_residuals_mpmath(name, net):
    # claim: float64 TAT (smooth) meets Q(1)=1, Q'(1)=1, C'(1)=1, C''(1)=tau_local to 1e-14
    t = tat(_act(name), network=NETWORKS[net])
    assert t.max_residual <= 1e-14
    assert abs(t.params["input_scale"]) * t.params["output_scale"] < 2
    _check_mp(t)


def _leaky_m0_mp(depth_or_net, a):
    """M_{f, C_a}(0) of the dks example ResNet (or a chain) in mpmath, closed-form C map."""
    def c_map(c):
        k = (1 - a) ** 2 / (mpmath.pi * (1 + a * a))
        return c + k * (mpmath.sqrt(1 - c * c) - c * mpmath.acos(c))
    return depth_or_net.subnet_max(mpmath.mpf(0), c_map)


# eta = 0.9 is out of reach for mlp(10) and resnet(50, 0.9) (tested as errors below).
@pytest.mark.parametrize("net", [n for n in NETWORKS if n not in ("mlp10", "resnet50_0.9")],
                         ids=str)
def test_tat_leaky_relu_residuals(net):
    # claim: M_{f,C_a}(0) = eta to 1e-14, re-evaluated at 20 digits; Q(1) = C'(1) = 1
    t = tat(_act("leaky_relu"), network=NETWORKS[net], eta=0.9)
    with mpmath.workdps(20):
        a = mpmath.mpf(t.params["negative_slope"])
        assert abs(float(_leaky_m0_mp(NETWORKS[net], a)) - 0.9) <= 1e-14
    _check_mp(t)


@pytest.mark.parametrize("depth", [1, 3, 10, 50, 100])
@pytest.mark.parametrize("zeta", [1.05, 1.5, 4.0])
def test_mlp_xi_is_zeta_root(depth, zeta):
    # closed form: mu(xi) = xi^L for a chain, so xi = zeta^(1/L) exactly
    t = dks(_act("tanh"), network=mlp(depth), zeta=zeta)
    assert t.targets["xi"] == zeta ** (1.0 / depth)


@pytest.mark.parametrize("depth", [20, 50, 100])
@pytest.mark.parametrize("eta", [0.5, 0.9])
def test_tat_leaky_relu_mlp_closed_form(depth, eta):
    # closed form: C_a composed L times at 0 equals eta; root found independently by mpmath
    t = tat(_act("leaky_relu"), network=mlp(depth), eta=eta)
    with mpmath.workdps(30):
        def f(a):
            c = mpmath.mpf(0)
            k = (1 - a) ** 2 / (mpmath.pi * (1 + a * a))
            for _ in range(depth):
                c = c + k * (mpmath.sqrt(1 - c * c) - c * mpmath.acos(c))
            return c - eta
        a_ref = mpmath.findroot(f, t.params["negative_slope"])
    assert abs(t.params["negative_slope"] - float(a_ref)) <= 1e-13
    assert t.params["output_scale"] == math.sqrt(2 / (1 + t.params["negative_slope"] ** 2))


def test_theory_reference_figure():
    # THEORY.md §7 (dks 0.1.2): tanh, ResNet-101 V2, shortcut 0.6, zeta = 1.2
    t = dks(_act("tanh"), network=resnet(101, 0.6), zeta=1.2)
    assert t.targets["xi"] == pytest.approx(1.0027709659, abs=1e-10)
    expected = {"input_scale": 0.0746107, "input_shift": 0.556692, "output_shift": -0.503438,
                "output_scale": 18.0026}
    for key, value in expected.items():
        assert t.params[key] == pytest.approx(value, rel=5e-6)


def test_deterministic_bits():
    # same inputs -> identical parameters, bit for bit
    a = dks(_act("gelu"), network=resnet(50, 0.6))
    b = dks(_act("gelu"), network=resnet(50, 0.6))
    assert a.params == b.params and a.residuals == b.residuals


def test_relu_warns_and_fixes_shift():
    # dks rule: input_shift = +1 below C'(1) = 1.466942206924260361, else -1
    with pytest.warns(ReluWarning, match="leaky ReLU"):
        t = dks(_act("relu"), network=mlp(10))
    assert t.params["input_shift"] == 1.0
    with pytest.warns(ReluWarning):
        t = dks(_act("relu"), network=mlp(1), zeta=1.5)
    assert t.params["input_shift"] == -1.0
    assert "Q'(1)" not in [r.condition for r in t.residuals]


def test_transform_round_trip():
    t = dks(_act("softplus"), network=mlp(10))
    back = Transform.from_dict(t.to_dict())
    assert back.params == t.params and back.network == "mlp(depth=10)"
    assert "dks" in repr(t) and "softplus" in repr(t)


@pytest.mark.parametrize("method", [dks, tat])
def test_digits_leaky_relu(method):
    # digits=N: residuals below 10^-(N-5) (closed-form leaky ReLU path)
    t = method(_act("leaky_relu"), network=mlp(50), digits=40)
    assert t.max_residual <= 1e-35
    assert isinstance(t.params["negative_slope"], mpmath.mpf)


def test_digits_tanh_dks():
    # digits=N on a quadrature-backed activation, residuals below 10^-(N-5)
    t = dks(_act("tanh"), network=mlp(10), digits=20)
    assert t.max_residual <= 1e-15
    f = dks(_act("tanh"), network=mlp(10))
    assert abs(float(t.params["input_scale"]) - f.params["input_scale"]) <= 1e-14


# -- edge of chaos ------------------------------------------------------------------------
def test_eoc_relu():
    # THEORY.md §3: ReLU EOC is sigma_w^2 = 2, sigma_b = 0
    e = eoc(_act("relu"))
    assert isinstance(e, EdgeOfChaos)
    assert e.sigma_w**2 == pytest.approx(2.0, rel=1e-14) and e.chi_1 == 1.0
    assert e.xi_c == math.inf


def test_eoc_tanh_reference():
    # THEORY.md §3 (Poole et al. 2016): tanh, sigma_b^2 = 0.05 -> sigma_w^2 ~ 1.76095, q* ~ 0.57005
    e = eoc(_act("tanh"), sigma_b=math.sqrt(0.05))
    assert e.sigma_w**2 == pytest.approx(1.76095, abs=1e-5)
    assert e.q_star == pytest.approx(0.57005, abs=1e-5)
    assert e.phase == "edge of chaos"


def test_eoc_given_sigma_w_consistent():
    # at the EOC sigma_w the evaluation mode reproduces chi_1 = 1; larger sigma_w is chaotic
    e = eoc(_act("tanh"), sigma_b=0.3)
    same = eoc(_act("tanh"), sigma_b=0.3, sigma_w=e.sigma_w)
    assert same.chi_1 == pytest.approx(1.0, abs=1e-10)
    assert same.q_star == pytest.approx(e.q_star, rel=1e-10)
    assert eoc(_act("tanh"), sigma_b=0.3, sigma_w=2.5).phase == "chaotic"
    assert eoc(_act("tanh"), sigma_b=0.3, sigma_w=0.8).phase == "ordered"


def test_eoc_relu_with_bias_unreachable():
    with pytest.raises(UnreachableTargetError, match="sigma_b = 0"):
        eoc(_act("relu"), sigma_b=0.1)


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("zeta", [1.0, 0.5, -2.0, math.nan, math.inf])
def test_bad_zeta(zeta):
    with pytest.raises(TransformError, match="zeta must"):
        dks(_act("tanh"), network=mlp(10), zeta=zeta)


@pytest.mark.parametrize("eta", [0.0, 1.0, 1.5, -0.1])
def test_bad_eta(eta):
    with pytest.raises(TransformError, match=r"eta must lie in \(0, 1\)"):
        tat(_act("leaky_relu"), network=mlp(50), eta=eta)


def test_unreachable_eta_depth_10():
    # THEORY.md §5: a depth-10 chain cannot reach eta = 0.9 (ReLU value 0.8715...)
    with pytest.raises(UnreachableTargetError, match=r"eta = 0.9 cannot be reached.*0\.87"):
        tat(_act("leaky_relu"), network=mlp(10), eta=0.9)
    # the strongly residual resnet(50, 0.9) stays below 0.9 too (ReLU value 0.8879 ...)
    with pytest.raises(UnreachableTargetError, match=r"0\.88"):
        tat(_act("leaky_relu"), network=resnet(50, 0.9), eta=0.9)


@pytest.mark.parametrize("tau", [0.0, -0.3])
def test_bad_tau(tau):
    with pytest.raises(TransformError, match="tau must"):
        tat(_act("tanh"), network=mlp(10), tau=tau)


@pytest.mark.parametrize("method", [dks, tat])
def test_linear_activation(method):
    with pytest.raises(UnreachableTargetError, match="linear"):
        method(_act("identity"), network=mlp(10))


@pytest.mark.parametrize("method,condition", [(dks, "Q'\\(1\\)|C'\\(1\\)"),
                                              (tat, "Q'\\(1\\)|C''\\(1\\)")])
def test_unreachable_square(method, condition):
    # x^2: Q'(1) = C'(1) for every shift and scale, so DKS's pair of targets is unreachable
    with pytest.raises(UnreachableTargetError, match=f"condition ({condition}).*closest value"):
        method(_act("square"), network=mlp(10))


def test_tat_relu_suggests_leaky():
    with pytest.raises(TransformError, match="leaky_relu"):
        tat(_act("relu"), network=mlp(10))


def test_tat_kinked_unsupported():
    with pytest.raises(UnsupportedError, match="C''\\(1\\) is infinite"):
        tat(_act("selu"), network=mlp(10))


def test_tat_rejects_alpha_gamma_branch():
    # sigmoid's TAT solutions all have |input_scale| * output_scale >= 2 (dks rejects those)
    with pytest.raises(UnreachableTargetError, match=">= 2"):
        tat(_act("sigmoid"), network=mlp(50))


def test_free_parameter_must_be_fixed():
    phi = activation("a*tanh(x)", parameters=["a"])
    with pytest.raises(FreeParameterError, match=r"\['a'\]"):
        dks(phi, network=mlp(10))


def test_leaky_fixed_slope_rejected():
    with pytest.raises(TransformError, match="leave it free"):
        dks(activation("leaky_relu", negative_slope=0.2), network=mlp(10))


def test_bad_network():
    with pytest.raises(NetworkError, match="sum to 1"):
        dks(_act("tanh"), network=normalized_sum([nonlinear(), nonlinear()], [0.5, 0.5]))
    with pytest.raises(NetworkError, match="expected a network"):
        dks(_act("tanh"), network=42)
    with pytest.raises(TransformError, match="network is required"):
        dks(_act("tanh"), network=None)


def test_bad_digits():
    with pytest.raises(PrecisionError, match="digits"):
        dks(_act("tanh"), network=mlp(10), digits=3)


def test_dks_style_callable_network():
    # a bare subnet_max_func gives the same xi as the described network (bisection route)
    def fn(x, r_fn):
        for _ in range(7):
            x = r_fn(x)
        return x
    a = dks(_act("tanh"), network=fn)
    b = dks(_act("tanh"), network=mlp(7))
    assert a.targets["xi"] == pytest.approx(b.targets["xi"], rel=1e-15)
    assert a.params["input_scale"] == pytest.approx(b.params["input_scale"], rel=1e-12)


# -- a target that does not belong to the method or activation is an error ---------------
def test_tat_eta_for_smooth_activation_is_an_error():
    # was: eta silently ignored (the tau default solved instead)
    with pytest.raises(TransformError, match=r"eta=0\.9 would be ignored.*tau"):
        tat(_act("softplus"), network=mlp(50), eta=0.9)


def test_tat_tau_for_leaky_relu_is_an_error():
    # was: the eta default used, and on a shallow network an error about an eta never given
    with pytest.raises(TransformError, match=r"leaky ReLU targets eta.*tau=0\.3"):
        tat(_act("leaky_relu"), network=mlp(50), tau=0.3)
    with pytest.raises(TransformError, match=r"tau=0\.3"):
        tat(_act("leaky_relu"), network=mlp(10), tau=0.3)


def test_tat_defaults_still_apply():
    smooth = tat(_act("softplus"), network=mlp(50))
    assert smooth.targets["tau"] == 0.3
    leaky = tat(_act("leaky_relu"), network=mlp(50))
    assert leaky.targets["eta"] == 0.9


def test_dks_q_slope_for_relu_is_an_error():
    # was: ignored (ReLU drops the Q'(1) condition)
    with pytest.raises(TransformError, match=r"q_slope=0\.5 would be ignored"):
        dks(_act("relu"), network=mlp(50), q_slope=0.5)
    with pytest.warns(ReluWarning):
        assert "q_slope" not in dks(_act("relu"), network=mlp(50)).targets
