"""Network descriptions: the dks ResNet function exactly, vocabulary, global maps, errors."""

import math

import pytest

from kernelshape import activation
from kernelshape.errors import NetworkError, UnsupportedError
from kernelshape.networks import (
    RESNET_CONFIGS,
    as_network,
    chain,
    linear,
    mlp,
    nonlinear,
    normalized_sum,
    parallel,
    residual,
    resnet,
)


def dks_example_subnet_max(x, r_fn, depth, shortcut_weight, resnet_v2=True):
    """Transcription of ``subnet_max_func`` in dks 0.1.2 ``examples/haiku/modified_resnet.py``
    (its CONFIGS: blocks per group, bottleneck, projection), the reference for exactness."""
    blocks, bottleneck, projection = {
        18: ((2, 2, 2, 2), False, (False, True, True, True)),
        34: ((3, 4, 6, 3), False, (False, True, True, True)),
        50: ((3, 4, 6, 3), True, (True,) * 4), 101: ((3, 4, 23, 3), True, (True,) * 4),
        152: ((3, 8, 36, 3), True, (True,) * 4), 200: ((3, 24, 36, 3), True, (True,) * 4),
    }[depth]
    if bottleneck and resnet_v2:
        def res_fn(z):
            return r_fn(r_fn(r_fn(z)))
    elif bottleneck or resnet_v2:
        def res_fn(z):
            return r_fn(r_fn(z))
    else:
        res_fn = r_fn
    branch_value = res_fn(x)
    for i in range(4):
        for j in range(blocks[i]):
            res_x = res_fn(x)
            shortcut_x = r_fn(x) if (j == 0 and projection[i] and resnet_v2) else x
            x = shortcut_weight**2 * shortcut_x + (1.0 - shortcut_weight**2) * res_x
            if not resnet_v2:
                x = r_fn(x)
    x = r_fn(x)
    return max(x, branch_value)


def _lrelu_c(a):
    k = (1 - a) ** 2 / (math.pi * (1 + a * a))
    return lambda c: c + k * (math.sqrt(max(0.0, 1 - c * c)) - c * math.acos(min(1.0, c)))


R_FUNCTIONS = {
    "slope1.003": (1.0, lambda y: 1.003 * y), "slope1.5": (1.0, lambda y: 1.5 * y),
    "curv0.01": (0.0, lambda t: 0.01 + t), "curv0.3": (0.0, lambda t: 0.3 + t),
    "lrelu0.3": (0.0, _lrelu_c(0.3)), "lrelu0.9": (0.0, _lrelu_c(0.9)),
    "lrelu0.05@0.2": (0.2, _lrelu_c(0.05)),
}


@pytest.mark.parametrize("r", list(R_FUNCTIONS))
@pytest.mark.parametrize("version", ["v2", "v1"])
@pytest.mark.parametrize("w", [0.0, 0.3, 0.6, 0.9, 1.0])
@pytest.mark.parametrize("depth", sorted(RESNET_CONFIGS))
def test_resnet_matches_dks_example_exactly(depth, w, version, r):
    # claim: bit-for-bit the dks example's hand-written subnet_max_func
    x, fn = R_FUNCTIONS[r]
    net = resnet(depth, w, version=version)
    assert net.subnet_max(x, fn) == dks_example_subnet_max(x, fn, depth, w, version == "v2")


@pytest.mark.parametrize("depth", [1, 7, 100])
def test_mlp_functions(depth):
    net = mlp(depth)
    assert net.max_slope(1.1) == pytest.approx(1.1**depth, rel=1e-14)
    assert net.max_curvature(0.02) == pytest.approx(0.02 * depth, rel=1e-14)
    assert net.n_nonlinear == depth


def test_subnetworks_include_branches():
    # a weak residual branch holding more layers than the shortcut path dominates M
    deep = chain(*[nonlinear()] * 5)
    net = chain(residual(deep, 0.99), nonlinear())
    whole = net._value(0.0, lambda t: 1.0 + t)
    assert whole == pytest.approx((1 - 0.99**2) * 5 + 1, rel=1e-14)
    assert net.max_curvature(1.0) == 5.0   # the branch alone is the largest subnetwork


def test_parallel_is_channel_average():
    net = parallel([nonlinear(), chain(nonlinear(), nonlinear())], [0.25, 0.75])
    assert net.max_slope(2.0) == 4.0                     # branch alone: 2^2
    assert net._value(1.0, lambda y: 2.0 * y) == 0.25 * 2 + 0.75 * 4


def test_weights_must_square_sum_to_one():
    with pytest.raises(NetworkError, match=r"sum to 1, got 0\.5.*normalize=True"):
        normalized_sum([linear(), nonlinear()], [0.5, 0.5])
    net = normalized_sum([linear(), nonlinear()], [1.0, 1.0], normalize=True)
    assert net.squares == (0.5, 0.5)
    with pytest.raises(NetworkError, match="one weight per branch"):
        normalized_sum([linear(), nonlinear()], [1.0])
    with pytest.raises(NetworkError, match="finite"):
        normalized_sum([linear()], [math.nan])


@pytest.mark.parametrize("bad", [
    lambda: resnet(42, 0.5), lambda: resnet(50, 1.5), lambda: resnet(50, -0.1),
    lambda: resnet(50, 0.5, version="v3"), lambda: mlp(0), lambda: mlp(2.5),
    lambda: chain(nonlinear(), "relu"), lambda: as_network(3)])
def test_bad_networks(bad):
    with pytest.raises(NetworkError):
        bad()


def test_callable_network():
    net = as_network(lambda x, r_fn: r_fn(r_fn(x)))
    assert net.max_slope(3.0) == 9.0
    assert "subnet_max_func" in repr(net)
    with pytest.raises(UnsupportedError, match="network description"):
        net.q_map(activation("relu"), 1.0)


def test_global_maps_relu_chain():
    # closed form: ReLU C(c) = (sqrt(1-c^2) + (pi - arccos c) c) / pi, Q(q) = q/2
    relu = activation("relu")
    c = 0.0
    for _ in range(5):
        c = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
    assert mlp(5).c_map(relu, 0.0) == pytest.approx(c, rel=1e-13)
    assert mlp(3).q_map(relu, 2.0) == pytest.approx(0.25, rel=1e-14)


def test_global_maps_residual_sum_rule():
    # THEORY.md §2: q_out = sum w^2 q_i, c_out = sum w^2 q_i c_i / q_out (unequal branch q)
    relu = activation("relu")
    net = residual(chain(nonlinear(), linear()), 0.6)
    q, c = 3.0, 0.25
    q_branch = q / 2
    c_branch = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
    q_out = 0.36 * q + 0.64 * q_branch
    assert net.q_map(relu, q) == pytest.approx(q_out, rel=1e-14)
    assert net.c_map(relu, c, q=q) == pytest.approx(
        (0.36 * q * c + 0.64 * q_branch * c_branch) / q_out, rel=1e-13)
    with pytest.raises(UnsupportedError, match="two-q"):
        net.c_map(relu, c, q=(1.0, 2.0))


def test_describe_and_repr():
    net = resnet(101, 0.6)
    assert repr(net) == "resnet(depth=101, shortcut_weight=0.6)"
    text = net.describe()
    assert "100 nonlinear layers" in text and "22 x residual" in text
    assert repr(resnet(18, 0.5, version="v1")).endswith("version='v1')")
    assert repr(mlp(3)) == "mlp(depth=3)"
