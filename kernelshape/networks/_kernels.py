"""Kernels on real inputs: NNGP and NTK over (input, position) pairs (THEORY.md §8).

The state is a kernel array in neural-tangents' full-spatial layout, ``K[a, b, i, i', j,
j', ...]`` for inputs ``a, b`` and positions ``(i, j, ...)`` / ``(i', j', ...)``, with the
NTK ``T`` beside it (None when not asked). Each layer kind has one rule in
:data:`KERNEL_RULES`; conventions are those of neural-tangents' ``stax`` (fan-in
normalization, zero padding counted in the fan-in, NTK parameterization, average pooling
dividing by the window), so values compare one to one:

* dense (per position): ``K' = sw^2 K + sb^2``, ``T' = K' + sw^2 T``;
* convolution, Gaussian init: the window average along aligned offsets,
  ``K'(p, p') = sw^2 / |W| sum_w K(s p + w, s p' + w) + sb^2`` (padded entries zero);
  Delta init: the centre tap only, ``K'(p, p') = sw^2 K(s p + c, s p' + c) + sb^2``;
* average pooling: the window average on each side; global average pooling: the average
  over all position pairs; flatten: the average over diagonal pairs ``p = p'``;
* layer norm over channels: ``K' = K / sqrt(K11 K22)`` per position pair, ``T`` likewise;
* element-wise ``phi``: ``K' = E[phi(u) phi(v)]``, ``T' = E[phi'(u) phi'(v)] T``
  (:mod:`._dual`, the activation's float64 maps);
* sums: ``sum_i w_i^2 K_i`` (and ``T``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import DomainError, NetworkError
from ._dual import expectations


@dataclasses.dataclass(frozen=True)
class Kernel:
    """NNGP and NTK of a network on a batch of inputs (neural-tangents' conventions).

    Attributes:
        nngp: ``(n, n)`` float64 array, the output covariance ``E[f(x_a) f(x_b)]`` per
            output unit.
        ntk: ``(n, n)`` float64 array, the neural tangent kernel (NTK parameterization),
            or None when not asked for.
    """

    nngp: np.ndarray
    ntk: np.ndarray | None = None


@dataclasses.dataclass
class _State:
    k: np.ndarray
    t: np.ndarray | None
    spatial: tuple


def inputs_kernel(x, ntk):
    """The input state: ``K = x x^T / channels`` over (input, position) pairs, ``T = 0``."""
    n, spatial, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
    flat = x.reshape(n, -1, channels)
    k = np.einsum("apc,bqc->abpq", flat, flat) / channels
    k = k.reshape((n, n) + spatial + spatial)
    d = len(spatial)
    # (a, b, i, j, i', j') -> (a, b, i, i', j, j'): each spatial axis beside its partner
    order = [0, 1] + [ax for s in range(d) for ax in (2 + s, 2 + d + s)]
    k = np.ascontiguousarray(k.transpose(order))
    return _State(k, np.zeros_like(k) if ntk else None, tuple(spatial))


def _diagonal(k, spatial):
    """``D[a, i, j, ...] = K[a, a, i, i, j, j, ...]``."""
    letters = "ijklmnop"[:len(spatial)]
    sub = "aa" + "".join(c + c for c in letters)
    return np.einsum(f"{sub}->a{letters}", k)


def _outer(k, spatial):
    """``(K11, K22)`` broadcastable against ``K`` (diagonals of each side)."""
    d = _diagonal(k, spatial)
    n = d.shape[0]
    shape1 = [n, 1] + [x for s in spatial for x in (s, 1)]
    shape2 = [1, n] + [x for s in spatial for x in (1, s)]
    return d.reshape(shape1), d.reshape(shape2)


# -- layer rules ------------------------------------------------------------------------------
def _affine(k, t, w2, b2):
    k = w2 * k + b2
    return k, (None if t is None else k + w2 * t)


def _dense(node, st, phi):
    if node.skip:
        return st
    st.k, st.t = _affine(st.k, st.t, node.sigma_w ** 2, node.sigma_b ** 2)
    return st


def _padding(size, window, stride, padding, what):
    """``(out, lo, hi)`` as jax/neural-tangents compute them for 'same' and 'valid'."""
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + window - size, 0)
        return out, total // 2, total - total // 2
    out = (size - window) // stride + 1
    if out < 1:
        raise DomainError(f"{what}: window {window} is larger than the input ({size} positions) "
                          "with padding='valid'")
    return out, 0, 0


def _windows(k, axis, window, stride, padding, what, offsets_both):
    """Sum over window offsets along spatial axis ``axis`` (both sides of the pair).

    ``offsets_both``: one offset shared by the two sides (convolution: aligned taps), else
    each side summed on its own (pooling: two independent averages).
    """
    size = k.shape[2 + 2 * axis]
    out, lo, hi = _padding(size, window, stride, padding, what)
    a1, a2 = 2 + 2 * axis, 3 + 2 * axis
    pad = [(0, 0)] * k.ndim
    pad[a1] = pad[a2] = (lo, hi)
    kp = np.pad(k, pad) if lo or hi else k
    span = stride * (out - 1) + 1

    def cut(arr, ax, d):
        idx = [slice(None)] * arr.ndim
        idx[ax] = slice(d, d + span, stride)
        return arr[tuple(idx)]

    if offsets_both is not None:
        offsets = offsets_both
        total = None
        for d in offsets:
            term = cut(cut(kp, a1, d), a2, d)
            total = term.copy() if total is None else total + term
        return total, out
    half = None
    for d in range(window):
        term = cut(kp, a1, d)
        half = term.copy() if half is None else half + term
    total = None
    for d in range(window):
        term = cut(half, a2, d)
        total = term.copy() if total is None else total + term
    return total, out


def _spatial_params(value, spatial, what):
    if len(spatial) == 0:
        raise NetworkError(f"{what} needs inputs with positions, shape (n, *spatial, channels); "
                           "the kernel here has none (dense inputs, or after flatten/global "
                           "pooling)")
    if isinstance(value, tuple):
        if len(value) != len(spatial):
            raise NetworkError(f"{what}: {len(value)} sizes for {len(spatial)} spatial axes")
        return value
    return (value,) * len(spatial)


def _conv(node, st, phi):
    what = repr(node)
    sizes = _spatial_params(node.kernel_size, st.spatial, what)
    strides = _spatial_params(node.stride, st.spatial, what)
    k, t, spatial = st.k, st.t, list(st.spatial)
    for ax, (w, s) in enumerate(zip(sizes, strides)):
        if node.init == "delta":
            offsets, norm = [(w - 1) // 2], 1.0
        else:
            offsets, norm = range(w), float(w)
        k, out = _windows(k, ax, w, s, node.padding, what, offsets)
        k = k / norm
        if t is not None:
            t = _windows(t, ax, w, s, node.padding, what, offsets)[0] / norm
        spatial[ax] = out
    st.k, st.t, st.spatial = k, t, tuple(spatial)
    return _dense(node, st, phi)


def _avg_pool(node, st, phi):
    what = repr(node)
    sizes = _spatial_params(node.window, st.spatial, what)
    strides = _spatial_params(node.stride if node.stride is not None else node.window,
                              st.spatial, what)
    k, t, spatial = st.k, st.t, list(st.spatial)
    for ax, (w, s) in enumerate(zip(sizes, strides)):
        k, out = _windows(k, ax, w, s, node.padding, what, None)
        k = k / float(w * w)
        if t is not None:
            t = _windows(t, ax, w, s, node.padding, what, None)[0] / float(w * w)
        spatial[ax] = out
    st.k, st.t, st.spatial = k, t, tuple(spatial)
    return st


def _global_avg_pool(node, st, phi):
    _spatial_params(1, st.spatial, repr(node))
    axes = tuple(range(2, st.k.ndim))
    st.k = st.k.mean(axis=axes)
    st.t = None if st.t is None else st.t.mean(axis=axes)
    st.spatial = ()
    return st


def _flatten(node, st, phi):
    if st.spatial:
        size = math.prod(st.spatial)
        st.k = np.trace(_pairs_last(st.k, st.spatial), axis1=-2, axis2=-1) / size
        if st.t is not None:
            st.t = np.trace(_pairs_last(st.t, st.spatial), axis1=-2, axis2=-1) / size
        st.spatial = ()
    return st


def _pairs_last(k, spatial):
    """``(n, n, P, P)`` with ``P`` the positions flattened (row-major on both sides)."""
    d = len(spatial)
    order = [0, 1] + [2 + 2 * s for s in range(d)] + [3 + 2 * s for s in range(d)]
    size = math.prod(spatial)
    return k.transpose(order).reshape(k.shape[0], k.shape[1], size, size)


def _layer_norm(node, st, phi):
    k11, k22 = _outer(st.k, st.spatial)
    norm = np.sqrt(k11 * k22)
    st.k = st.k / norm
    st.t = None if st.t is None else st.t / norm
    return st


def _nonlinear(node, st, phi):
    from ._scalar import _phi_of
    k11, k22 = _outer(st.k, st.spatial)
    value, slope = expectations(_phi_of(node, phi), k11, k22, st.k,
                                derivative=st.t is not None)
    st.t = None if st.t is None else slope * st.t
    st.k = value
    return st


#: One kernel rule per layer kind: ``rule(node, state, phi) -> state``.
KERNEL_RULES = {
    "nonlinear": _nonlinear,
    "linear": _dense,
    "conv": _conv,
    "avg_pool": _avg_pool,
    "global_avg_pool": _global_avg_pool,
    "flatten": _flatten,
    "layer_norm": _layer_norm,
}


class KernelRules:
    """Kernel arrays through a description (walked by :mod:`._walk`)."""

    def __init__(self, phi):
        self.phi = phi

    def leaf(self, node, st):
        return KERNEL_RULES[node.kind](node, _State(st.k, st.t, st.spatial), self.phi)

    def combine(self, node, outs):
        shapes = {o.k.shape for o in outs}
        if len(shapes) > 1:
            raise NetworkError(f"the branches of {node!r} give kernels of different shapes "
                               f"{sorted(shapes)}: their outputs cannot be summed")
        k = sum(s * o.k for s, o in zip(node.squares, outs))
        t = None if outs[0].t is None else sum(s * o.t for s, o in zip(node.squares, outs))
        return _State(k, t, outs[0].spatial)


def check_inputs(x):
    """``x`` as a float64 array of shape ``(n, features)`` or ``(n, *spatial, channels)``."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DomainError(f"X must be a real array of shape (n, features) or (n, *spatial, "
                          f"channels), got {type(x).__name__}") from err
    if arr.ndim < 2 or arr.shape[0] < 1 or arr.shape[-1] < 1 or 0 in arr.shape:
        raise DomainError(f"X must have shape (n, features) or (n, *spatial, channels) with "
                          f"every size >= 1, got shape {arr.shape}")
    if arr.ndim > 6:
        raise DomainError(f"X may have at most 4 spatial axes, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DomainError("X must be finite, got NaN or inf entries")
    return arr


def finish(st):
    if st.spatial:
        raise NetworkError(
            f"the network's output still has positions {st.spatial}: end it with flatten() or "
            "global_avg_pool() to get an (n, n) kernel")
    return Kernel(nngp=st.k, ntk=st.t)
