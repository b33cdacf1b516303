"""The NumPy target: mapping table, printer and standalone support code.

Emitted modules import NumPy, plus ``scipy.special`` only when the activation uses ``erf``
or ``erfc`` (NumPy has no vectorized error function; ``math.erf`` through ``np.vectorize``
would be slow and lose float32). Without automatic differentiation, the module also holds
``<name>_grad``, printed from the symbolic derivative of the stable form.

Weight layout of ``suo``: dense ``(in, out)`` for ``x @ w``; convolutions
``(*kernel, in, out)`` (HWIO), the same as :mod:`kernelshape.init` with ``layout="io"``.
"""

from __future__ import annotations

import sympy as sp

from .emitter import Target
from .printer import (
    Erfc,
    Expm1,
    Hypot,
    HypotRatio,
    Log1p,
    Sigmoid,
    Softplus,
    TargetPrinter,
)

__all__ = ["FUNCTIONS", "TARGET", "NumpyPrinter"]

#: sympy function -> NumPy code (the whole mapping of this target).
FUNCTIONS = {
    sp.exp: "np.exp({0})",
    sp.log: "np.log({0})",
    sp.sqrt: "np.sqrt({0})",
    sp.sin: "np.sin({0})",
    sp.cos: "np.cos({0})",
    sp.tan: "np.tan({0})",
    sp.sinh: "np.sinh({0})",
    sp.cosh: "np.cosh({0})",
    sp.tanh: "np.tanh({0})",
    sp.asin: "np.arcsin({0})",
    sp.acos: "np.arccos({0})",
    sp.atan: "np.arctan({0})",
    sp.asinh: "np.arcsinh({0})",
    sp.acosh: "np.arccosh({0})",
    sp.atanh: "np.arctanh({0})",
    sp.erf: "scipy.special.erf({0})",
    sp.erfc: "scipy.special.erfc({0})",
    Erfc: "scipy.special.erfc({0})",
    sp.Abs: "np.abs({0})",
    sp.sign: "np.sign({0})",
    sp.Max: "np.maximum({0}, {1})",
    sp.Min: "np.minimum({0}, {1})",
    Softplus: "np.logaddexp(0.0, {0})",
    Sigmoid: "_sigmoid({0})",
    Hypot: "np.hypot({0}, {1})",
    HypotRatio: "({0} / np.hypot({0}, {1}))",
    Expm1: "np.expm1({0})",
    Log1p: "np.log1p({0})",
}


class NumpyPrinter(TargetPrinter):
    """Prints stable-form sympy expressions as NumPy code."""

    target = "numpy"
    functions = FUNCTIONS


_SIGMOID = '''
def _sigmoid(z):
    # exp of minus |z| never overflows; each side of the where is exact to rounding.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))
'''

_SUPPORT = '''
def _orthogonal(rng, n_in, n_out):
    # Haar: QR of a Gaussian matrix, columns sign-corrected by diag(R).
    g = rng.standard_normal((max(n_in, n_out), min(n_in, n_out)))
    q, r = np.linalg.qr(g)
    q = q * np.where(np.diagonal(r) < 0.0, -1.0, 1.0)
    return q if n_in >= n_out else q.T


def suo(shape, *, rng, scale=1.0, delta=True, dtype=np.float64):
    """Scaled uniform orthogonal (SUO) weights, Delta-initialized for convolutions.

    The (in, out) matrix is Haar-orthogonal (orthonormal rows if in <= out, else columns)
    times scale * max(sqrt(out / in), 1), so a layer with zero bias preserves q.
    Convolutions with delta=True get that matrix at the centre tap and zeros elsewhere.

    Args:
        shape: (in, out) for x @ w, or (*kernel, in, out) for convolutions (odd kernel).
        rng: a numpy.random.Generator.
        scale: extra factor (leave at 1.0 for DKS/TAT).
        delta: Delta initialization for convolutions.
        dtype: result dtype (sampled in float64).

    Returns:
        An array of the given shape.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"expected a weight shape with at least 2 axes, got {shape}")
    n_in, n_out, kernel = shape[-2], shape[-1], shape[:-2]
    if delta and kernel:
        if any(s % 2 == 0 for s in kernel):
            raise ValueError(f"Delta initialization needs odd kernel sizes, got {kernel}")
        gain = scale * max((n_out / n_in) ** 0.5, 1.0)
        w = np.zeros(shape, dtype)
        w[tuple((s - 1) // 2 for s in kernel)] = gain * _orthogonal(rng, n_in, n_out)
        return w
    fan_in = int(np.prod(shape[:-1]))
    gain = scale * max((n_out / fan_in) ** 0.5, 1.0)
    return (gain * _orthogonal(rng, fan_in, n_out)).reshape(shape).astype(dtype)


def pln(x, *, homogeneous=None, homogeneous_scale=1.0, axis=-1, eps=0.0):
    """Per-location normalization: every location's feature vector gets q = 1.

    Optionally appends a homogeneous coordinate along the feature axis first: "one" appends
    homogeneous_scale; "rms" appends homogeneous_scale times the example's RMS over all
    non-batch axes (axis 0 is the batch). Then v -> v / sqrt(mean(v**2, axis) + eps).

    Args:
        x: array (batch, ..., features); float32 stays float32.
        homogeneous: None, "one" or "rms".
        homogeneous_scale: factor of the appended coordinate.
        axis: the feature axis (not 0).
        eps: added to q (0.0: exact q = 1; an all-zero location then gives NaN).

    Returns:
        The normalized array (one more feature with a homogeneous coordinate).
    """
    x = np.asarray(x)
    if x.ndim < 2 or axis % x.ndim == 0:
        raise ValueError(f"expected (batch, ..., features) and a non-batch axis, got "
                         f"shape {x.shape} and axis {axis}")
    if homogeneous is not None:
        shape = list(x.shape)
        shape[axis] = 1
        if homogeneous == "one":
            extra = np.full(shape, homogeneous_scale, dtype=x.dtype)
        elif homogeneous == "rms":
            rms = np.sqrt(np.mean(np.square(x), axis=tuple(range(1, x.ndim)), keepdims=True))
            extra = np.broadcast_to(homogeneous_scale * rms, shape)
        else:
            raise ValueError(f"homogeneous must be None, 'one' or 'rms', got {homogeneous!r}")
        x = np.concatenate([x, extra], axis=axis)
    return x / np.sqrt(np.mean(np.square(x), axis=axis, keepdims=True) + eps)
'''

TARGET = Target(
    name="numpy",
    framework="NumPy",
    printer=NumpyPrinter,
    imports=("import numpy as np",),
    extra_imports={"scipy.special.": "import scipy.special"},
    helpers={"_sigmoid": _SIGMOID},
    where="np.where({0}, {1}, {2})",
    full_like="np.full_like({0}, {1})",
    support=_SUPPORT,
    support_names=("suo", "pln"),
    layout="dense (in, out) for x @ w, convolution (*kernel, in, out)",
    gradient=True,
)
