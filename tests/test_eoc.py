"""Edge of chaos: every returned point is critical (chi_1 = 1 at a stable fixed point q*),
or a clear error says why none exists; depth scales are positive or infinite with a reason.

Independent checks: the fixed point, chi_1 and the stability of q* are re-evaluated with
the activation's own Q and C maps (``phi.q_map``, ``phi.c_map``: closed forms or the float64
map engine, not the solver's moment sums), using ``E[phi'^2](q) = C'(1; q) Q(q) / q``
(THEORY.md §1). At ``q* = 0`` the limit ``E[phi'^2] -> (phi'(0-)^2 + phi'(0+)^2) / 2`` is
taken from one-sided derivatives of phi.
"""

import math

import pytest

import kernelshape as ks
from kernelshape import cli
from kernelshape.errors import KernelShapeError, UnreachableTargetError

ACTS = [n for n in ks.builtins() if n not in ("leaky_relu",)]


def _act(name, **params):
    return ks.activation(name, **params)


def _slope2_at_zero(phi):
    """(phi'(0-)^2 + phi'(0+)^2) / 2, the q -> 0 limit of E[phi'(sqrt(q) z)^2]."""
    left, right = float(phi(-1e-12, order=1)), float(phi(1e-12, order=1))
    return 0.5 * (left * left + right * right)


def _check_critical(phi, e):
    """chi_1 = 1 at a fixed point q* that attracts; depth scales positive or inf + reason."""
    s, sb2, q = e.sigma_w**2, e.sigma_b**2, e.q_star
    assert e.chi_1 == 1.0 and e.phase == "edge of chaos"
    if q == 0.0:
        assert sb2 == 0.0 and abs(float(phi(0.0))) == 0.0
        assert s * _slope2_at_zero(phi) == pytest.approx(1.0, rel=1e-9)
        # attracting: s Q(q) < q just above 0 (else q grows away and 0 is never reached)
        for qq in (1e-3, 1e-2):
            assert s * float(phi.q_map(qq)) <= qq * (1 + 1e-12)
    else:
        Q = float(phi.q_map(q))
        assert s * Q + sb2 == pytest.approx(q, rel=1e-10)                       # fixed point
        chi_1 = s * float(phi.c_map(1.0, q=q, order=1)) * Q / q
        assert chi_1 == pytest.approx(1.0, rel=1e-9)                            # critical
        rate = s * float(phi.q_map(q, order=1))
        assert abs(rate) <= 1.0 + 1e-9                                          # stable
        if abs(abs(rate) - 1.0) > 1e-6:
            assert e.xi_q == pytest.approx(-1.0 / math.log(abs(rate)), rel=1e-6)
    for xi, reason in ((e.xi_q, e.xi_q_reason), (e.xi_c, e.xi_c_reason)):
        assert xi > 0
        assert (xi == math.inf) == bool(reason)


@pytest.mark.parametrize("sigma_b", [0.0, 0.3])
@pytest.mark.parametrize("name", ACTS)
def test_every_edge_of_chaos_is_critical(name, sigma_b):
    # each built-in: either a critical point (checked on its own maps) or an error naming why
    phi = _act(name)
    try:
        e = ks.eoc(phi, sigma_b=sigma_b)
    except UnreachableTargetError as err:
        assert "edge of chaos" in str(err) or "chi_1 = 1" in str(err)
        return
    _check_critical(phi, e)


def test_elu_alpha_3_is_critical_at_q_zero():
    # was: sigma_w = 1 with chi_1 = 5 ("chaotic", exit 0). phi'(0-) = 3, phi'(0+) = 1, so the
    # q -> 0 edge of chaos is sigma_w^2 = 2 / (9 + 1) = 0.2
    phi = _act("elu", alpha=3)
    e = ks.eoc(phi)
    assert e.sigma_w**2 == pytest.approx(0.2, rel=1e-12)
    assert e.q_star == 0.0 and e.chi_1 == 1.0
    assert e.xi_q == e.xi_c == math.inf and "polynomially" in e.xi_q_reason
    _check_critical(phi, e)
    # the same point in evaluation mode
    same = ks.eoc(phi, sigma_w=e.sigma_w)
    assert same.q_star == 0.0 and same.chi_1 == pytest.approx(1.0, abs=1e-12)


def test_selu_at_its_edge_of_chaos_sigma_w():
    # was: ValueError: math domain error. selu's q -> 0 limit: sigma_w^2 = 2 / (l^2 (1 + a^2))
    scale, alpha = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
    sw = math.sqrt(2.0 / (scale**2 * (1 + alpha**2)))
    e = ks.eoc("selu", sigma_w=0.6904860736341849)
    assert sw == pytest.approx(0.6904860736341849, rel=1e-15)
    assert e.q_star == 0.0 and e.phase == "edge of chaos"
    assert e.xi_q == e.xi_c == math.inf and e.xi_q_reason and e.xi_c_reason
    solved = ks.eoc("selu")
    assert solved.sigma_w == pytest.approx(sw, rel=1e-12)    # was chi_1 = 1.8999, "chaotic"
    _check_critical(_act("selu"), solved)


@pytest.mark.parametrize("name", ["swish", "gelu", "gelu_exact", "mish", "bentid"])
def test_unstable_fixed_points_are_not_the_edge_of_chaos(name):
    # was: returned with xi_q < 0. The only point with chi_1 = 1 at sigma_b = 0.3 has
    # sigma_w^2 Q'(q*) > 1: the recursion leaves it. Starting there from q = 1, the network
    # settles elsewhere, where chi_1 != 1.
    with pytest.raises(UnreachableTargetError, match=r"unstable.*Q'\(q\*\) = 1\.\d+ > 1") as err:
        ks.eoc(name, sigma_b=0.3)
    import re
    sw = float(re.search(r"at sigma_w = ([0-9.]+)", str(err.value)).group(1))
    try:
        there = ks.eoc(name, sigma_b=0.3, sigma_w=sw)
    except UnreachableTargetError as div:      # q grows past every bound instead
        assert "diverges" in str(div)
    else:
        assert abs(there.chi_1 - 1.0) > 1e-3 and there.phase != "edge of chaos"


@pytest.mark.parametrize("name", ["swish", "gelu", "mish", "bentid"])
def test_repelling_zero_is_not_the_edge_of_chaos(name):
    # sigma_b = 0 and phi(0) = 0 make q = 0 a fixed point; at sigma_w^2 = 1/phi'(0)^2 these
    # activations have s Q(q) > q near 0, so q grows away (was: returned as critical)
    with pytest.raises(UnreachableTargetError, match="grows away from 0"):
        ks.eoc(name)


@pytest.mark.parametrize("name", ["cos", "gaussian"])
@pytest.mark.parametrize("sigma_b", [0.0, 0.3])
def test_oscillating_convergence_has_positive_depth_scale(name, sigma_b):
    # Q decreases for cos and gaussian, so sigma_w^2 Q'(q*) < 0: q converges oscillating,
    # at the depth scale of |rate| (was reported as xi_q = 0)
    phi = _act(name)
    e = ks.eoc(phi, sigma_b=sigma_b)
    rate = e.sigma_w**2 * float(phi.q_map(e.q_star, order=1))
    assert -1.0 < rate < 0.0
    assert e.xi_q == pytest.approx(-1.0 / math.log(-rate), rel=1e-9) and e.xi_q > 0
    _check_critical(phi, e)


@pytest.mark.parametrize("sigma_w, phase", [(1.0, "ordered"), (2.0 ** 0.5, "edge of chaos")])
def test_relu_given_sigma_w(sigma_w, phase):
    # sigma_w^2 = 1: q halves each layer (q* = 0, rate 1/2: xi_q = 1/log 2); the ReLU C map
    # does not depend on q and has slope 1 at c = 1, so xi_c is infinite, with the reason
    e = ks.eoc("relu", sigma_w=sigma_w)
    assert e.phase == phase
    if phase == "ordered":
        assert e.q_star == 0.0 and e.xi_q == pytest.approx(1 / math.log(2), rel=1e-12)
    assert e.xi_c == math.inf and e.xi_c_reason


def test_diverging_q_recursion_is_an_error():
    # ReLU with sigma_w^2 = 4 doubles q every layer: no fixed point to evaluate chi_1 at
    with pytest.raises(UnreachableTargetError, match="diverges"):
        ks.eoc("relu", sigma_w=2.0)


def test_square_has_no_edge_of_chaos():
    # E[phi^2]/E[phi'^2] = 3q/4 for x^2: chi_1 = 4/3 at every fixed point (the old message
    # blamed a sigma_b that was 0)
    with pytest.raises(UnreachableTargetError, match="0.75 q"):
        ks.eoc("square")


def test_cli_elu_alpha_3(capsys):
    status = cli.main(["solve", "elu", "--param", "alpha=3", "--method", "eoc", "--json"])
    out = capsys.readouterr().out
    assert status in (0, None)
    import json
    data = json.loads(out)
    assert data["chi_1"] == 1.0 and data["phase"] == "edge of chaos"
    assert float(data["sigma_w"]) == pytest.approx(math.sqrt(0.2), rel=1e-12)


def test_cli_swish_error_exit(capsys):
    status = cli.main(["solve", "swish", "--method", "eoc", "--sigma-b", "0.3"])
    err = capsys.readouterr().err
    assert status == 2 and "unstable" in err
    assert issubclass(UnreachableTargetError, KernelShapeError)
