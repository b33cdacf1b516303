"""Per-location normalization (NumPy reference): q = 1 everywhere, homogeneous modes."""

import numpy as np
import pytest

from kernelshape.errors import DomainError
from kernelshape.pln import HOMOGENEOUS_MODES, pln

RNG = np.random.default_rng(0)
# Locations with very different norms (a factor 100 across the feature scales).
X = RNG.standard_normal((3, 4, 5, 6)) * np.geomspace(0.1, 10.0, 6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", HOMOGENEOUS_MODES)
def test_every_location_has_q_one(mode, dtype):
    y = pln(X.astype(dtype), homogeneous=mode)
    assert y.dtype == dtype
    assert y.shape == X.shape[:-1] + (6 + (mode is not None),)
    rtol = 1e-14 if dtype == np.float64 else 1e-6    # a few rounding errors of the dtype
    np.testing.assert_allclose(np.mean(y.astype(np.float64)**2, axis=-1), 1.0, rtol=rtol)


def test_one_mode_appends_a_constant_before_normalizing():
    y = pln(X, homogeneous="one", homogeneous_scale=2.0)
    # y = [x, 2] / r with r = sqrt(mean([x, 2]^2)): undo with the appended coordinate.
    r = 2.0 / y[..., -1:]
    np.testing.assert_allclose(y[..., :-1] * r, X, rtol=1e-13)
    # The norm of each location survives: scaling the input changes the output.
    assert not np.allclose(pln(3 * X, homogeneous="one"), pln(X, homogeneous="one"))


def test_rms_mode_appends_the_examples_rms():
    y = pln(X, homogeneous="rms", homogeneous_scale=0.5)
    rms = np.sqrt(np.mean(X**2, axis=(1, 2, 3)))
    r = 0.5 * rms[:, None, None] / y[..., -1]                # each location's divisor
    np.testing.assert_allclose(y[..., :-1] * r[..., None], X, rtol=1e-13)
    # Relative norms within an example survive, a global rescale of the example does not.
    np.testing.assert_allclose(pln(7 * X, homogeneous="rms"), pln(X, homogeneous="rms"),
                               rtol=1e-14)
    assert not np.allclose(y[0, 0, 0, -1], y[0, 0, 1, -1])


def test_no_coordinate_is_scale_invariant_per_location():
    scales = RNG.uniform(0.1, 10, size=X.shape[:-1] + (1,))
    np.testing.assert_allclose(pln(X * scales), pln(X), rtol=1e-14)


def test_feature_axis_option_matches_moving_the_axis():
    channels_first = np.moveaxis(X, -1, 1)                    # (batch, features, h, w)
    y = pln(channels_first, homogeneous="rms", axis=1)
    np.testing.assert_allclose(np.moveaxis(y, 1, -1), pln(X, homogeneous="rms"), rtol=1e-14)


def test_eps_and_zero_locations():
    x = np.zeros((1, 2, 3))
    y = pln(x, homogeneous="one")                             # the coordinate keeps q > 0
    np.testing.assert_allclose(y[..., -1], 2.0)              # [0, 0, 0, 1] / sqrt(1 / 4)
    np.testing.assert_array_equal(pln(x, eps=1e-12), 0.0)
    with np.errstate(invalid="ignore"):
        assert np.all(np.isnan(pln(x)))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"homogeneous": "ones"}, r"\[None, 'one', 'rms'\]"),
    ({"axis": 0}, "batch axis"),
    ({"axis": 4}, "axis"),
    ({"homogeneous_scale": -1.0}, "homogeneous_scale"),
    ({"eps": float("nan")}, "eps"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(DomainError, match=match):
        pln(X, **kwargs)
    with pytest.raises(DomainError, match="batch"):
        pln(np.ones(3))
