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
