"""Finite-width check: sampled networks follow the predicted q and c maps layer by layer.

Monte Carlo tolerances: z-scores ``(empirical - predicted) / stderr`` over seeds. With 12-16
seeds a t-distribution applies; ``|z| < 5`` at every layer is a few-standard-error agreement
(the per-layer values are strongly correlated across layers, so the maximum over layers is
not much larger than a single z). The finite-width bias is O(depth / width) ~ 0.03 of the
fluctuation scale at width 1024, depth 30, far below that.
"""

import math

import numpy as np
import pytest

from kernelshape import activation
from kernelshape.empirical import KernelComparison, _dense, compare, predict
from kernelshape.errors import DomainError, NetworkError, UnsupportedError
from kernelshape.networks import as_network, mlp, resnet
from kernelshape.transforms import dks

TANH = activation("tanh")
Z_MAX = 5.0


def _tat(phi, net, **kw):
    from kernelshape.transforms import tat
    return tat(phi, network=net, **kw)


# -- predictions --------------------------------------------------------------------------

def test_predict_relu_closed_form():
    # ReLU with sigma_w^2 = 2 (He): q preserved, C(0) = 1/pi, C(C(0)) from the closed form
    # C(c) = (sqrt(1 - c^2) + (pi - arccos c) c) / pi (THEORY.md §1).
    q, c = predict(activation("relu"), network=mlp(2), q=1.7, c=[0.0], sigma_w=math.sqrt(2))
    c1 = 1 / math.pi
    c2 = (math.sqrt(1 - c1**2) + (math.pi - math.acos(c1)) * c1) / math.pi
    np.testing.assert_allclose(q, [1.7, 1.7, 1.7], rtol=1e-13)
    np.testing.assert_allclose(c[0], [0.0, c1, c2], rtol=1e-13)


@pytest.mark.parametrize("net", [mlp(6), resnet(18, 0.6), resnet(50, 0.8)], ids=repr)
@pytest.mark.parametrize("name", ["tanh", "softplus"])
def test_predict_matches_network_maps(net, name):
    # Independent route: Network.q_map / c_map of kernelshape.networks (same maps, its own
    # traversal). Only the final stage is comparable; float64 agreement.
    phi = activation(name)
    cs = np.array([-0.3, 0.2, 0.8])
    q, c = predict(phi, network=net, c=cs)
    assert q[-1] == pytest.approx(net.q_map(phi, 1.0), rel=1e-13)
    np.testing.assert_allclose(c[:, -1], net.c_map(phi, cs), rtol=1e-12, atol=1e-14)


def test_predict_edge_of_chaos_bias():
    # With a bias the layer maps are q' = sw^2 Q(q) + sb^2, c' = (sw^2 Q C + sb^2) / q'
    # (THEORY.md §3), checked against the activation's own maps for one layer.
    sw, sb, q0, c0 = 1.3, 0.4, 0.8, 0.25
    q, c = predict(TANH, network=mlp(1), q=q0, c=c0, sigma_w=sw, sigma_b=sb)
    big_q = TANH.q_map(q0)
    assert q[1] == pytest.approx(sw**2 * big_q + sb**2, rel=1e-14)
    assert c[0, 1] == pytest.approx(
        (sw**2 * big_q * TANH.c_map(c0, q=q0) + sb**2) / q[1], rel=1e-14)


# -- sampled versus predicted -------------------------------------------------------------

# Gaussian weights add an O(depth / width) bias (about 0.03 in c at depth 30, width 1024,
# as large as the standard error of 12 seeds); orthogonal weights do not (DKS paper, §6 on
# kernel approximation), so the Gaussian case runs shallower and wider.
@pytest.mark.parametrize("init, depth, width", [("orthogonal", 30, 1024),
                                                ("gaussian", 20, 2048)])
@pytest.mark.parametrize("method", ["dks", "tat"])
def test_transformed_tanh_agrees(method, init, depth, width):
    net = mlp(depth)
    t = dks(TANH, network=net, zeta=1.5) if method == "dks" else _tat(TANH, net, tau=0.3)
    r = compare(t, network=net, width=width, seeds=12, init=init, seed=1)
    assert isinstance(r, KernelComparison)
    assert r.c_empirical.shape == (3, depth + 1) and r.q_stderr.shape == (depth + 1,)
    assert r.max_abs_z < Z_MAX, r
    # The standard errors are of the expected 1/sqrt(width * seeds) order, not inflated.
    assert 1e-4 < r.c_stderr[1, -1] < 0.03


def test_tat_leaky_relu_resnet_blocks_agree():
    net = resnet(50, 0.8)
    t = _tat(activation("leaky_relu"), net, eta=0.9)
    r = compare(t, network=net, width=1024, seeds=12, c=(0.0, 0.6), seed=2)
    assert len(r.layers) == len(net.layers) + 1
    assert r.max_abs_z < Z_MAX, r


def test_untransformed_tanh_degenerates_as_predicted_and_unlike_dks():
    # Depth 50, width 1024: untransformed tanh (sigma_w = 1, no bias) loses its second
    # moment (q_50 ~ 0.01) while DKS keeps q = 1 and bends the C map further; each network
    # follows its own prediction and is many standard errors away from the other's, so a
    # wrong prediction (e.g. swapping them) fails this test.
    net = mlp(50)
    t = dks(TANH, network=net, zeta=1.5)
    plain = compare(TANH, network=net, width=1024, seeds=12, c=(0.5, 0.9), seed=3)
    shaped = compare(t, network=net, width=1024, seeds=12, c=(0.5, 0.9), seed=4)
    assert plain.max_abs_z < Z_MAX and shaped.max_abs_z < Z_MAX
    assert plain.q_predicted[-1] < 0.02 and shaped.q_predicted[-1] == pytest.approx(1.0)
    swapped_q = abs(plain.q_empirical[-1] - shaped.q_predicted[-1]) / plain.q_stderr[-1]
    # c at c0 = 0.5: predicted 0.442 (tanh) against 0.400 (DKS), about 0.006 standard error
    # for the tanh network's mean; at c0 = 0.9 (0.868 against 0.857) they are too close.
    swapped_c = abs(plain.c_empirical[0, -1] - shaped.c_predicted[0, -1]) / plain.c_stderr[0, -1]
    assert swapped_q > 100
    assert swapped_c > Z_MAX


def test_dense_shortcut_matches_explicit_orthogonal_matrices():
    # W X sampled as (Haar frame) R equals, in distribution, a full Haar-orthogonal W times
    # X. Compare the mean of a nonlinear statistic over 400 draws of each (Monte Carlo,
    # seed 0): sum of tanh(W X)[:, 0] * tanh(W X)[:, 1] / n.
    n, draws = 24, 400
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 2))
    def stat(y):
        return np.mean(np.tanh(y[:, 0]) * np.tanh(y[:, 1]))
    fast = [stat(_dense(rng, x, "orthogonal", 1.0, 0.0)) for _ in range(draws)]
    full = []
    for _ in range(draws):
        qm, r = np.linalg.qr(rng.standard_normal((n, n)))
        full.append(stat((qm * np.sign(np.diag(r))) @ x))
    diff = np.mean(fast) - np.mean(full)
    err = math.hypot(np.std(fast), np.std(full)) / math.sqrt(draws)
    assert abs(diff) < 4 * err
    # Orthogonal W preserves norms exactly, in both routes.
    y = _dense(rng, x, "orthogonal", 1.0, 0.0)
    np.testing.assert_allclose(np.linalg.norm(y, axis=0), np.linalg.norm(x, axis=0), rtol=1e-12)


# -- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error", [
    ({"width": 4}, DomainError),                 # narrower than the 2 x 3 inputs
    ({"seeds": 1}, DomainError),
    ({"init": "uniform"}, DomainError),
    ({"c": 1.5}, DomainError),
    ({"q": -1.0}, DomainError),
    ({"network": "mlp"}, NetworkError),
    ({"network": as_network(lambda x, r: r(x))}, UnsupportedError),
])
def test_invalid_arguments(kwargs, error):
    args = {"network": mlp(2), "width": 64, "seeds": 2} | kwargs
    with pytest.raises(error):
        compare(TANH, **args)


def test_error_messages_say_expected_and_got():
    with pytest.raises(DomainError, match="init must be one of orthogonal, gaussian, got 'x'"):
        compare(TANH, network=mlp(2), init="x")


def test_deeply_nested_description_predicts_and_samples():
    # 2,000 residual blocks nested inside each other (not a flat chain): nothing recurses.
    # The prediction with sigma_w = 1, sigma_b = 0 is the network's own global map.
    from kernelshape.networks import chain, linear, nonlinear, residual
    net = nonlinear()
    for _ in range(2000):
        net = chain(residual(net, 0.9), linear())
    tanh = activation("tanh")
    qs, cs = predict(tanh, network=net, q=1.0, c=(0.5,))
    assert qs[-1] == pytest.approx(net.q_map(tanh, 1.0), rel=1e-12)
    assert cs[0, -1] == pytest.approx(net.c_map(tanh, 0.5), rel=1e-12)
    result = compare(tanh, network=net, width=16, seeds=2, c=(0.5,))
    assert np.all(np.isfinite(result.c_empirical))
