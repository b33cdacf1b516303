"""Kernels on real inputs: NNGP and NTK over (input, position) pairs (THEORY.md §8).

The state is the kernel over (input, position) pairs, ``K[a, i, j, ..., b, i', j', ...]``
for inputs ``a, b`` and positions ``(i, j, ...)`` / ``(i', j', ...)``, with the NTK ``T``
beside it (None when not asked). Each layer kind has one rule in
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
import itertools
import math
import sys

import numpy as np

from ..errors import DomainError, NetworkError
from ._dual import expectations, one_q_cov

#: Stride-1 convolutions and closed-form element-wise layers in compiled passes
#: (:mod:`kernelshape.maps._closed64`); False: the numpy route for every layer.
COMPILED = True


@dataclasses.dataclass(frozen=True)
class Kernel:
    """NNGP and NTK of a network on a batch of inputs (neural-tangents' conventions).

    Attributes:
        nngp: ``(n, n)`` float64 array, the output covariance ``E[f(x_a) f(x_b)]`` per
            output unit.
        ntk: ``(n, n)`` float64 array, the neural tangent kernel (NTK parameterization),
            or None when not asked for.

    Example:
        >>> import numpy as np
        >>> import kernelshape as ks
        >>> k = ks.chain(ks.linear(), ks.nonlinear("relu"), ks.linear()).kernel(
        ...     np.eye(2), ntk=True)
        >>> k.nngp      # relu: Q(1/2) = 1/4 on the diagonal, 1/(4 pi) off it
        array([[0.25      , 0.07957747],
               [0.07957747, 0.25      ]])
    """

    nngp: np.ndarray
    ntk: np.ndarray | None = None


@dataclasses.dataclass
class _State:
    k: np.ndarray
    t: np.ndarray | None
    spatial: tuple
    pool: _Pool | None = None
    #: Only the upper triangle (row <= column of the flattened (input, position) matrix)
    #: holds values, the rest is scratch: the compiled passes work on that half and
    #: :func:`_full` completes the matrix for every other rule.
    upper: bool = False


class _Pool:
    """Arrays recycled across the layers of one kernel evaluation.

    Every layer replaces the kernels by new arrays of megabytes; fresh ones come from mmap,
    and their first touch costs a page fault per 4 KB (about 45 ms of a 20-layer conv net's
    140 ms, measured). An array is handed out again once nothing but the pool refers to it
    (no array, view or state holds it), so reuse can never be seen from outside.
    """

    def __init__(self):
        self.arrays = []

    def empty(self, shape):
        size = math.prod(shape)
        for a in self.arrays:
            # references: the list, the loop variable and getrefcount's argument
            if a.size == size and sys.getrefcount(a) <= 3:
                return a.reshape(shape)
        a = np.empty(size)
        if len(self.arrays) < 32:
            self.arrays.append(a)
        return a.reshape(shape)


def _empty(st, shape):
    return np.empty(shape) if st.pool is None else st.pool.empty(shape)


# Layout: K[a, i, j, ..., b, i', j', ...] -- the (input, position) x (input, position) matrix
# with its axes unflattened, so a reshape gives the matrix and spatial rules slice one axis
# per side. Linear rules act on NNGP and NTK stacked along a leading axis, in one pass.
# The compiled passes (stride-1 convs with their dense part, closed-form element-wise
# layers) read and write the upper triangle alone (``_State.upper``): a shift applied to
# both sides keeps the row <= column order, so a conv's upper triangle needs only its
# input's, and a chain of them never completes the matrix; :func:`_full` mirrors it once
# for the first rule that needs every entry, and at the end.
def inputs_kernel(x, ntk):
    """The input state: ``K = x x^T / channels`` over (input, position) pairs, ``T = 0``."""
    n, spatial, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
    flat = x.reshape(n, -1, channels)
    k = np.einsum("apc,bqc->apbq", flat, flat) / channels
    k = k.reshape((n,) + spatial + (n,) + spatial)
    return _State(k, np.zeros_like(k) if ntk else None, tuple(spatial), _Pool())


def _full(st):
    """``st`` with whole matrices (mirrors an upper-triangle state in place)."""
    if st.upper:
        from ..maps._closed64 import compiled
        size = _size(st)
        compiled("mirror_upper")(st.k.reshape(size, size))
        if st.t is not None:
            compiled("mirror_upper")(st.t.reshape(size, size))
        st.upper = False
    return st


def _size(st):
    return st.k.shape[0] * math.prod(st.spatial)


def _outer(k, spatial):
    """``(K11, K22)``: the diagonal, broadcastable against ``K`` from each side."""
    n, d = k.shape[0], len(spatial)
    size = n * math.prod(spatial)
    diag = np.diagonal(k.reshape(size, size)).reshape((n,) + spatial)
    return diag.reshape(diag.shape + (1,) * (d + 1)), diag.reshape((1,) * (d + 1) + diag.shape)


def _linear_op(st, fn):
    """Apply ``fn(arr, lead)`` to the NNGP and the NTK: stacked along a leading axis
    (``lead = 1``) when small, where a numpy call costs more than its work; one at a
    time (``lead = 0``) when large, where stacking would copy megabytes."""
    if st.t is None:
        st.k = fn(st.k, 0)
    elif st.k.size <= _STACK_MAX:
        both = fn(np.stack([st.k, st.t]), 1)
        st.k, st.t = both[0], both[1]
    else:
        st.k, st.t = fn(st.k, 0), fn(st.t, 0)
    return st


#: The largest kernel (entries) whose NNGP and NTK linear rules stack into one array.
_STACK_MAX = 4096


# -- layer rules ------------------------------------------------------------------------------
def _dense(node, st, phi):
    if node.skip:
        return st
    w2, b2 = node.sigma_w ** 2, node.sigma_b ** 2
    k = st.k
    if w2 != 1.0 or b2 != 0.0:   # (w2 k) + b2 and k' + (w2 t), as written, into recycled arrays
        k = np.multiply(st.k, w2, out=_empty(st, st.k.shape))
        np.add(k, b2, out=k)
    if st.t is not None:
        t = np.multiply(st.t, w2, out=_empty(st, st.t.shape))
        st.t = np.add(k, t, out=t)
    st.k = k
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


def _windows(arr, a1, a2, window, stride, padding, what, aligned, offsets):
    """Sums over window offsets along axes ``a1`` (first side) and ``a2`` (second side).

    ``aligned``: one offset shared by both sides (a convolution's taps), else each side
    summed on its own (pooling: two independent averages). Padded entries are zeros: at
    stride 1 each offset adds the overlapping block in place (no padded copy).
    Returns (sum, output size).
    """
    size = arr.shape[a1]
    out, lo, _ = _padding(size, window, stride, padding, what)
    shifts = [d - lo for d in (offsets if aligned else range(window))]
    if stride == 1:
        def add(total, src, ax, shift):
            p0, p1 = max(0, -shift), min(out, size - shift)
            if p1 > p0:
                dst = [slice(None)] * src.ndim
                cut = [slice(None)] * src.ndim
                dst[ax], cut[ax] = slice(p0, p1), slice(p0 + shift, p1 + shift)
                return dst, cut
            return None

        if aligned:
            shape = list(arr.shape)
            shape[a1] = shape[a2] = out
            # the unshifted tap covers everything at 'same' size: start from a copy of it
            whole = out == size and 0 in shifts
            total = arr.copy() if whole else np.zeros(shape)
            for shift in shifts:
                if whole and shift == 0:
                    continue
                one = add(total, arr, a1, shift)
                two = add(total, arr, a2, shift)
                if one and two:
                    dst = [x if i != a2 else two[0][a2] for i, x in enumerate(one[0])]
                    cut = [x if i != a2 else two[1][a2] for i, x in enumerate(one[1])]
                    total[tuple(dst)] += arr[tuple(cut)]
            return total, out
        for ax in (a1, a2):
            shape = list(arr.shape)
            shape[ax] = out
            total = np.zeros(shape)
            for shift in shifts:
                spec = add(total, arr, ax, shift)
                if spec:
                    total[tuple(spec[0])] += arr[tuple(spec[1])]
            arr = total
        return arr, out
    if lo or (out - 1) * stride + window > size:   # zero padding: copy into a padded buffer
        pad = max(0, (out - 1) * stride + window - size - lo)
        shape = list(arr.shape)
        shape[a1] += lo + pad
        shape[a2] += lo + pad
        padded = np.zeros(shape)
        idx = [slice(None)] * arr.ndim
        idx[a1] = idx[a2] = slice(lo, lo + size)
        padded[tuple(idx)] = arr
        arr = padded
    span = stride * (out - 1) + 1

    def cut(x, ax, d):
        idx = [slice(None)] * x.ndim
        idx[ax] = slice(d, d + span, stride)
        return x[tuple(idx)]

    starts = [shift + lo for shift in shifts]
    if aligned:
        total = cut(cut(arr, a1, starts[0]), a2, starts[0]).copy()
        for d in starts[1:]:
            total += cut(cut(arr, a1, d), a2, d)
        return total, out
    half = cut(arr, a1, 0).copy()
    for d in range(1, window):
        half += cut(arr, a1, d)
    total = cut(half, a2, 0).copy()
    for d in range(1, window):
        total += cut(half, a2, d)
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


def _spatial_op(st, node, sizes, strides, aligned, offsets_of, norm_of):
    d, spatial = len(st.spatial), list(st.spatial)

    def fn(arr, lead):
        for ax, (w, s) in enumerate(zip(sizes, strides)):
            arr, spatial[ax] = _windows(arr, lead + 1 + ax, lead + d + 2 + ax, w, s,
                                        node.padding, repr(node), aligned, offsets_of(w))
            arr /= norm_of(w)
        return arr

    _linear_op(st, fn)
    st.spatial = tuple(spatial)
    return st


def _aligned_compiled(st, node, sizes, offsets_of, norm_of):
    """A stride-1 convolution (one or two spatial axes) with its dense part, in one compiled
    pass per kernel (NNGP, then NTK) over the upper triangle: no padded copies, no pass
    per tap, no mirrored half."""
    from ..maps._closed64 import compiled
    d, n = len(st.spatial), st.k.shape[0]
    shape, outs, taps, norm = [], [], [], 1.0
    for ax in range(2):
        if ax < d:
            size, w = st.spatial[ax], sizes[ax]
            out, lo, _ = _padding(size, w, 1, node.padding, repr(node))
            taps.append(np.array(offsets_of(w), dtype=np.int64) - lo)
            norm *= norm_of(w)
        else:
            size, out = 1, 1
            taps.append(np.zeros(1, dtype=np.int64))
        shape.append(size)
        outs.append(out)
    window = compiled("window_upper")
    s1, s2, o1, o2 = shape[0], shape[1], outs[0], outs[1]
    w2, b2 = float(node.sigma_w) ** 2, float(node.sigma_b) ** 2
    half = _empty(st, (n, o1, s2, n, o1, s2))
    none = np.empty((0, 1, 1, 1, 1, 1))

    def one(arr, add):
        src = np.ascontiguousarray(arr).reshape(n, s1, s2, n, s1, s2)
        dst = _empty(st, (n, o1, o2, n, o1, o2))
        window(src, taps[0], taps[1], float(norm), w2, b2, add, dst, half)
        return dst

    k = one(st.k, none)
    st.t = None if st.t is None else one(st.t, k).reshape(
        (n,) + tuple(outs[:d]) + (n,) + tuple(outs[:d]))
    st.k = k.reshape((n,) + tuple(outs[:d]) + (n,) + tuple(outs[:d]))
    st.spatial = tuple(outs[:d])
    st.upper = True
    return st


def _conv(node, st, phi):
    what = repr(node)
    sizes = _spatial_params(node.kernel_size, st.spatial, what)
    strides = _spatial_params(node.stride, st.spatial, what)
    if node.init == "delta":
        offsets, norm = (lambda w: [(w - 1) // 2]), (lambda w: 1.0)
    else:
        offsets, norm = (lambda w: list(range(w))), float
    if COMPILED and len(st.spatial) <= 2 and all(s == 1 for s in strides):
        return _aligned_compiled(st, node, sizes, offsets, norm)
    st = _spatial_op(_full(st), node, sizes, strides, True, offsets, norm)
    return _dense(node, st, phi)


def _avg_pool(node, st, phi):
    what = repr(node)
    sizes = _spatial_params(node.window, st.spatial, what)
    strides = _spatial_params(node.stride if node.stride is not None else node.window,
                              st.spatial, what)
    return _spatial_op(st, node, sizes, strides, False, lambda w: None,
                       lambda w: float(w * w))


def _global_avg_pool(node, st, phi):
    d = len(_spatial_params(1, st.spatial, repr(node)))

    def fn(arr, lead):
        return arr.mean(axis=tuple(lead + 1 + i for i in range(d))
                        + tuple(lead + d + 2 + i for i in range(d)))

    _linear_op(st, fn)
    st.spatial = ()
    return st


def _flatten(node, st, phi):
    if st.spatial:
        n, size = st.k.shape[0], math.prod(st.spatial)

        def fn(arr, lead):
            arr = arr.reshape(arr.shape[:lead] + (n, size, n, size))
            return np.einsum("...apbp->...ab", arr) / size

        _linear_op(st, fn)
        st.spatial = ()
    return st


def _layer_norm(node, st, phi):
    k11, k22 = _outer(st.k, st.spatial)
    norm = np.sqrt(k11 * k22)
    st.k = st.k / norm
    st.t = None if st.t is None else st.t / norm
    return st


def _nonlinear(node, st, phi):
    """Element-wise rule on the blocks on and above the diagonal of the (symmetric) kernel
    matrix: contiguous slices instead of an index gather, 5/8 of the entries."""
    from ._scalar import _phi_of
    size = _size(st)
    k11, _ = _outer(st.k, st.spatial)
    diag = k11.reshape(size)
    fused = _nonlinear_compiled(_phi_of(node, phi), st, diag, size) if COMPILED else None
    if fused is not None:
        return fused
    st = _full(st)
    blocks = _blocks(size)
    flat = st.k.reshape(size, size)
    values = np.concatenate([flat[r, c].ravel() for r, c in blocks])
    q = float(diag[0])
    if q > 0.0 and math.isfinite(q) and np.all(diag == q):
        # one second moment everywhere (dense nets, and convs on inputs of equal norms
        # per position): no per-entry pairs of second moments to build
        value, slope = one_q_cov(_phi_of(node, phi), q, values, st.t is not None)
        return _finish_nonlinear(st, value, slope, blocks, size)
    first = np.concatenate([np.broadcast_to(diag[r, None], (r.stop - r.start, c.stop - c.start))
                            .ravel() for r, c in blocks])
    second = np.concatenate([np.broadcast_to(diag[None, c], (r.stop - r.start, c.stop - c.start))
                             .ravel() for r, c in blocks])
    value, slope = expectations(_phi_of(node, phi), first, second, values,
                                derivative=st.t is not None)
    return _finish_nonlinear(st, value, slope, blocks, size)


def _nonlinear_compiled(phi, st, diag, size):
    """The element-wise rule in one compiled pass over the upper triangle (closed forms;
    one second moment, a positively homogeneous phi, or the erf kind at any second
    moments), or None."""
    from ..maps import _closed64, q_map
    from ._dual import _positively_homogeneous, erf_constants
    q = float(diag[0])
    if not (np.all(diag > 0.0) and np.all(np.isfinite(diag))):
        return None   # the general route reports it
    one_q = bool(np.all(diag == q))
    if not one_q and not _positively_homogeneous(phi):
        # the arcsine kernel of _dual._erf_two_q
        found = erf_constants(phi)
        return None if found is None else _pairs_pass(st, diag, size, "pairs_erf_two_q",
                                                      *found)
    at = q if one_q else 1.0
    found = _closed64.constants(phi, at)
    if found is None:
        return None
    return _pairs_pass(st, diag, size, f"pairs_{found[0]}", found[1], q_map(phi, at), at,
                       not one_q)


def _pairs_pass(st, diag, size, name, *constants):
    """Run the compiled element-wise pass ``name(*constants, k, diag, t, k_out, t_out)``: it
    reads and writes the upper triangle alone."""
    from ..maps import _closed64
    k = np.ascontiguousarray(st.k).reshape(size, size)
    k_out = _empty(st, k.shape)
    t = k[:0] if st.t is None else np.ascontiguousarray(st.t).reshape(size, size)
    t_out = np.empty_like(t) if st.t is None else _empty(st, t.shape)
    # a contiguous diagonal: a strided one compiles to a loop that does not vectorize (3x)
    _closed64.compiled(name)(*constants, k, np.ascontiguousarray(diag), t, k_out, t_out)
    st.k = k_out.reshape(st.k.shape)
    st.t = None if st.t is None else t_out.reshape(st.t.shape)
    st.upper = True
    return st


def _finish_nonlinear(st, value, slope, blocks, size):
    st.k = _assemble(value, blocks, size).reshape(st.k.shape)
    if st.t is not None:
        st.t = st.t * _assemble(slope, blocks, size).reshape(st.t.shape)
    return st


def _blocks(size, parts=4):
    """Slices ``(rows, cols)`` of the blocks on and above the diagonal of a ``parts x parts``
    partition of a ``size x size`` matrix."""
    edges = np.linspace(0, size, min(parts, size) + 1).astype(int)
    cuts = [slice(int(lo), int(hi)) for lo, hi in itertools.pairwise(edges)]
    return [(r, c) for i, r in enumerate(cuts) for c in cuts[i:]]


def _assemble(values, blocks, size):
    out = np.empty((size, size))
    start = 0
    for r, c in blocks:
        shape = (r.stop - r.start, c.stop - c.start)
        block = values[start:start + shape[0] * shape[1]].reshape(shape)
        out[r, c] = block
        out[c, r] = block.T   # the diagonal blocks: symmetric up to rounding, kept as computed
        start += block.size
    return out


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


#: The rules that accept an upper-triangle state (they complete it themselves where they
#: need the whole matrix); every other rule gets whole matrices.
UPPER_RULES = frozenset({"nonlinear", "conv"})


class KernelRules:
    """Kernel arrays through a description (walked by :mod:`._walk`)."""

    def __init__(self, phi):
        self.phi = phi

    def leaf(self, node, st):
        state = _State(st.k, st.t, st.spatial, st.pool, st.upper)
        if node.kind not in UPPER_RULES:
            state = _full(state)
        return KERNEL_RULES[node.kind](node, state, self.phi)

    def combine(self, node, outs):
        outs = [_full(o) for o in outs]
        shapes = {o.k.shape for o in outs}
        if len(shapes) > 1:
            raise NetworkError(f"the branches of {node!r} give kernels of different shapes "
                               f"{sorted(shapes)}: their outputs cannot be summed")
        k = sum(s * o.k for s, o in zip(node.squares, outs))
        t = None if outs[0].t is None else sum(s * o.t for s, o in zip(node.squares, outs))
        return _State(k, t, outs[0].spatial, outs[0].pool)


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
    st = _full(st)
    if st.spatial:
        raise NetworkError(
            f"the network's output still has positions {st.spatial}: end it with flatten() or "
            "global_avg_pool() to get an (n, n) kernel")
    return Kernel(nngp=st.k, ntk=st.t)
