"""The emulation of dks's quadrature rule (kernelshape.transforms._dks_rule)."""

import numpy as np
import pytest
from scipy.special import roots_legendre

from kernelshape import activation
from kernelshape.transforms import _common as cm
from kernelshape.transforms._dks_rule import _evaluator, _gaussian_rule, legendre_rule
from kernelshape.transforms.tat import _steers_dks


@pytest.mark.parametrize("n", [1000, 4000])
def test_legendre_rule_matches_scipy(n):
    x, w = legendre_rule.__wrapped__(n)
    xs, ws = roots_legendre(n)
    inner = np.abs(xs) < 0.9
    assert np.all(np.diff(x) > 0)
    assert np.max(np.abs(x - xs)[inner]) <= 1e-15
    assert np.max((np.abs(w - ws) / ws)[inner]) <= 1e-11


def test_legendre_rule_rejects_small_or_odd_orders():
    with pytest.raises(ValueError):
        legendre_rule.__wrapped__(999)
    with pytest.raises(ValueError):
        legendre_rule.__wrapped__(100)


def test_legendre_rule_matches_dks_table():
    dks = pytest.importorskip("dks")
    import os
    X, W = np.load(os.path.join(os.path.dirname(dks.__file__), "base", "roots_100000.npy"))
    x, w = legendre_rule()
    inner = np.abs(X) < 0.95
    assert np.max(np.abs(x - X)[inner]) <= 1e-15
    # scipy's weights (dks's table) carry ~1.4e-11 themselves
    assert np.max((np.abs(w - W) / W)[inner]) <= 3e-10


def test_gaussian_rule_integrates_moments():
    y, g = _gaussian_rule()
    assert abs(g.sum() - 1.0) <= 1e-14
    assert abs(g @ y**2 - 1.0) <= 1e-14
    assert abs(g @ y**4 - 3.0) <= 1e-13


def test_rule_sees_the_kink_error_dks_sees():
    # E[elu''(z + s)^2] = E[exp(2(z + s)); z < -s] = exp(2 + 2s) Phi(-2 - s): dks's unsplit
    # rule misses it by O(h), h ~ 3e-4 the node spacing at 0; a smooth integrand it gets to
    # ~1e-11 (scipy's weights)
    import math
    y, g = _gaussian_rule()
    s = 1e-4
    _, _, f2 = _evaluator(activation("elu"))(y + s)
    exact = math.exp(2 + 2 * s) * 0.5 * math.erfc((2 + s) / math.sqrt(2))
    assert 1e-8 < abs(g @ (f2 * f2) - exact) < 1e-3
    tanh = activation("tanh")
    t0, _, _ = _evaluator(tanh)(y)
    assert abs(g @ (t0 * t0) - tanh.q_map(1.0)) <= 1e-13


@pytest.mark.parametrize("name, steers", [("elu", True), ("softsign", False),
                                          ("tanh", False)])
def test_emulation_only_where_phi2_squared_jumps(name, steers):
    act = activation(name)
    assert _steers_dks(act, cm.moments_of(act)) is steers


@pytest.mark.parametrize("name", ["elu", "selu", "relu", "abs(x - 0.5) + tanh(x)"])
def test_fast_rule_sums_match_the_full_100k_node_sums(name):
    # RuleMeans sums each branch range by Euler-Maclaurin (an integral plus end terms that
    # carry dks's O(h) kink error); the reference visits all 100,000 nodes. Points cover
    # both signs of alpha, kinks near a node, far out, and large input scales.
    from kernelshape.transforms._dks_rule import RuleMeans
    act = activation(name)
    fast, full = RuleMeans(act), RuleMeans(act, full=True)
    rng = np.random.default_rng(7)
    points = [(1.0, 0.0, 0.0), (0.1, 1e-5, 0.0), (-0.7, 0.3, 1.0), (0.0678, -0.1727, 0.15),
              (3.0, -2.0, 0.5), (-0.05, 0.01, 0.0), (40.0, 0.2, 0.0)]
    points += [tuple(rng.uniform([-2, -3, -3], [2, 3, 3])) for _ in range(12)]
    for p in points:
        got, want = np.array(fast(p)), np.array(full(p))
        # dks's conditions are each sum over s = E[v^2]: errors count against s as well
        scale = np.abs([want[0], np.sqrt(want[0] * want[2]), want[2], want[3]]) + want[0]
        assert np.all(np.abs(got - want) <= 1e-13 * scale), (p, got, want)


def test_fast_rule_keeps_the_kink_error():
    # the O(h) error of the unsplit rule at elu's kink is what steers dks's branch: the
    # fast sums must carry it, not the exact value (see test_rule_sees_the_kink_error...)
    import math

    from kernelshape.transforms._dks_rule import RuleMeans
    s = 1e-4
    got = RuleMeans(activation("elu"))((1.0, s, 0.0))[3]
    exact = math.exp(2 + 2 * s) * 0.5 * math.erfc((2 + s) / math.sqrt(2))
    full = RuleMeans(activation("elu"), full=True)((1.0, s, 0.0))[3]
    assert 1e-8 < abs(got - exact) < 1e-3
    assert abs(got - full) <= 1e-14 * full


def test_fast_search_finds_the_point_of_the_full_search():
    # resnet(101, 0.6), tau 0.3: the first point dks's search accepts, on the fast sums and
    # on all 100,000 nodes, agree to the search's own tolerance (xtol 1.5e-8)
    from kernelshape.networks import resnet
    from kernelshape.transforms._dks_rule import tat_branch
    from kernelshape.transforms._targets import local_curvature
    from kernelshape.transforms.tat import _DKS_STARTS
    act, tau_local = activation("elu"), local_curvature(resnet(101, 0.6), 0.3)
    fast = next(tat_branch(act, tau_local, _DKS_STARTS))
    full = next(tat_branch(act, tau_local, _DKS_STARTS, full=True))
    assert np.allclose(fast, full, rtol=1e-7, atol=1e-9)
