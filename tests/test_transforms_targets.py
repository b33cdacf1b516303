"""Targets of the transforms: computed at the requested precision, and in O(1) for mlp(L).

Exact references: ``zeta^(1/L)`` for ``mlp(L)`` (THEORY.md §2) and ``tau / L`` for its
curvature target, evaluated in mpmath at 60 digits; for other networks the network
equation itself (``mu(xi) = zeta``, ``M_{f, y -> t + y}(0) = tau``) re-evaluated at 60
digits. A float target is taken as the exact binary value given (``tau=0.3`` is
``mpf(0.3)``). Achieved conditions are re-computed by ``mpmath.quad`` (split at kinks) on the
base activation, independent of the solver's quadrature.
"""

import mpmath
import pytest

import kernelshape as ks
from kernelshape.errors import PrecisionError, TransformError
from kernelshape.networks import mlp, resnet
from kernelshape.transforms import dks, tat


def _quad_c_slope(t, dps=50):
    """C'(1) = E[phi_hat'^2] / E[phi_hat^2] of a DKS/TAT transform by mpmath.quad."""
    p = {"input_scale": 1, "input_shift": 0, "output_shift": 0, **t.params}
    base = t.base
    if "negative_slope" in p:
        base = base.fix(negative_slope=float(p["negative_slope"]))
    with mpmath.workdps(dps):
        a, b = mpmath.mpf(p["input_scale"]), mpmath.mpf(p["input_shift"])
        d = mpmath.mpf(p["output_shift"])
        cuts = sorted((mpmath.mpf(k.location) - b) / a for k in base.kinks)
        points = [-mpmath.inf, *cuts, mpmath.inf]
        if "negative_slope" in p:   # leaky ReLU: phi' is the slope on each side
            s = mpmath.mpf(p["negative_slope"])
            phi = lambda x: x if x >= 0 else s * x
            dphi = lambda x: 1 if x >= 0 else s
        else:
            phi, dphi = base.mp, (lambda x: base.mp(x, 1))
        e2 = mpmath.quad(lambda z: (phi(a * z + b) + d) ** 2 * mpmath.npdf(z), points)
        d2 = mpmath.quad(lambda z: (a * dphi(a * z + b)) ** 2 * mpmath.npdf(z), points)
        return d2 / e2


def test_dks_xi_is_exact_at_40_digits_softplus_mlp37():
    # issue 13: xi was zeta**(1/37) rounded to float64, so C'(1) missed the true target by
    # 1.2e-17 at digits=40
    t = dks(ks.activation("softplus"), network=mlp(37), zeta=1.5, digits=40)
    with mpmath.workdps(60):
        exact = mpmath.mpf("1.5") ** (mpmath.mpf(1) / 37)
        assert isinstance(t.targets["xi"], mpmath.mpf)
        assert abs(t.targets["xi"] - exact) < mpmath.mpf(10) ** -45
        assert abs(_quad_c_slope(t) - exact) < mpmath.mpf(10) ** -35


def test_dks_leaky_relu_xi_is_exact_at_40_digits():
    t = dks(ks.activation("leaky_relu"), network=mlp(37), zeta=1.5, digits=40)
    with mpmath.workdps(60):
        exact = mpmath.mpf("1.5") ** (mpmath.mpf(1) / 37)
        assert abs(_quad_c_slope(t) - exact) < mpmath.mpf(10) ** -35


def test_dks_xi_meets_the_network_equation_at_40_digits():
    # resnet: no closed form; mu(xi) = zeta through the network's own subnet_max at 60 digits
    net = resnet(101, 0.6)
    t = dks(ks.activation("tanh"), network=net, digits=40)
    with mpmath.workdps(60):
        xi = t.targets["xi"]
        assert abs(net.subnet_max(mpmath.mpf(1), lambda y: xi * y) - mpmath.mpf("1.5")) \
            < mpmath.mpf(10) ** -38
    assert t.max_residual < 1e-35


@pytest.mark.parametrize("net, k", [(mlp(50), 50), (resnet(50, 0.0), None)])
def test_tat_curvature_target_is_exact_at_40_digits(net, k):
    t = tat(ks.activation("softplus"), network=net, tau=0.3, digits=40)
    with mpmath.workdps(60):
        tau_local = t.targets["tau_local"]
        assert isinstance(tau_local, mpmath.mpf)
        total = net.subnet_max(mpmath.mpf(0), lambda y: tau_local + y)
        assert abs(total - mpmath.mpf(0.3)) < mpmath.mpf(10) ** -38
        if k is not None:
            assert abs(tau_local - mpmath.mpf(0.3) / k) < mpmath.mpf(10) ** -45


def test_dks_style_function_network_at_40_digits():
    # a dks-style subnet_max_func: the target is polished through it in mpmath
    def subnet(x, r_fn):
        return max(r_fn(r_fn(r_fn(x))), r_fn(x))
    t = dks(ks.activation("leaky_relu"), network=subnet, zeta=1.5, digits=40)
    with mpmath.workdps(60):
        assert abs(t.targets["xi"] ** 3 - mpmath.mpf("1.5")) < mpmath.mpf(10) ** -38


def test_function_network_without_mpmath_support_is_a_clear_error():
    import math

    def subnet(x, r_fn):      # forces float64: cannot give 40 digits
        return float(r_fn(r_fn(x))) if math.isfinite(float(x)) else x
    with pytest.raises((PrecisionError, ks.KernelShapeError), match="40 digits|mpmath"):
        dks(ks.activation("leaky_relu"), network=subnet, zeta=1.5, digits=40)


# -- mlp(L): closed forms, no depth-step walk ----------------------------------------------
@pytest.mark.parametrize("depth", [1, 37, 10**6])
def test_mlp_targets_are_closed_forms(depth):
    # issue 14.7: solve tanh --mlp 1000000 ran over 300 s (an O(L^2) slope polynomial)
    net = mlp(depth)
    t = dks(ks.activation("tanh"), network=net, zeta=1.5)
    assert t.targets["xi"] == 1.5 ** (1.0 / depth)
    assert t.max_residual <= 1e-14
    s = tat(ks.activation("tanh"), network=net, tau=0.3)
    assert s.targets["tau_local"] == 0.3 / depth


def test_deep_user_chain_slope_polynomial_is_linear_in_depth():
    # a user's chain of 20,000 nonlinear layers (no mlp marker): the sparse slope
    # polynomial keeps one term, so the walk is O(L) (was O(L^2): ~1 s here, 40 min at 10^6)
    net = ks.chain(*([ks.nonlinear(), ks.linear()] * 20000))
    t = dks(ks.activation("tanh"), network=net, zeta=1.5)
    assert t.targets["xi"] == pytest.approx(1.5 ** (1 / 20000), rel=1e-15)


def test_leaky_tat_depth_beyond_the_walk_limit_is_refused():
    # M_(f,C_a)(0) is a depth-step walk per trial slope: mlp(10**6) would take ~5 hours
    from kernelshape.transforms._targets import MAX_WALK_DEPTH
    with pytest.raises(TransformError, match=f"exceed the limit of {MAX_WALK_DEPTH}"):
        tat(ks.activation("leaky_relu"), network=mlp(10**6))


# -- cost of precise solves: a stated limit, the expected cost up front, progress ----------
@pytest.mark.parametrize("method", [dks, tat])
def test_digits_above_the_limit_are_refused(method):
    # issue 13: solve tanh --digits 5000 ran for minutes with no word
    from kernelshape.transforms._precise import MAX_DIGITS
    with pytest.raises(PrecisionError, match=f"above the limit for solves, {MAX_DIGITS} digits"):
        method(ks.activation("tanh"), network=mlp(10), digits=5000)
    with pytest.raises(PrecisionError, match=str(MAX_DIGITS)):
        method(ks.activation("tanh"), network=mlp(10), digits=MAX_DIGITS + 1)


def test_cli_refuses_5000_digits(capsys):
    from kernelshape import cli
    status = cli.main(["solve", "tanh", "--digits", "5000"])
    err = capsys.readouterr().err
    assert status == 2 and "limit for solves" in err


def test_moderately_long_solve_shows_progress_and_expected_cost(capsys, caplog):
    import logging
    with caplog.at_level(logging.INFO, logger="kernelshape.transforms"):
        t = dks(ks.activation("tanh"), network=mlp(10), digits=34)
    assert t.max_residual < 1e-29
    assert any("at 34 digits: expected about" in r.getMessage() for r in caplog.records)
    err = capsys.readouterr().err
    assert "DKS polish, 34 digits" in err and "Newton step" in err


def test_expensive_solves_warn_their_cost(caplog):
    import logging

    from kernelshape.transforms import _precise
    with caplog.at_level(logging.INFO, logger="kernelshape.transforms"):
        _precise.announce("DKS", ks.activation("tanh"), 150)
        _precise.announce("DKS", ks.activation("tanh"), 20)
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.INFO]
    assert "min" in caplog.records[0].getMessage()
