# ruff: noqa: F821
"""Base kernels appended to every generated activation module (see ``kernelshape/_jit.py``).

Every ``kernelshape/_kernels/*.py`` file is such a template. Not imported directly: ``_jit.jit_module`` prepends ``import math``, ``import numpy as np``,
``from numba import njit``, ``_CACHE`` and the activation's ``_branch(k, d, x)`` to this text.
Kernels take and return plain floats and arrays. Pieces of the activation are given as
arrays ``lo, hi, br``: on ``lo[i] < x < hi[i]`` the activation is analytic branch ``br[i]``.
"""


@njit(cache=_CACHE)
def _softplus(u):
    if u > 0.0:
        return u + math.log1p(math.exp(-u))
    return math.log1p(math.exp(u))


@njit(cache=_CACHE)
def _one_plus_tanh(u):
    # 1 + tanh(u) = 2 / (1 + exp(-2u)), without cancellation for u << 0
    if u >= 0.0:
        return 2.0 / (1.0 + math.exp(-2.0 * u))
    e = math.exp(2.0 * u)
    return 2.0 * e / (1.0 + e)


@njit(cache=_CACHE)
def _piece_of(x, lo, hi):
    n = lo.shape[0]
    for i in range(n):
        if x < hi[i] or i == n - 1:
            return i
    return n - 1


@njit(cache=_CACHE)
def evaluate(xs, order, lo, hi, br):
    """phi^(order) at each x (derivatives of the branch holding there; right limit at kinks)."""
    out = np.empty(xs.shape[0])
    for j in range(xs.shape[0]):
        x = xs[j]
        if math.isnan(x):
            out[j] = math.nan
            continue
        i = _piece_of(x, lo, hi)
        out[j] = _branch(br[i], order, x)
    return out


@njit(cache=_CACHE)
def _z_intervals(a, b, lo, hi, zlo, zhi):
    """z-intervals (with their branch index into lo/hi) where x = a z + b stays in one piece."""
    n = lo.shape[0]
    starts = np.empty(n)
    ends = np.empty(n)
    idx = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        if a > 0.0:
            s = (lo[i] - b) / a
            e = (hi[i] - b) / a
        else:
            s = (hi[i] - b) / a
            e = (lo[i] - b) / a
        if s < zlo:
            s = zlo
        if e > zhi:
            e = zhi
        if e > s:
            starts[m] = s
            ends[m] = e
            idx[m] = i
            m += 1
    return starts[:m], ends[:m], idx[:m]


@njit(cache=_CACHE)
def expect_1d(a, b, lo, hi, br, terms, zlo, zhi, h, gx, gw, kx, kw, out, err, absout):
    """Gaussian expectations of products of derivatives of phi(a z + b), z ~ N(0, 1).

    ``terms[t] = (d1, d2, p)`` asks for ``E[phi^(d1)(a z + b) phi^(d2)(a z + b) z^p]`` over
    ``z`` in ``[zlo, zhi]``; ``d = -1`` stands for the factor 1. Each z-interval on which
    phi is one analytic branch is cut into panels of width <= h, integrated by the
    Gauss-Legendre rule (gx, gw) on [-1, 1]; ``err`` gets the difference to the coarser rule
    (kx, kw), an error estimate for the coarse rule and so a bound for the fine one;
    ``absout`` gets the expectation of the absolute value (the scale errors are judged by).
    """
    nt = terms.shape[0]
    for t in range(nt):
        out[t] = 0.0
        err[t] = 0.0
        absout[t] = 0.0
    starts, ends, idx = _z_intervals(a, b, lo, hi, zlo, zhi)
    inv_sqrt_2pi = 0.3989422804014327
    vals = np.zeros(4)
    acc_f = np.zeros(nt)
    acc_c = np.zeros(nt)
    for j in range(starts.shape[0]):
        k = br[idx[j]]
        length = ends[j] - starts[j]
        npanel = max(1, int(math.ceil(length / h)))
        width = length / npanel
        for pnl in range(npanel):
            z0 = starts[j] + pnl * width
            half = 0.5 * width
            mid = z0 + half
            for t in range(nt):
                acc_f[t] = 0.0
                acc_c[t] = 0.0
            for rule in range(2):
                nodes = gx if rule == 0 else kx
                weights = gw if rule == 0 else kw
                for q in range(nodes.shape[0]):
                    z = mid + half * nodes[q]
                    wq = weights[q] * half * inv_sqrt_2pi * math.exp(-0.5 * z * z)
                    if wq == 0.0:
                        continue
                    x = a * z + b
                    vals[0] = 1.0
                    vals[1] = _branch(k, 0, x)
                    vals[2] = _branch(k, 1, x)
                    vals[3] = _branch(k, 2, x)
                    for t in range(nt):
                        v = vals[terms[t, 0] + 1] * vals[terms[t, 1] + 1] * wq
                        p = terms[t, 2]
                        if p == 1:
                            v *= z
                        elif p > 1:
                            v *= z ** p
                        if rule == 0:
                            acc_f[t] += v
                            absout[t] += abs(v)
                        else:
                            acc_c[t] += v
            for t in range(nt):
                out[t] += acc_f[t]
                err[t] += abs(acc_f[t] - acc_c[t])
