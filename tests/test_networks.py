"""Network descriptions: the dks ResNet function exactly, vocabulary, global maps, errors."""

import math

import pytest

from kernelshape import activation, networks
from kernelshape.errors import DomainError, NetworkError, UnsupportedError
from kernelshape.networks import (
    DESCRIBE_LINES,
    REPR_CHARS,
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


@pytest.mark.parametrize("version", ["v2", "v1"])
@pytest.mark.parametrize("depth", [50, 200])
def test_memoized_walk_gives_the_same_bits(depth, version, monkeypatch):
    # large or heavily shared descriptions are walked (kernelshape.networks._walk) instead of run as
    # flat programs: same operations in the same order, so the dks example's bits again
    monkeypatch.setattr(networks._walk, "PROGRAM_STEPS", 0)
    for x, fn in R_FUNCTIONS.values():
        net = resnet(depth, 0.6, version=version)
        assert net.subnet_max(x, fn) == dks_example_subnet_max(x, fn, depth, 0.6, version == "v2")


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
    with pytest.raises(DomainError, match=r"\(1\.0, 2\.0\).*q2="):
        net.c_map(relu, c, q=(1.0, 2.0))


def test_describe_and_repr():
    net = resnet(101, 0.6)
    assert repr(net) == "resnet(depth=101, shortcut_weight=0.6)"
    text = net.describe()
    assert "100 nonlinear layers" in text and "22 x residual" in text
    assert repr(resnet(18, 0.5, version="v1")).endswith("version='v1')")
    assert repr(mlp(3)) == "mlp(depth=3)"


# -- descriptions nested to any depth (issue 7: depth 10,000) ----------------------------------
N_DEEP = 10_000


def _slope(xi):
    return lambda y: xi * y


def test_deeply_nested_chains():
    # chain(chain(...chain(nonlinear, linear)..., linear), linear): one nonlinear layer
    net = nonlinear()
    for _ in range(N_DEEP):
        net = chain(net, linear())
    assert net.max_slope(1.0001) == 1.0001
    assert net.max_curvature(0.25) == 0.25
    assert net.n_nonlinear == 1
    tanh = activation("tanh")
    assert net.q_map(tanh, 0.7) == tanh.q_map(0.7)
    assert net.c_map(tanh, 0.3, q=0.7) == tanh.c_map(0.3, q=0.7)
    text = repr(net)
    assert text.startswith("chain(nonlinear, linear, linear,") and len(text) < REPR_CHARS + 80
    assert "1 nonlinear layers" in text
    lines = net.describe().splitlines()
    assert lines[1] == "  nonlinear" and len(lines) <= DESCRIBE_LINES + 2


def test_deeply_nested_residual_blocks():
    # S_0 = nonlinear, S_k = residual(chain(S_(k-1), nonlinear), w); each branch
    # chain(S_(k-1), nonlinear) is a subnetwork. Reference: the recursion written out,
    # v_k = w^2 x + (1 - w^2) r(v_(k-1)), M = max(v_n, max_k r(v_(k-1))).
    w = 0.3
    net = nonlinear()
    for _ in range(N_DEEP):
        net = residual(chain(net, nonlinear()), w)
    for x, r in [(1.0, _slope(1.0001)), (0.0, lambda t: 0.001 + t)]:
        v = r(x)
        best = -math.inf
        for _ in range(N_DEEP):
            branch = r(v)
            best = max(best, branch)
            v = w**2 * x + (1.0 - w**2) * branch
        assert net.subnet_max(x, r) == max(v, best)
    assert net.n_nonlinear == N_DEEP + 1
    assert len(net._subnetworks) == N_DEEP
    assert len(repr(net)) < REPR_CHARS + 80
    assert len(net.describe().splitlines()) <= DESCRIBE_LINES + 2


def test_deeply_nested_shared_parallel_branches():
    # P_k = parallel([P_(k-1), chain(P_(k-1), nonlinear)]): the same object twice per level,
    # 2^10000 paths unfolded; the walk evaluates each node once per input.
    # Reference: p_k = 0.5 p_(k-1) + 0.5 r(p_(k-1)); subnetworks P_j and chain(P_j, nonlinear).
    net = nonlinear()
    for _ in range(N_DEEP):
        net = parallel([net, chain(net, nonlinear())])
    r = _slope(1.00001)
    p, best = r(1.0), -math.inf
    for _ in range(N_DEEP):
        best = max(best, p, r(p))
        p = 0.5 * p + 0.5 * r(p)
    assert net.max_slope(1.00001) == max(p, best)
    assert net.n_nonlinear == N_DEEP + 1
    assert len(net._subnetworks) == 2 * N_DEEP


def test_deeply_nested_sums_maps():
    # q and c through 300 nested residual blocks of identity branches (linear layers only):
    # every sum keeps q and c, so the output is the input, exactly.
    net = linear()
    for _ in range(300):
        net = residual(chain(net, linear()), 0.8)
    relu = activation("relu")
    assert net.q_map(relu, 2.0) == pytest.approx(2.0, rel=1e-15)
    assert net.c_map(relu, 0.25, q=2.0) == pytest.approx(0.25, rel=1e-14)


# -- two inputs at different second moments (THEORY.md §1-2) -----------------------------------
def _erf_q(q):
    # E[erf(sqrt(q) z)^2] = (2/pi) arcsin(2q / (1 + 2q))   (THEORY.md §1)
    return 2 / math.pi * math.asin(2 * q / (1 + 2 * q))


def _erf_cov(q1, q2, c):
    # E[erf(sqrt(q1) u) erf(sqrt(q2) v)] = (2/pi) arcsin(2 sqrt(q1 q2) c / sqrt((1+2q1)(1+2q2)))
    return 2 / math.pi * math.asin(2 * math.sqrt(q1 * q2) * c / math.sqrt(
        (1 + 2 * q1) * (1 + 2 * q2)))


def _erf_layer(q1, q2, c):
    return _erf_q(q1), _erf_q(q2), _erf_cov(q1, q2, c) / math.sqrt(_erf_q(q1) * _erf_q(q2))


def test_two_q_chain_composes_layer_maps():
    erf = activation("erf")
    q1, q2, c = 0.5, 3.0, 0.4
    for _ in range(3):
        q1, q2, c = _erf_layer(q1, q2, c)
    assert mlp(3).c_map(erf, 0.4, q=0.5, q2=3.0) == pytest.approx(c, rel=1e-13)


def test_two_q_residual_combines_covariances():
    # sum rule: q_j = w^2 q_j + (1-w^2) q_j(branch), Sigma12 = w^2 c sqrt(q1 q2) + (1-w^2)
    # Sigma12(branch), c_out = Sigma12 / sqrt(q1 q2)
    erf = activation("erf")
    w2 = 0.36
    q1, q2, c = 0.5, 3.0, -0.7
    b1, b2, bc = _erf_layer(q1, q2, c)
    o1, o2 = w2 * q1 + (1 - w2) * b1, w2 * q2 + (1 - w2) * b2
    cov = w2 * c * math.sqrt(q1 * q2) + (1 - w2) * bc * math.sqrt(b1 * b2)
    net = residual(chain(nonlinear(), linear()), 0.6)
    assert net.c_map(erf, c, q=q1, q2=q2) == pytest.approx(cov / math.sqrt(o1 * o2), rel=1e-13)


def test_two_q_equal_q_is_the_one_q_map_bit_for_bit():
    tanh = activation("tanh")
    net = resnet(18, 0.6)
    assert net.c_map(tanh, 0.3, q=1.5, q2=1.5) == net.c_map(tanh, 0.3, q=1.5)


def test_two_q_relu_network_needs_no_common_q():
    # ReLU is positively homogeneous: its layer C map is the same for any (q1, q2), every q of
    # the second input stays 7 / 0.3 times the first's, so sums weight the branches alike and
    # the network's C map is the one-q map (each layer on the 2-D quadrature route)
    relu = activation("relu")
    net = resnet(18, 0.6)
    assert net.c_map(relu, 0.2, q=0.3, q2=7.0) == pytest.approx(net.c_map(relu, 0.2),
                                                                  rel=1e-13)
