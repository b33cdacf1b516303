"""Kernels on inputs against finite-width networks sampled in NumPy (Monte Carlo).

Each network is sampled ``SEEDS`` times at width ``WIDTH`` (channels of every hidden layer
and of the readout) in neural-tangents' parameterization: ``h' = sigma_w / sqrt(fan_in) W h
+ sigma_b b`` with ``W, b`` standard normal, zero padding counted in the fan-in; Delta
init: the centre tap an orthogonal frame scaled to keep q (SUO). The empirical NNGP of one
network is ``F F^T / WIDTH`` of its readout ``F``; over seeds its mean must match
:meth:`Network.kernel` within a few standard errors (finite-width bias is O(depth / WIDTH),
well below the standard error here). Seeds: numpy ``default_rng(seed)``, seed = 0..SEEDS-1.
"""

import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import kernelshape as ks

WIDTH = 512
SEEDS = 8
#: |mean - predicted| / stderr allowed for every entry (t with 7 dof: P(|t| > 5) ~ 2e-3).
Z_MAX = 5.0


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # small matrix products: threads only contend (40x slower on a loaded 2-core machine)
    with threadpool_limits(1):
        yield


def _conv(rng, h, size, sw, sb, padding="same", stride=1, init="gaussian", out=WIDTH):
    n, height, width, c_in = h.shape
    if padding == "same":
        outs = [-(-s // stride) for s in (height, width)]
        pads = [max((o - 1) * stride + size - s, 0) for o, s in zip(outs, (height, width))]
        h = np.pad(h, ((0, 0), (pads[0] // 2, pads[0] - pads[0] // 2),
                       (pads[1] // 2, pads[1] - pads[1] // 2), (0, 0)))
    else:
        outs = [(s - size) // stride + 1 for s in (height, width)]
    if init == "delta":
        mid = (size - 1) // 2
        centre = h[:, mid:mid + stride * (outs[0] - 1) + 1:stride,
                   mid:mid + stride * (outs[1] - 1) + 1:stride, :]
        g = rng.standard_normal((out, c_in))
        frame, r = np.linalg.qr(g)                     # out x c_in, orthonormal columns
        frame = frame * np.sign(np.diag(r)) * max(math.sqrt(out / c_in), 1.0)
        y = sw * centre @ frame.T
    else:
        patches = np.stack([h[:, i:i + stride * (outs[0] - 1) + 1:stride,
                              j:j + stride * (outs[1] - 1) + 1:stride, :]
                            for i in range(size) for j in range(size)], axis=3)
        patches = patches.reshape(n, outs[0], outs[1], -1)
        w = rng.standard_normal((patches.shape[-1], out))
        y = sw / math.sqrt(patches.shape[-1]) * patches @ w
    return y + sb * rng.standard_normal(out)


def _dense(rng, h, sw, sb, out=WIDTH):
    w = rng.standard_normal((h.shape[-1], out))
    return sw / math.sqrt(h.shape[-1]) * h @ w + sb * rng.standard_normal(out)


def _layer_norm(h):
    h = h - h.mean(axis=-1, keepdims=True)
    return h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True))


def _avg_pool(h, window):
    n, height, width, c = h.shape
    oh, ow = height // window, width // window
    h = h[:, :oh * window, :ow * window].reshape(n, oh, window, ow, window, c)
    return h.mean(axis=(2, 4))


def _relu(h):
    return np.maximum(h, 0.0)


def _check(sample, net, x, phi=None):
    """Empirical NNGP over seeds against ``net.kernel(x)``: z-scores of every entry."""
    kernels = []
    for seed in range(SEEDS):
        f = sample(np.random.default_rng(seed), x)
        kernels.append(f @ f.T / f.shape[-1])
    kernels = np.array(kernels)
    mean = kernels.mean(axis=0)
    stderr = kernels.std(axis=0, ddof=1) / math.sqrt(SEEDS)
    predicted = net.kernel(x, phi=phi).nngp
    z = (mean - predicted) / stderr
    assert np.max(np.abs(z)) <= Z_MAX, (z, mean, predicted)
    return z


X_IMAGES = np.random.default_rng(100).standard_normal((3, 6, 6, 3))


def test_gaussian_conv_same_and_strided_valid():
    def sample(rng, x):
        h = _relu(_conv(rng, x, 3, 1.4, 0.1))
        h = _relu(_conv(rng, h, 3, 1.3, 0.0, padding="valid", stride=2))
        return _dense(rng, h.reshape(h.shape[0], -1), 1.0, 0.0)
    net = ks.chain(ks.conv(3, sigma_w=1.4, sigma_b=0.1), ks.nonlinear(),
                   ks.conv(3, sigma_w=1.3, padding="valid", stride=2), ks.nonlinear(),
                   ks.flatten(), ks.linear())
    _check(sample, net, X_IMAGES, phi="relu")


def test_delta_conv_and_pooling():
    def sample(rng, x):
        h = _relu(_conv(rng, x, 3, 1.0, 0.0, init="delta"))
        h = _relu(_conv(rng, h, 3, 1.2, 0.1, init="delta"))
        h = _avg_pool(h, 2).mean(axis=(1, 2))
        return _dense(rng, h, 1.0, 0.0)
    net = ks.chain(ks.conv(3, init="delta"), ks.nonlinear(),
                   ks.conv(3, sigma_w=1.2, sigma_b=0.1, init="delta"), ks.nonlinear(),
                   ks.avg_pool(2), ks.global_avg_pool(), ks.linear())
    _check(sample, net, X_IMAGES, phi="relu")


def test_layer_norm_between_conv_and_tanh():
    def sample(rng, x):
        h = np.tanh(_layer_norm(_conv(rng, x, 3, 1.5, 0.3)))
        h = np.tanh(_layer_norm(_conv(rng, h, 3, 1.0, 0.0)))
        return _dense(rng, h.mean(axis=(1, 2)), 1.0, 0.0)
    net = ks.chain(ks.conv(3, sigma_w=1.5, sigma_b=0.3), ks.layer_norm(), ks.nonlinear(),
                   ks.conv(3), ks.layer_norm(), ks.nonlinear(), ks.global_avg_pool(),
                   ks.linear())
    _check(sample, net, X_IMAGES, phi="tanh")


def test_shared_weights_unrolled_cell():
    x = np.random.default_rng(101).standard_normal((4, 8))

    def sample(rng, x):
        h = _dense(rng, x, 1.0, 0.0)
        w = rng.standard_normal((WIDTH, WIDTH)) / math.sqrt(WIDTH)   # one W for every step
        for _ in range(3):
            h = 1.6 * np.tanh(h) @ w
        return _dense(rng, np.tanh(h), 1.0, 0.0)
    cell = ks.chain(ks.nonlinear(), ks.linear(sigma_w=1.6))
    net = ks.chain(ks.linear(), ks.shared(cell, 3), ks.nonlinear(), ks.linear())
    _check(sample, net, x, phi="tanh")


def test_the_check_can_fail():
    # the same simulation as the first test against the Delta rule: far outside the errors
    def sample(rng, x):
        return _dense(rng, _relu(_conv(rng, x, 3, 1.4, 0.1)).reshape(3, -1), 1.0, 0.0)
    wrong = ks.chain(ks.conv(3, sigma_w=1.4, sigma_b=0.1, init="delta"), ks.nonlinear(),
                     ks.flatten(), ks.linear())
    with pytest.raises(AssertionError):
        _check(sample, wrong, X_IMAGES, phi="relu")
