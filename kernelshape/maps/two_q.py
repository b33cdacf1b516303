"""The C map for two inputs at different second moments ``q1 != q2`` (float64).

THEORY.md §1 defines the kernel map of a layer for inputs with squared norms (per unit)
``q1, q2`` and cosine similarity ``c``: the pre-activations are ``(x1, x2) ~ N(0, [[q1,
c sqrt(q1 q2)], [c sqrt(q1 q2), q2]])``, the layer's output covariance is

.. math:: \\Sigma_{12}(c) = E[\\phi(\\sqrt{q_1} U)\\, \\phi(\\sqrt{q_2} V)],
          \\qquad \\mathrm{corr}(U, V) = c,

the diagonal goes through the Q map and the output correlation is
``C(c; q1, q2) = Sigma12(c) / sqrt(Q(q1) Q(q2))``. For ``q1 = q2`` this is the usual C map
(:func:`kernelshape.maps.c_map` delegates there); for ``q1 != q2`` ``C(1) < 1`` in general
(Cauchy-Schwarz), and for positively homogeneous activations (ReLU, leaky ReLU) the
``sqrt(q)`` factors cancel and ``C`` does not depend on ``q1, q2``.

Two routes, both float64 (the activation evaluated through its compiled kernels,
``Activation.__call__``):

* activations without breakpoints: Mehler's formula with signed Hermite coefficients,
  ``Sigma12(c) = sum_n b_n(q1) b_n(q2) c^n``, ``b_n(q) = E[phi(sqrt(q) z) He_n(z)] /
  sqrt(n!)`` (the projection kernel ``hermite_project`` of the activation's module), kept
  when the coefficients have decayed and satisfy Parseval (``sum b_n^2 = Q(q)``) to 1e-14;
* otherwise (kinks, jumps, slowly decaying series) a two-dimensional rule. With
  ``V = c U + s W``, ``s = sqrt(1 - c^2)``,

.. math:: \\Sigma_{12} = \\int \\varphi(u) f_1(u) \\int \\varphi(w) f_2(c u + s w)\\, dw\\, du,
          \\qquad f_i(u) = \\phi(\\sqrt{q_i} u),

both integrals by composite Gauss-Legendre rules. The inner one is split where ``c u + s w``
meets a feature point of ``f_2`` (breakpoints of the activation, points graded towards its
steep features and a grid on which it is analytic, as in :mod:`kernelshape.maps.fast`); the outer one at the features of ``f_1``, at
the images ``p / c`` of the features of ``f_2`` (where the inner integral has its structure)
and on a mesh graded by ``s`` around the images of the breakpoints (which sharpen as
``|c| -> 1``). At ``c = +-1`` it is the 1-D integral ``E[f_1(U) f_2(+-U)]``. A 16-point and
a 12-point rule on the same panels must agree, else
:class:`~kernelshape.errors.ConvergenceError`. Only the value (``order = 0``) is provided.
"""

from __future__ import annotations

import logging
import math
import sys
import time

import numpy as np

from ..errors import ConvergenceError
from ._features import features, graded
from .gauss import gauss_legendre

__all__ = ["c_map", "cross_moment", "cross_moments"]

logger = logging.getLogger("kernelshape.maps")

_H = 2.0                 # largest panel width (u and w)
_RULES = (16, 12)        # Gauss-Legendre points per panel: value, check
_ACCEPT = 1e-12          # |fine - coarse| accepted, relative to E|f1(U) f2(V)|
_SERIES_SIZES = (96, 384, 1536)
_CHUNK = 2_000_000       # inner nodes held at once
_MAX_NODES = 100_000_000  # inner nodes per c value before giving up
_PARSEVAL_RTOL = 1e-14
_GRADES = np.array([0.0, 0.25, -0.25, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 4.0, -4.0, 8.0, -8.0,
                    16.0, -16.0])
_INV_SQRT_2PI = 0.3989422804014327


def c_map(act, c: np.ndarray, q1: float, q2: float) -> np.ndarray:
    """``Sigma12(c) / sqrt(Q(q1) Q(q2))`` at each (validated) ``c``; float64, c's shape.

    Example:
        >>> from kernelshape import activation
        >>> round(float(c_map(activation("relu"), np.array(0.0), 1.0, 4.0)) * math.pi, 14)
        1.0
    """
    from . import q_map
    norm = math.sqrt(q_map(act, q1) * q_map(act, q2))
    if norm == 0.0:
        return np.zeros(np.shape(c))
    return cross_moment(act, c, q1, q2) / norm


def cross_moment(act, c: np.ndarray, q1: float, q2: float) -> np.ndarray:
    """``E[phi(sqrt(q1) U) phi(sqrt(q2) V)]``, ``corr(U, V) = c``, at each c in [-1, 1].

    Example:
        >>> from kernelshape import activation
        >>> cross_moment(activation("sin"), np.array([1.0]), 0.5, 2.0)   # e^-1.25 sinh(1)
        array([0.33670078])
    """
    flat = np.asarray(c, dtype=np.float64).ravel()
    series = [_hermite(act, q) for q in (q1, q2)]
    if series[0] is not None and series[1] is not None:
        size = min(len(series[0]), len(series[1]))
        coef = series[0][:size] * series[1][:size]
        return np.polynomial.polynomial.polyval(flat, coef).reshape(np.shape(c))
    try:
        out = _grid_moments(act, flat, q1, q2, dense=False)
    except ConvergenceError:   # structure far out (e.g. oscillations at a large q)
        out = _grid_moments(act, flat, q1, q2, dense=True)
    return out.reshape(np.shape(c))


def cross_moments(act, c: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """:func:`cross_moment` at many entries, each with its own pair of second moments:
    ``E[phi(sqrt(q1[i]) U) phi(sqrt(q2[i]) V)]``, ``corr(U, V) = c[i]`` (1-D arrays of one
    length, c validated and clipped, q's > 0 and checked by the caller).

    The Hermite coefficients are computed once per distinct second moment (not per pair),
    and Mehler's series summed for every entry at once, with the same terms in the same
    order as :func:`cross_moment` (so the same bits; the coefficients through its cache,
    :func:`_hermite`); entries whose activation has no series there take :func:`cross_moment`'s two-dimensional rule, one call per distinct
    pair. A layer of kernels on inputs meets up to (inputs x positions) distinct second
    moments and their square of pairs.

    Example:
        >>> from kernelshape import activation
        >>> q = np.array([0.5, 2.0])
        >>> cross_moments(activation("sin"), np.array([1.0, 1.0]), q, q[::-1])  # e^-1.25 sinh(1)
        array([0.33670078, 0.33670078])
    """
    n = c.shape[0]
    qs, inverse = np.unique(np.concatenate([q1, q2]), return_inverse=True)
    inverse = inverse.ravel()
    i1, i2 = inverse[:n], inverse[n:]
    series = [_hermite(act, float(q)) for q in qs]
    has = np.array([b is not None for b in series])
    out = np.empty(n)
    fast = np.flatnonzero(has[i1] & has[i2])
    if fast.size:
        from ._closed64 import compiled
        sizes = np.array([0 if b is None else b.size for b in series])
        rows = np.zeros((qs.size, sizes.max()))   # row j: the coefficients of distinct q j
        for j, b in enumerate(series):
            if b is not None:
                rows[j, :b.size] = b
        # cross_moment keeps the shorter series of the two: same terms, same order, same bits
        need = np.minimum(sizes[i1[fast]], sizes[i2[fast]]).astype(np.int64)
        part = np.empty(fast.size)
        compiled("mehler_sum")(rows, i1[fast].astype(np.int64), i2[fast].astype(np.int64),
                               need, np.ascontiguousarray(c[fast]), part)
        out[fast] = part
    slow = np.flatnonzero(~(has[i1] & has[i2]))
    if slow.size:
        keys = i1[slow] * qs.size + i2[slow]
        order = np.argsort(keys, kind="stable")
        parts = np.split(slow[order], np.flatnonzero(np.diff(keys[order])) + 1)
        with _progress(len(parts)) as bar:
            for j, part in enumerate(parts):
                start = time.perf_counter()
                out[part] = cross_moment(act, c[part], float(qs[i1[part[0]]]),
                                         float(qs[i2[part[0]]]))
                if j == 0 and len(parts) >= PROGRESS_PAIRS:
                    _warn_cost(act, len(parts), time.perf_counter() - start)
                bar.update()
    return out


#: Pairs of second moments on the two-dimensional rule from which a call logs its expected
#: cost and shows a progress bar (each pair is one 2-D quadrature, ~10-40 ms).
PROGRESS_PAIRS = 64


def _progress(total):
    from tqdm import tqdm
    return tqdm(total=total, desc="two-q 2-D rule", unit="pair of second moments",
                file=sys.stderr, disable=total < PROGRESS_PAIRS, leave=False)


def _warn_cost(act, pairs, first):
    logger.warning(
        f"{act.expr}: {pairs} distinct pairs of second moments (k11, k22) meet an activation "
        f"without an accepted Hermite series there (kinks, or coefficients that decay too "
        f"slowly), one two-dimensional rule each: expected "
        f"about {pairs * first:.0f} s (measured {first * 1e3:.0f} ms for the first). Kernels "
        f"on inputs meet such pairs wherever (input, position)s differ in second moment; "
        f"smooth activations (a series per moment) and positively homogeneous ones (the ReLU "
        f"family) avoid this route")


def _grid_moments(act, flat, q1, q2, dense):
    sides = (_Side(act, q1, dense), _Side(act, q2, dense))
    reach = _reach(act, sum(side.alpha for side in sides))
    return np.array([_cross(sides, float(v), reach) for v in flat])


def _reach(act, alpha):
    """Half-width of the u-range: the Gaussian weight beats phi's growth by 1e-22 there."""
    return 10.0 + 2.2 * act.base.growth * alpha


def _hermite(act, q):
    """Hermite coefficients ``b_n = E[phi(sqrt(q) z) He_n(z)] / sqrt(n!)``, or None.

    Mehler's formula gives ``Sigma12(c) = sum_n b_n(q1) b_n(q2) c^n``. Kept only for
    activations without breakpoints whose coefficients have decayed (weighted tail below
    1e-17) and satisfy Parseval, ``sum_n b_n^2 = Q(q)``, to 1e-14; the error of the
    truncated product is then below ``sqrt(tail(q1) tail(q2))`` by Cauchy-Schwarz.
    """
    cache = act.__dict__.setdefault("_two_q_hermite", {})
    if q not in cache:
        if len(cache) >= 64:
            cache.pop(next(iter(cache)))
        cache[q] = None if act.breakpoints else _hermite_coefficients(act, q)
    return cache[q]


def _hermite_coefficients(act, q):
    from . import q_map
    side = _Side(act, q, dense=False)
    reach = _reach(act, side.alpha) + 4.0   # psi_n reach |z| ~ 2 sqrt(n): weight to e^-z^2/4
    for size in _SERIES_SIZES:
        starts, widths = _panels(side.features, reach, min(1.0, 3.0 / math.sqrt(size)))
        z, w = _nodes(starts, widths, 20)
        coef = np.empty(size + 1)
        act.jit.hermite_project(np.ascontiguousarray(w * side(z)), z, size, coef)
        weighted = coef * coef * np.arange(size + 1.0) ** 2
        if weighted[3 * size // 4:].sum() <= 1e-17 * max(weighted.sum(), 1e-300):
            break
    else:
        return None
    energy = float(q_map(act, q))
    if not abs(float(np.dot(coef, coef)) - energy) <= _PARSEVAL_RTOL * energy:
        return None
    return coef


class _Side:
    """``f(u) = phi(sqrt(q) u)`` with its breakpoints and feature points in u."""

    def __init__(self, act, q, dense):
        root = math.sqrt(q)
        a, b = (float(v) for v in act.affine_params[:2])
        self.act, self.root = act, root
        self.alpha = abs(a) * root     # scale from u to the base activation's x
        self.kinks = np.asarray(act.breakpoints, dtype=np.float64) / root
        # A grid in the base activation's x (panels 2 wide where common activations have
        # complex singularities near the real axis), geometric far out (dense: 2 wide over
        # the whole range), mapped to u.
        xs = [np.arange(-24.0, 25.0, 2.0)]
        far, top = 24.0, self.alpha * _reach(act, self.alpha) + abs(b)
        if dense:
            xs.append(np.arange(-top - 2.0, top + 2.0, 2.0))
        # steep features (tanh(1e6 x)): points graded down to their width
        xs.append(np.array([y for f in features(act.base) for y in graded(
            f.x, f.scale, 1.0, 1e-15 * max(1.0, abs(f.x)))], dtype=np.float64))
        while far < top:
            far *= 1.5
            xs.append(np.array([far, -far]))
        grid = (np.concatenate(xs) - b) / a / root
        self.features = np.unique(np.concatenate([grid, self.kinks]))
        self.features = self.features[np.isfinite(self.features)]

    def __call__(self, u):
        return self.act(self.root * u)


def _panels(bounds, reach, width=_H):
    """Panels (starts, widths) on [-reach, reach], split at ``bounds``, at most ``width``."""
    edges = np.unique(np.clip(np.concatenate([bounds, [-reach, reach]]), -reach, reach))
    lengths = np.diff(edges)
    counts = np.maximum(1, np.ceil(lengths / width)).astype(int)
    starts = np.repeat(edges[:-1], counts)
    widths = np.repeat(lengths / counts, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return starts + widths * offsets, widths


def _nodes(starts, widths, n):
    gx, gw = gauss_legendre(n)
    z = starts[..., None] + widths[..., None] * (gx + 1.0) / 2.0
    w = widths[..., None] / 2.0 * gw * _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    return z.reshape(*z.shape[:-2], -1), w.reshape(*w.shape[:-2], -1)


def _cross(sides, c, reach):
    first, second = sides
    results = []
    if abs(c) == 1.0:
        starts, widths = _panels(np.concatenate([first.features, c * second.features]), reach)
        for n in _RULES:
            u, wu = _nodes(starts, widths, n)
            terms = wu * first(u) * second(c * u)
            results.append((terms.sum(), np.abs(terms).sum()))
        return _checked(results, c)
    s = math.sqrt((1.0 - c) * (1.0 + c))
    # only features the inner argument c u + s w (|u|, |w| <= reach) can meet
    near = second.features[np.abs(second.features) <= (abs(c) + s) * reach]
    outer = [first.features, np.arange(-reach, reach, _H)]
    if c != 0.0:
        graded = (second.kinks[:, None] + _GRADES * s).ravel()
        outer += [near / c, graded / c]
    starts, widths = _panels(np.concatenate(outer), reach)
    # Inner edges per outer node: a fixed grid plus the images (p - c u) / s of f2's features.
    grid = np.arange(-reach, reach + _H / 2, _H)
    per_node = (grid.size + near.size) * _RULES[0]
    if starts.size * _RULES[0] * per_node > _MAX_NODES:
        raise ConvergenceError(
            f"the two-q cross moment at c = {c!r} needs about "
            f"{starts.size * _RULES[0] * per_node:.1e} evaluations (the activation varies "
            f"on a scale far below the inputs' spread at q = {first.root ** 2:g}, "
            f"{second.root ** 2:g}); at most {_MAX_NODES:.0e} are spent")
    for n in _RULES:
        u, wu = _nodes(starts, widths, n)
        inner = np.empty_like(u)
        step = max(1, _CHUNK // per_node)   # bounded memory: outer nodes a block at a time
        for lo in range(0, u.size, step):
            block = u[lo:lo + step]
            images = (near[None, :] - c * block[:, None]) / s
            edges = np.sort(np.clip(np.concatenate(
                [np.broadcast_to(grid, (block.size, grid.size)), images], axis=1),
                -reach, reach), axis=1)
            w, ww = _nodes(edges[:, :-1], np.diff(edges, axis=1), n)
            inner[lo:lo + step] = (ww * second(c * block[:, None] + s * w)).sum(axis=1)
        terms = wu * first(u) * inner
        results.append((terms.sum(), np.abs(terms).sum()))
    return _checked(results, c)


def _checked(results, c):
    (fine, scale), (coarse, _) = results
    if not (math.isfinite(fine) and abs(fine - coarse) <= _ACCEPT * max(scale, 1e-300)):
        raise ConvergenceError(
            f"the two-q cross moment at c = {c!r} did not converge in float64 (16- and "
            f"12-point rules give {fine!r} and {coarse!r})")
    return fine
