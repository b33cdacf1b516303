"""The layer vocabulary on the scalar path: maps with derivatives, NTK, sharing, heads, errors.

Expected values are closed forms (ReLU arc-cosine kernel, affine maps) or identities
between two independent routes (scalar walk vs kernel arrays, per-layer NTK sum vs NTK).
"""

import math

import numpy as np
import pytest

import kernelshape as ks
from kernelshape.errors import (
    DomainError,
    KernelShapeError,
    NetworkError,
    UnsupportedError,
)

RELU = ks.activation("relu")


def relu_c(c):
    return (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi


def relu_dc(c):
    return (math.pi - math.acos(c)) / math.pi


@pytest.mark.parametrize("c", [-0.7, 0.0, 0.3, 0.9])
def test_c_map_derivatives_of_a_chain_are_the_chain_rule(c):
    # closed forms: C(c), C'(c) = (pi - arccos c) / pi, C''(c) = 1 / (pi sqrt(1 - c^2))
    net = ks.mlp(2)
    inner = relu_c(c)
    assert net.c_map(RELU, c) == pytest.approx(relu_c(inner), rel=1e-13)
    assert net.c_map(RELU, c, order=1) == pytest.approx(relu_dc(inner) * relu_dc(c), rel=1e-13)
    d2 = (relu_dc(c) ** 2 / (math.pi * math.sqrt(1 - inner ** 2))
          + relu_dc(inner) / (math.pi * math.sqrt(1 - c * c)))
    assert net.c_map(RELU, c, order=2) == pytest.approx(d2, rel=1e-12)


def test_c_map_order_on_arrays_and_sums():
    net = ks.residual(ks.chain(ks.nonlinear(), ks.linear()), 0.6)
    c = np.array([-0.5, 0.2, 0.8])
    got = net.c_map(RELU, c, order=1)
    q_branch = 0.5   # ReLU halves q
    q_out = 0.36 + 0.64 * q_branch
    want = [(0.36 + 0.64 * q_branch * relu_dc(v)) / q_out for v in c]
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_linear_with_bias_maps():
    # q -> sw^2 q + sb^2 ; c -> (sw^2 q c + sb^2) / q'
    net = ks.chain(ks.linear(sigma_w=2.0, sigma_b=0.5))
    assert net.q_map(None, 3.0) == 4 * 3.0 + 0.25
    assert net.q_map(None, 3.0, order=1) == 4.0
    assert net.q_map(None, 3.0, order=2) == 0.0
    assert net.c_map(None, 0.3, q=3.0) == pytest.approx((12 * 0.3 + 0.25) / 12.25, rel=1e-15)
    assert net.c_map(None, 0.3, q=3.0, order=1) == pytest.approx(12 / 12.25, rel=1e-15)
    # through ReLU: Q = q/2 so Q_f(q) = (4 q + 0.25) / 2, Q_f' = 2
    net = ks.chain(ks.linear(sigma_w=2.0, sigma_b=0.5), ks.nonlinear())
    assert net.q_map(RELU, 3.0) == pytest.approx(12.25 / 2, rel=1e-14)
    assert net.q_map(RELU, 3.0, order=1) == pytest.approx(2.0, rel=1e-14)


def test_q_map_second_derivative_of_tanh_chain_matches_finite_differences():
    tanh = ks.activation("tanh")
    net = ks.chain(ks.linear(sigma_w=1.3, sigma_b=0.2), ks.nonlinear(), ks.linear(sigma_w=1.1),
                   ks.nonlinear())
    q, h = 0.8, 1e-4
    f = [net.q_map(tanh, q + k * h) for k in (-1, 0, 1)]
    assert net.q_map(tanh, q, order=1) == pytest.approx((f[2] - f[0]) / (2 * h), rel=1e-7)
    assert net.q_map(tanh, q, order=2) == pytest.approx((f[2] - 2 * f[1] + f[0]) / h**2,
                                                        rel=1e-4)


def test_layer_norm_sets_q_to_one_and_needs_gaussian_inputs():
    net = ks.chain(ks.linear(sigma_w=2.0, sigma_b=0.3), ks.layer_norm(), ks.nonlinear())
    assert net.q_map(RELU, 5.0) == 0.5
    assert net.q_map(RELU, 5.0, order=1) == 0.0
    with pytest.raises(UnsupportedError, match="layer_norm must follow a linear or conv"):
        ks.chain(ks.nonlinear(), ks.layer_norm()).c_map(RELU, 0.5)
    with pytest.raises(UnsupportedError, match="layer_norm must follow a linear or conv"):
        ks.dks(ks.activation("tanh"), network=ks.chain(ks.nonlinear(), ks.layer_norm(),
                                                       ks.nonlinear()), zeta=1.5)
    with pytest.raises(UnsupportedError, match="Gaussian pre-activations"):
        ks.chain(ks.layer_norm(), ks.linear()).kernel(np.eye(3))


def test_scalar_ntk_closed_form_and_per_layer_parts():
    net = ks.chain(ks.linear(), ks.nonlinear(), ks.linear())
    for c in (-0.4, 0.0, 0.6, 1.0):
        nngp = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi)
        want = nngp + c * (math.pi - math.acos(c)) / (2 * math.pi)
        assert net.ntk(RELU, c) == pytest.approx(want, rel=1e-13, abs=1e-16)
    deep = ks.chain(*[ks.linear(sigma_w=1.4, sigma_b=0.1), ks.nonlinear("tanh")] * 3,
                    ks.linear())
    c = np.linspace(-1, 1, 7)
    parts = deep.layer_ntks(None, c, q=0.7)
    assert parts.shape == (4, 7)
    np.testing.assert_allclose(parts.sum(axis=0), deep.ntk(None, c, q=0.7), rtol=1e-14)


@pytest.mark.parametrize("phi", ["relu", "tanh", "gelu"])
def test_kernel_without_mixing_equals_the_scalar_path(phi):
    # inputs at equal second moment q: K_ab = q c_ab; every nonlinear entry takes the one-q
    # route, so the (n, n) kernel must be the scalar path's numbers
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 7))
    q = 1.7
    x *= np.sqrt(q * 7 / np.sum(x * x, axis=1, keepdims=True))
    c = (x @ x.T / 7) / q
    np.fill_diagonal(c, 1.0)
    net = ks.chain(ks.linear(sigma_w=1.2, sigma_b=0.3), ks.nonlinear(), ks.linear(sigma_w=1.5),
                   ks.layer_norm(), ks.nonlinear(), ks.linear())
    k = net.kernel(x, ntk=True, phi=phi)
    q_out = net.q_map(phi, q)
    np.testing.assert_allclose(k.nngp, q_out * net.c_map(phi, c, q=q), rtol=1e-14)
    np.testing.assert_allclose(k.ntk, net.ntk(phi, c, q=q), rtol=1e-14)


def test_bound_activations_and_several_of_them():
    net = ks.chain(ks.nonlinear("relu"), ks.nonlinear(ks.activation("tanh")))
    want = ks.activation("tanh").c_map(relu_c(0.2), q=0.5)
    assert net.c_map(None, 0.2) == pytest.approx(want, rel=1e-14)
    assert net.c_map("sin", 0.2) == net.c_map(None, 0.2)   # bound layers keep their own
    with pytest.raises(NetworkError, match="without an activation"):
        ks.mlp(2).c_map(None, 0.2)
    assert repr(ks.nonlinear("relu")) == "nonlinear(phi='relu')"


def test_subnet_max_treats_averages_as_identity_and_refuses_scaling_layers():
    body = [ks.conv(3), ks.nonlinear(), ks.avg_pool(2), ks.conv(3, init="delta"), ks.layer_norm(),
            ks.nonlinear(), ks.global_avg_pool(), ks.flatten(), ks.linear()]
    assert ks.chain(*body).max_slope(1.5) == 1.5 ** 2
    with pytest.raises(UnsupportedError, match="sigma_w = 1, sigma_b = 0"):
        ks.chain(ks.linear(sigma_w=2.0), ks.nonlinear()).max_slope(1.5)
    t = ks.dks(ks.activation("tanh"), network=ks.chain(*body), zeta=1.5)
    assert t.max_residual < 1e-12
    t = ks.tat(ks.activation("softplus"), network=ks.chain(*body), tau=0.3)
    assert t.max_residual < 1e-12
    eta = ks.tat(ks.activation("leaky_relu"), network=ks.chain(*body * 15), eta=0.9)
    assert ks.chain(*body * 15).c_map(eta.activation, 0.0) == pytest.approx(0.9, abs=1e-12)


def test_heads_maximize_over_every_output():
    trunk = ks.chain(ks.nonlinear(), ks.linear())
    net = ks.heads(trunk, [ks.nonlinear(), ks.chain(ks.nonlinear(), ks.nonlinear())])
    assert net.max_slope(2.0) == 8.0
    assert net.n_nonlinear == 3
    c_maps = net.c_map(RELU, 0.0)
    assert c_maps == (ks.mlp(2).c_map(RELU, 0.0), ks.mlp(3).c_map(RELU, 0.0))
    t = ks.dks(ks.activation("tanh"), network=net, zeta=1.5)
    assert t.max_residual < 1e-12 and t.params["input_scale"] > 0
    xi = ks.activation("tanh").affine(*t.params.values()).c_map(1.0, order=1)
    assert xi == pytest.approx(1.5 ** (1 / 3), rel=1e-12)   # the longest head sets xi
    with pytest.raises(NetworkError, match="several heads"):
        ks.chain(net, ks.nonlinear())


def test_shared_weights_keep_maps_and_refuse_the_ntk():
    block = ks.chain(ks.linear(), ks.nonlinear())
    tied, untied = ks.shared(block, 4), ks.chain(*[block] * 4)
    assert tied.c_map(RELU, 0.1) == untied.c_map(RELU, 0.1)
    assert tied.max_slope(1.1) == untied.max_slope(1.1)
    assert "shared(" in repr(tied)
    with pytest.raises(UnsupportedError, match="shared weights"):
        tied.ntk(RELU, 0.1)
    with pytest.raises(UnsupportedError, match="shared weights"):
        ks.chain(tied, ks.linear()).kernel(np.eye(2), ntk=True, phi=RELU)
    np.testing.assert_array_equal(ks.chain(tied, ks.linear()).kernel(np.eye(2), phi=RELU).nngp,
                                  ks.chain(untied, ks.linear()).kernel(np.eye(2), phi=RELU).nngp)
    with pytest.raises(NetworkError, match="times"):
        ks.shared(block, 0)


def test_parallel_fraction_errors_speak_of_fractions():
    # issue 13, point 5: the user gave channel fractions, not weights
    with pytest.raises(NetworkError) as err:
        ks.parallel([ks.nonlinear(), ks.linear()], [0.5, 0.6])
    assert "fractions" in str(err.value) and "[0.5, 0.6]" in str(err.value)
    assert "squared weights" not in str(err.value)
    with pytest.raises(NetworkError, match="one fraction per branch"):
        ks.parallel([ks.nonlinear(), ks.linear()], [1.0])


@pytest.mark.parametrize("bad, match", [
    (lambda: ks.conv(0), "kernel_size"),
    (lambda: ks.conv(2, init="delta"), "odd kernel sizes"),
    (lambda: ks.conv(3, padding="full"), "padding must be one of 'same', 'valid'"),
    (lambda: ks.conv(3, init="he"), "init must be one of"),
    (lambda: ks.linear(sigma_w=-1.0), "sigma_w must be a finite number >= 0"),
    (lambda: ks.linear(sigma_b=math.nan), "sigma_b"),
    (lambda: ks.avg_pool(2, stride=0), "stride"),
    (lambda: ks.nonlinear(3.0), "phi must be an activation"),
])
def test_bad_layers(bad, match):
    with pytest.raises(NetworkError, match=match):
        bad()


def test_bad_kernel_inputs():
    net = ks.chain(ks.conv(3), ks.nonlinear(), ks.flatten(), ks.linear())
    x = np.ones((2, 4, 4, 3))
    with pytest.raises(DomainError, match="shape"):
        net.kernel(np.ones(3), phi=RELU)
    with pytest.raises(DomainError, match="finite"):
        net.kernel(np.full((2, 4, 4, 3), np.nan), phi=RELU)
    with pytest.raises(NetworkError, match="needs inputs with positions"):
        net.kernel(np.ones((2, 5)), phi=RELU)
    with pytest.raises(NetworkError, match="still has positions"):
        ks.chain(ks.conv(3), ks.nonlinear()).kernel(x, phi=RELU)
    with pytest.raises(DomainError, match="larger than the input"):
        ks.chain(ks.conv(5, padding="valid"), ks.flatten()).kernel(x)
    with pytest.raises(DomainError, match="second moment"):
        ks.chain(ks.nonlinear(), ks.flatten()).kernel(np.zeros((2, 3)), phi="tanh")
    with pytest.raises(DomainError, match="order"):
        ks.mlp(2).c_map(RELU, 0.3, order=3)
    with pytest.raises(UnsupportedError, match="order 0"):
        ks.mlp(2).c_map(RELU, 0.3, q=1.0, q2=2.0, order=1)
    with pytest.raises(DomainError, match="c must be a correlation"):
        ks.mlp(2).c_map(RELU, 1.5)
    assert all(issubclass(e, KernelShapeError) for e in (DomainError, NetworkError))


def test_layers_are_data():
    from kernelshape.networks import LAYERS
    from kernelshape.networks._kernels import KERNEL_RULES
    assert set(LAYERS) == set(KERNEL_RULES)
    assert ks.conv(3) == ks.conv(3) and ks.conv(3) != ks.conv(3, init="delta")
    assert ks.linear() is ks.linear() and ks.linear(sigma_w=2.0) != ks.linear()
    assert ks.conv(3).mixes_positions and not ks.conv(3, init="delta").mixes_positions
