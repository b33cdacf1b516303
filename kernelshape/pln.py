"""Per-location normalization (PLN), NumPy reference.

The kernel theory assumes every input location enters the network at ``q = 1``. PLN
divides each location's feature vector (the feature axis, by default the last) by its RMS
(THEORY.md §6; Martens et al. 2021, arXiv 2110.01765, "data pre-processing"):

.. math::
    v \\mapsto v / \\sqrt{\\mathrm{mean}(v^2) + \\epsilon}

Normalizing alone discards each location's norm. A *homogeneous coordinate* appended to
the features before normalizing keeps that information:

- ``homogeneous="one"``: append the constant ``homogeneous_scale``. The location's norm
  relative to that constant survives (as the angle to the new axis);
- ``homogeneous="rms"``: append ``homogeneous_scale`` times the example's RMS over all
  non-batch axes (axis 0 is the batch). Relative norms across the locations of one example
  survive, while a global rescaling of the example does not change the output.

The code generator (:mod:`kernelshape.codegen`) emits the same function for each framework.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import DomainError

__all__ = ["HOMOGENEOUS_MODES", "pln"]

#: Values of ``homogeneous``: no coordinate, a constant one, the example's RMS.
HOMOGENEOUS_MODES = (None, "one", "rms")


def _check_mode(homogeneous):
    if homogeneous not in HOMOGENEOUS_MODES:
        raise DomainError(
            f"unknown homogeneous mode {homogeneous!r}; expected one of "
            f"{list(HOMOGENEOUS_MODES)}")
    return homogeneous


def _check_array(x, axis):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim < 2:
        raise DomainError(f"expected an array (batch, ..., features), got shape {x.shape}")
    if not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise DomainError(f"axis must be an int in [-{x.ndim}, {x.ndim}), got {axis!r}")
    if axis % x.ndim == 0:
        raise DomainError("axis 0 is the batch axis; expected a feature axis, got 0")
    return x, int(axis)


def _check_nonnegative(name, value):
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise DomainError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def pln(x, *, homogeneous: str | None = None, homogeneous_scale: float = 1.0,
        axis: int = -1, eps: float = 0.0) -> np.ndarray:
    """Per-location normalization, optionally with a homogeneous coordinate.

    .. math::
        v = [x, h], \\quad h = s \\ (\\text{one}) \\ \\text{or} \\
        s \\sqrt{\\mathrm{mean}_{\\text{non-batch}}(x^2)} \\ (\\text{rms}); \\quad
        \\mathrm{pln}(x) = v / \\sqrt{\\mathrm{mean}_{\\text{axis}}(v^2) + \\epsilon}

    Args:
        x: array ``(batch, ..., features)``; float32 stays float32, integers become float64.
        homogeneous: one of :data:`HOMOGENEOUS_MODES`.
        homogeneous_scale: ``s``, the factor of the appended coordinate.
        axis: the feature axis (not 0, the batch axis).
        eps: ``epsilon`` added to ``q``; with the default 0 every location has ``q = 1`` to
            rounding, and an all-zero location (without a homogeneous coordinate) gives NaN.

    Returns:
        The normalized array; with a homogeneous coordinate the feature axis is one longer.

    Raises:
        DomainError: unknown mode, an array with fewer than 2 axes, the batch axis as
            feature axis, negative or non-finite ``homogeneous_scale`` / ``eps``.

    Example:
        >>> y = pln(np.array([[3.0, 4.0]]), homogeneous="one")
        >>> np.round(y, 6).tolist(), float(np.mean(y**2))
        ([[1.019049, 1.358732, 0.339683]], 1.0)
    """
    _check_mode(homogeneous)
    x, axis = _check_array(x, axis)
    scale = _check_nonnegative("homogeneous_scale", homogeneous_scale)
    eps = _check_nonnegative("eps", eps)
    if homogeneous is not None:
        shape = list(x.shape)
        shape[axis] = 1
        if homogeneous == "one":
            extra = np.full(shape, scale, dtype=x.dtype)
        else:
            rms = np.sqrt(np.mean(np.square(x), axis=tuple(range(1, x.ndim)), keepdims=True))
            extra = np.broadcast_to(scale * rms, shape)
        x = np.concatenate([x, extra], axis=axis)
    return x / np.sqrt(np.mean(np.square(x), axis=axis, keepdims=True) + eps)
