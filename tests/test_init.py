"""SUO / Delta initialization (NumPy reference): orthogonality, Delta structure, q kept.

The convention checked is the ``dks`` package's (dks 0.1.2,
``dks/jax/parameter_sampling_functions.py``, read for facts): Haar-orthogonal weights times
``max(sqrt(out_dim / in_dim), 1)``; for Delta convolutions ``in_dim`` is the channel count,
otherwise the whole fan-in ``prod(kernel) * in``.
"""

import math

import numpy as np
import pytest

from kernelshape.errors import DomainError, KernelShapeError
from kernelshape.init import LAYOUTS, delta_orthogonal, suo

FANS = [(16, 48), (32, 32), (48, 16)]
FAN_IDS = ["in<out", "in=out", "in>out"]


def _io(w, layout):
    """A weight in the "oi" layout moved to "io"."""
    return w if layout == "io" else np.moveaxis(w, (0, 1), (-1, -2))


def _assert_scaled_orthogonal(m, scale=1.0):
    """Orthonormal rows times sqrt(out / in) when in <= out, else orthonormal columns
    (THEORY §6); exact to float64 rounding of a QR factorization (1e-13)."""
    n_in, n_out = m.shape
    if n_in <= n_out:
        np.testing.assert_allclose(m @ m.T, scale**2 * n_out / n_in * np.eye(n_in), atol=1e-13)
    else:
        np.testing.assert_allclose(m.T @ m, scale**2 * np.eye(n_out), atol=1e-13)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fans", FANS, ids=FAN_IDS)
def test_dense_weights_are_scaled_orthogonal(fans, layout):
    shape = fans if layout == "io" else fans[::-1]
    w = suo(shape, rng=0, layout=layout)
    assert w.shape == shape and w.dtype == np.float64
    _assert_scaled_orthogonal(_io(w, layout))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fans", FANS, ids=FAN_IDS)
def test_delta_conv_has_an_orthogonal_centre_and_zeros_elsewhere(fans, layout):
    n_in, n_out = fans
    shape = (3, 3, n_in, n_out) if layout == "io" else (n_out, n_in, 3, 3)
    w = _io(suo(shape, rng=1, layout=layout), layout)
    _assert_scaled_orthogonal(w[1, 1])
    off_centre = np.ones((3, 3), bool)
    off_centre[1, 1] = False
    assert np.all(w[off_centre] == 0.0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fans", FANS, ids=FAN_IDS)
def test_conv_without_delta_is_orthogonal_over_the_whole_fan_in(fans, layout):
    n_in, n_out = fans
    shape = (3, 3, n_in, n_out) if layout == "io" else (n_out, n_in, 3, 3)
    w = _io(suo(shape, rng=2, delta=False, layout=layout), layout)
    # fan-in 9 * n_in > n_out in every case: orthonormal columns of the flattened matrix.
    _assert_scaled_orthogonal(w.reshape(9 * n_in, n_out))
    assert np.count_nonzero(w[0, 0]) > 0


def test_scale_multiplies_and_layouts_agree():
    a = suo((8, 24), rng=3, scale=0.5)
    _assert_scaled_orthogonal(a, scale=0.5)
    # Same draws, transposed layout: "oi" is the transpose of "io".
    np.testing.assert_array_equal(suo((24, 8), rng=3, layout="oi", scale=0.5), a.T)
    np.testing.assert_array_equal(
        delta_orthogonal((24, 8, 3, 3), rng=4, layout="oi")[:, :, 1, 1],
        delta_orthogonal((3, 3, 8, 24), rng=4)[1, 1].T)


def test_haar_signs_are_corrected():
    # Without the diag(R) sign correction, QR of a Gaussian has a positive-diagonal R and
    # the first column's first entry is biased; with it, both signs are equally likely.
    firsts = np.array([suo((4, 4), rng=seed)[0, 0] for seed in range(400)])
    positive = np.mean(firsts > 0)
    assert abs(positive - 0.5) < 5 * math.sqrt(0.25 / 400)   # 5 binomial standard errors


@pytest.mark.parametrize("fans", FANS, ids=FAN_IDS)
def test_wide_dense_layer_preserves_q(fans):
    n_in, n_out = fans
    x = np.random.default_rng(5).standard_normal((256, n_in))   # q = 1 in expectation
    y = x @ suo(fans, rng=6)
    q_in, q_out = np.mean(x**2, axis=1), np.mean(y**2, axis=1)
    if n_in <= n_out:
        np.testing.assert_allclose(q_out, q_in, rtol=1e-13)     # exact for every input
    else:
        # y entries are iid N(0, 1) (orthonormal columns): mean q has std sqrt(2 / N).
        assert abs(q_out.mean() - 1.0) < 5 * math.sqrt(2 / y.size)


def _conv_same(x, w):
    """Stride-1 'same' convolution, NHWC input and HWIO weights, by explicit taps."""
    kh, kw = w.shape[:2]
    pad = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    h, wd = x.shape[1:3]
    return sum(pad[:, i:i + h, j:j + wd, :] @ w[i, j] for i in range(kh) for j in range(kw))


@pytest.mark.parametrize("delta", [True, False], ids=["delta", "full"])
@pytest.mark.parametrize("fans", FANS, ids=FAN_IDS)
def test_wide_conv_layer_preserves_q(fans, delta):
    n_in, n_out = fans
    x = np.random.default_rng(7).standard_normal((4, 10, 10, n_in))
    y = _conv_same(x, suo((3, 3, n_in, n_out), rng=8, delta=delta))
    if delta and n_in <= n_out:
        np.testing.assert_allclose(np.mean(y**2, -1), np.mean(x**2, -1), rtol=1e-13)
    else:
        # interior locations: iid N(0, 1) entries; borders see zero padding (less q), so
        # compare the interior mean with 1 within 5 standard errors.
        inner = y[:, 1:-1, 1:-1, :]
        assert abs(np.mean(inner**2) - 1.0) < 5 * math.sqrt(2 / inner.size)


def test_dtype_and_generator_input():
    w = suo((3, 3, 4, 4), rng=np.random.default_rng(0), dtype=np.float32)
    assert w.dtype == np.float32
    np.testing.assert_array_equal(suo((5, 6), rng=11), suo((5, 6), rng=np.random.default_rng(11)))


@pytest.mark.parametrize(("call", "match"), [
    (lambda: suo((4,), rng=0), ">= 2"),
    (lambda: suo((4, 0), rng=0), "positive"),
    (lambda: suo("ab", rng=0), "shape"),
    (lambda: suo((2, 2, 4, 4), rng=0), "odd kernel"),
    (lambda: delta_orthogonal((4, 4), rng=0), "odd kernel"),
    (lambda: suo((4, 4), rng=0, layout="oihw"), r"\['io', 'oi'\]"),
    (lambda: suo((4, 4), rng=0.5), "Generator"),
    (lambda: suo((4, 4), rng=0, scale=-1.0), "scale"),
])
def test_bad_input(call, match):
    with pytest.raises(DomainError, match=match) as info:
        call()
    assert isinstance(info.value, (KernelShapeError, ValueError))
