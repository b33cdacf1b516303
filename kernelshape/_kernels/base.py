# ruff: noqa: F821
"""Base kernels appended to every generated activation module (see ``kernelshape/_jit.py``).

Every ``kernelshape/_kernels/*.py`` file is such a template. Not imported directly:
``_jit.module_source`` prepends ``import math``, ``import numpy as np``,
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
