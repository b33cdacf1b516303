"""The JAX target: mapping table, printer and standalone support code.

Emitted modules import only ``jax`` and ``jax.numpy``. The activation is a pure function
(``jax.jit``, ``jax.grad``, ``jax.vmap`` apply); ``suo(key, shape, dtype)`` has the
signature of a flax / ``jax.nn.initializers`` initializer; ``pln`` normalizes per location.

Weight layout: dense ``(in, out)``, convolutions ``(*kernel, in, out)`` (HWIO), as in
flax, haiku and ``jax.lax.conv_general_dilated`` with ``("NHWC", "HWIO", "NHWC")``.
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

__all__ = ["FUNCTIONS", "TARGET", "JaxPrinter"]

#: sympy function -> JAX code (the whole mapping of this target).
FUNCTIONS = {
    sp.exp: "jnp.exp({0})",
    sp.log: "jnp.log({0})",
    sp.sqrt: "jnp.sqrt({0})",
    sp.sin: "jnp.sin({0})",
    sp.cos: "jnp.cos({0})",
    sp.tan: "jnp.tan({0})",
    sp.sinh: "jnp.sinh({0})",
    sp.cosh: "jnp.cosh({0})",
    sp.tanh: "jnp.tanh({0})",
    sp.asin: "jnp.arcsin({0})",
    sp.acos: "jnp.arccos({0})",
    sp.atan: "jnp.arctan({0})",
    sp.asinh: "jnp.arcsinh({0})",
    sp.acosh: "jnp.arccosh({0})",
    sp.atanh: "jnp.arctanh({0})",
    sp.erf: "jax.lax.erf({0})",
    sp.erfc: "jax.lax.erfc({0})",
    Erfc: "jax.lax.erfc({0})",
    sp.Abs: "jnp.abs({0})",
    sp.sign: "jnp.sign({0})",
    sp.Max: "jnp.maximum({0}, {1})",
    sp.Min: "jnp.minimum({0}, {1})",
    Softplus: "jnp.logaddexp({0}, 0.0)",
    Sigmoid: "jax.nn.sigmoid({0})",
    Hypot: "jnp.hypot({0}, {1})",
    HypotRatio: "({0} / jnp.hypot({0}, {1}))",
    Expm1: "jnp.expm1({0})",
    Log1p: "jnp.log1p({0})",
}


class JaxPrinter(TargetPrinter):
    """Prints stable-form sympy expressions as JAX code."""

    target = "jax"
    functions = FUNCTIONS


_SUPPORT = '''
def _orthogonal(key, n_in, n_out, dtype):
    # Haar: QR of a Gaussian matrix, columns sign-corrected by diag(R).
    g = jax.random.normal(key, (max(n_in, n_out), min(n_in, n_out)), dtype)
    q, r = jnp.linalg.qr(g)
    q = q * jnp.where(jnp.diagonal(r) < 0.0, -1.0, 1.0).astype(dtype)
    return q if n_in >= n_out else q.T


def suo(key, shape, dtype=jnp.float32, *, scale=1.0, delta=True):
    """Scaled uniform orthogonal (SUO) weights, Delta-initialized for convolutions.

    The (in, out) matrix is Haar-orthogonal (orthonormal rows if in <= out, else columns)
    times scale * max(sqrt(out / in), 1), so a layer with zero bias preserves q.
    Convolutions with delta=True get that matrix at the centre tap and zeros elsewhere.
    Usable as a flax initializer: kernel_init=suo.

    Args:
        key: a jax.random key.
        shape: (in, out), or (*kernel, in, out) for convolutions (odd kernel).
        dtype: result dtype (float64 needs jax_enable_x64).
        scale: extra factor (leave at 1.0 for DKS/TAT).
        delta: Delta initialization for convolutions.

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
        centre = gain * _orthogonal(key, n_in, n_out, dtype)
        return jnp.zeros(shape, dtype).at[tuple((s - 1) // 2 for s in kernel)].set(centre)
    fan_in = 1
    for s in shape[:-1]:
        fan_in *= s
    gain = scale * max((n_out / fan_in) ** 0.5, 1.0)
    return (gain * _orthogonal(key, fan_in, n_out, dtype)).reshape(shape)


def pln(x, *, homogeneous=None, homogeneous_scale=1.0, axis=-1, eps=0.0):
    """Per-location normalization: every location's feature vector gets q = 1.

    Optionally appends a homogeneous coordinate along the feature axis first: "one" appends
    homogeneous_scale; "rms" appends homogeneous_scale times the example's RMS over all
    non-batch axes (axis 0 is the batch). Then v -> v / sqrt(mean(v**2, axis) + eps).

    Args:
        x: array (batch, ..., features); float32 stays float32.
        homogeneous: None, "one" or "rms" (static).
        homogeneous_scale: factor of the appended coordinate.
        axis: the feature axis (not 0).
        eps: added to q (0.0: exact q = 1; an all-zero location then gives NaN).

    Returns:
        The normalized array (one more feature with a homogeneous coordinate).
    """
    if x.ndim < 2 or axis % x.ndim == 0:
        raise ValueError(f"expected (batch, ..., features) and a non-batch axis, got "
                         f"shape {x.shape} and axis {axis}")
    if homogeneous is not None:
        shape = list(x.shape)
        shape[axis] = 1
        if homogeneous == "one":
            extra = jnp.full(shape, homogeneous_scale, dtype=x.dtype)
        elif homogeneous == "rms":
            rms = jnp.sqrt(jnp.mean(jnp.square(x), axis=tuple(range(1, x.ndim)),
                                    keepdims=True))
            extra = jnp.broadcast_to(homogeneous_scale * rms, shape)
        else:
            raise ValueError(f"homogeneous must be None, 'one' or 'rms', got {homogeneous!r}")
        x = jnp.concatenate([x, extra], axis=axis)
    return x / jnp.sqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)
'''

TARGET = Target(
    name="jax",
    framework="JAX",
    printer=JaxPrinter,
    imports=("import jax", "import jax.numpy as jnp"),
    extra_imports={},
    helpers={},
    where="jnp.where({0}, {1}, {2})",
    full_like="jnp.full_like({0}, {1})",
    support=_SUPPORT,
    support_names=("suo", "pln"),
    layout="dense (in, out), convolution (*kernel, in, out) (HWIO)",
)
