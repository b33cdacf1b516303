"""Scaled uniform orthogonal (SUO) and Delta initialization, NumPy reference.

DKS and TAT assume layers that preserve q at initialization: zero biases and weights from
the SUO distribution, a Haar-orthogonal matrix times ``max(sqrt(fan_out / fan_in), 1)``
(THEORY.md §6; Martens et al. 2021, arXiv 2110.01765, "Parameter distributions"). For an
``(in, out)`` matrix ``W`` and ``y = x W``:

- ``in <= out``: orthonormal rows scaled by ``sqrt(out / in)``, so ``W W^T = (out / in) I``
  and ``q(y) = ||y||^2 / out = ||x||^2 / in = q(x)`` exactly, for every ``x``;
- ``in > out``: orthonormal columns (scale 1), ``W^T W = I``, so for ``x`` with iid entries
  ``y`` has the same per-entry distribution: ``q`` is preserved in expectation.

Delta initialization of a convolution (odd kernel sizes): all taps zero except the centre,
which holds an SUO ``(in, out)`` matrix; a Delta convolution acts like a dense layer at
every location. Without ``delta`` a convolution is an orthogonal ``(kernel * in, out)``
matrix, as in the ``dks`` package.

The code generator (:mod:`kernelshape.codegen`) emits the same algorithm for each framework;
with the same generator the NumPy emission returns the same numbers as :func:`suo`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import DomainError

__all__ = ["LAYOUTS", "delta_orthogonal", "suo"]

#: Weight layouts: ``"io"`` dense ``(in, out)`` and conv ``(*kernel, in, out)`` (NumPy, JAX,
#: flax, haiku); ``"oi"`` dense ``(out, in)`` and conv ``(out, in, *kernel)`` (PyTorch).
LAYOUTS = ("io", "oi")


def _check_shape(shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as err:
        raise DomainError(f"expected a weight shape (a sequence of ints), got {shape!r}") from err
    if len(shape) < 2 or min(shape) < 1:
        raise DomainError(f"expected a weight shape with >= 2 positive sizes, got {shape}")
    return shape


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise DomainError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")
    return layout


def _check_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise DomainError(f"rng must be a numpy.random.Generator or an int seed, got {rng!r}")


def _check_scale(scale) -> float:
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise DomainError(f"scale must be a finite positive number, got {scale!r}")
    return scale


def _split(shape, layout):
    """(n_in, n_out, kernel) of a weight shape in ``layout``."""
    if layout == "io":
        return shape[-2], shape[-1], shape[:-2]
    return shape[1], shape[0], shape[2:]


def _orthogonal(rng, n_in: int, n_out: int) -> np.ndarray:
    """Haar-orthogonal ``(n_in, n_out)``: QR of a Gaussian, columns sign-corrected by diag(R)."""
    g = rng.standard_normal((max(n_in, n_out), min(n_in, n_out)))
    q, r = np.linalg.qr(g)
    q = q * np.where(np.diagonal(r) < 0.0, -1.0, 1.0)
    return q if n_in >= n_out else q.T


def _to_layout(matrix_io: np.ndarray, shape, layout) -> np.ndarray:
    """A ``(fan_in, out)`` matrix as a weight of ``shape`` in ``layout`` (fan-in flattened
    in C order: ``(*kernel, in)`` for "io", ``(in, *kernel)`` for "oi")."""
    if layout == "io":
        return matrix_io.reshape(shape)
    return matrix_io.T.reshape(shape)


def delta_orthogonal(shape: Sequence[int], *, rng, scale: float = 1.0, layout: str = "io",
                     dtype=np.float64) -> np.ndarray:
    """Delta-initialized convolution weights: an SUO matrix at the centre tap, zeros elsewhere.

    .. math::
        W[c] = s \\max(\\sqrt{out / in}, 1) Q, \\quad W[k] = 0 \\ (k \\ne c)

    with ``Q`` Haar-orthogonal ``(in, out)`` and ``c`` the centre of the (odd) kernel.

    Args:
        shape: ``(*kernel, in, out)`` for ``layout="io"``, ``(out, in, *kernel)`` for "oi";
            at least one kernel axis, every kernel size odd.
        rng: a ``numpy.random.Generator`` or an int seed.
        scale: extra factor ``s`` (1.0 for DKS/TAT).
        layout: one of :data:`LAYOUTS`.
        dtype: result dtype (sampled in float64).

    Returns:
        The weights, exactly orthogonal (to float64 rounding) at the centre up to the scale.

    Raises:
        DomainError: bad shape, even kernel size, unknown layout, bad rng or scale.

    Example:
        >>> w = delta_orthogonal((3, 3, 4, 8), rng=0)
        >>> bool(np.allclose(w[1, 1] @ w[1, 1].T, 2 * np.eye(4)))  # in = 4 < out = 8
        True
    """
    shape, layout = _check_shape(shape), _check_layout(layout)
    rng, scale = _check_rng(rng), _check_scale(scale)
    n_in, n_out, kernel = _split(shape, layout)
    if not kernel or any(s % 2 == 0 for s in kernel):
        raise DomainError(
            f"Delta initialization needs a convolution shape with odd kernel sizes, got "
            f"kernel {kernel} in shape {shape} (layout {layout!r})")
    gain = scale * max(math.sqrt(n_out / n_in), 1.0)
    centre = gain * _orthogonal(rng, n_in, n_out)
    w = np.zeros(shape, dtype)
    mid = tuple((s - 1) // 2 for s in kernel)
    if layout == "io":
        w[mid] = centre
    else:
        w[(slice(None), slice(None), *mid)] = centre.T
    return w


def suo(shape: Sequence[int], *, rng, scale: float = 1.0, delta: bool = True,
        layout: str = "io", dtype=np.float64) -> np.ndarray:
    """Scaled uniform orthogonal weights (Delta-initialized for convolutions by default).

    .. math::
        W = s \\max(\\sqrt{fan\\_out / fan\\_in}, 1) Q

    with ``Q`` a Haar-orthogonal ``(fan_in, fan_out)`` matrix (orthonormal rows if
    ``fan_in <= fan_out``, columns otherwise), ``fan_in = prod(kernel) * in``. A
    convolution shape with ``delta=True`` goes to :func:`delta_orthogonal`. Biases: zero.

    Args:
        shape: dense ``(in, out)`` / conv ``(*kernel, in, out)`` for ``layout="io"``; dense
            ``(out, in)`` / conv ``(out, in, *kernel)`` for ``layout="oi"``.
        rng: a ``numpy.random.Generator`` or an int seed.
        scale: extra factor ``s`` (1.0 for DKS/TAT).
        delta: Delta initialization for convolution shapes.
        layout: one of :data:`LAYOUTS`.
        dtype: result dtype (sampled in float64).

    Returns:
        The weights; ``W^T W`` or ``W W^T`` (of the flattened matrix) is the scaled
        identity to float64 rounding.

    Raises:
        DomainError: bad shape, even kernel size with ``delta``, unknown layout, bad rng.

    Example:
        >>> w = suo((8, 4), rng=0)           # in = 8 > out = 4: orthonormal columns
        >>> bool(np.allclose(w.T @ w, np.eye(4)))
        True
    """
    shape, layout = _check_shape(shape), _check_layout(layout)
    n_in, n_out, kernel = _split(shape, layout)
    if delta and kernel:
        return delta_orthogonal(shape, rng=rng, scale=scale, layout=layout, dtype=dtype)
    rng, scale = _check_rng(rng), _check_scale(scale)
    fan_in = n_in * math.prod(kernel)
    gain = scale * max(math.sqrt(n_out / fan_in), 1.0)
    return _to_layout(gain * _orthogonal(rng, fan_in, n_out), shape, layout).astype(dtype)
