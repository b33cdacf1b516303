"""Hermite (Mehler) expansion of the C map: mpmath series with error bounds, and float64.

With ``a_n = E[phi(sqrt(q) z) He_n(z)] / sqrt(n!)`` (probabilists' Hermite polynomials,
``z ~ N(0, 1)``), Mehler's formula gives (THEORY.md §1)

.. math::

    K(c) = E[\\phi(U)\\phi(V)] = \\sum_{n \\ge 0} a_n^2 c^n, \\qquad
    K^{(k)}(c) = \\sum_{n \\ge k} \\frac{n!}{(n-k)!} a_n^2 c^{n-k},

and ``Q(q) = K(1) = sum a_n^2`` (Parseval). The truncation error after ``N`` terms is at
most ``|c|^(N+1-k) (K^(k)(1) - sum_{n<=N} n!/(n-k)! a_n^2)``, a bound computed from the
series itself and a one-dimensional integral, so a truncated series says how far it can be
off. Convergence is geometric for ``|c| < 1`` and as fast as the ``a_n`` decay at
``|c| = 1`` (fast for analytic phi, algebraic at kinks).

:func:`series` / :func:`coefficients` are the mpmath route (an independent check of C, C',
C''); :func:`float64_series` builds the float64 coefficient arrays that
:mod:`kernelshape.maps.fast` sums with :func:`power_series` for smooth activations.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import mpmath
import numpy as np

from . import precise

__all__ = ["HermiteSeries", "coefficients", "float64_series", "power_series", "projections",
           "series"]

#: Float64 series sizes tried in turn, and the largest one tried when the energy sits at
#: high indices (see :func:`float64_series`).
SERIES_SIZES = (96, 384, 1536)
SERIES_MAX = 24576
#: Parseval's identities must hold to this, relative to ``E[f^(k)^2] + Q``.
PARSEVAL_RTOL = 1e-14


@dataclasses.dataclass(frozen=True)
class HermiteSeries:
    """A truncated Hermite series of a C-map derivative.

    Attributes:
        value: the truncated sum ``K^(k)(c) / Q(q)`` (``C^(k)(c)``).
        bound: bound on ``|C^(k)(c) - value|`` from the Parseval tail (``inf`` if unknown).
        terms: number of coefficients used.
        digits: precision of the coefficients.
    """

    value: mpmath.mpf
    bound: mpmath.mpf
    terms: int
    digits: int


@functools.lru_cache(maxsize=32)
def _roots(n_max, dps):
    with mpmath.workdps(dps):
        return tuple((mpmath.sqrt(n), 1 / mpmath.sqrt(n + 1)) for n in range(n_max + 1))


def _hermite_functions(z, n_max):
    """``He_n(z) / sqrt(n!)`` for n = 0..n_max (stable normalized recurrence)."""
    roots = _roots(n_max, mpmath.mp.dps)
    out = [mpmath.mpf(1), z]
    for n in range(1, n_max):
        root_n, inv_next = roots[n]
        out.append((z * out[n] - root_n * out[n - 1]) * inv_next)
    return out[: n_max + 1]


@functools.lru_cache(maxsize=256)
def _coefficients(act, q, n_max, digits):
    with mpmath.workdps(digits + precise.GUARD):
        q = mpmath.mpf(q)
        phi = precise._Phi(act)
        root = mpmath.sqrt(q)
        # He_n(z) N(z) / sqrt(n!) decays like exp(-z^2/4), not exp(-z^2/2)
        zmax = (2 * phi.growth * abs(phi.A * root)
                + mpmath.sqrt(4 * mpmath.log(10) * (mpmath.mp.dps + 4)) + 2)
        points = {mpmath.mpf(0), -zmax, zmax} | {x / root for x in phi.xsplits()}
        points = sorted(p for p in points if -zmax <= p <= zmax)
        width = min(precise._panel_width(phi, root), 6 / mpmath.sqrt(n_max + 1))

        def make(lo, hi):
            branch = phi.branch_x(root * mpmath.mpf(precise._mid(lo, hi)))

            def fn(z):
                v = phi(root * z, 0, branch) * mpmath.npdf(z)
                return [v * h for h in _hermite_functions(z, n_max)]
            return fn

        q_val = precise._q_all(act, q, digits)[0]
        coeffs = precise._integrate_1d(
            make, points, width, digits,
            f"Hermite coefficients of {act.expr} at q = {mpmath.nstr(q, 8)}",
            lambda vals: mpmath.sqrt(q_val))
    return tuple(coeffs)


def coefficients(act, q=1.0, *, n_max: int = 60, digits: int = 30):
    """Hermite coefficients ``a_n = E[phi(sqrt(q) z) He_n(z)] / sqrt(n!)``, n = 0..n_max.

    Args:
        act: a fixed Activation.
        q: input second moment, ``q > 0``.
        n_max: highest index.
        digits: each ``a_n`` correct to absolute ``10^-digits sqrt(Q(q))``.

    Returns:
        A tuple of ``mpmath.mpf``.

    Example:
        >>> from kernelshape import activation
        >>> a = coefficients(activation("x**2"), n_max=3)   # x^2 = He_2 + He_0
        >>> [mpmath.nstr(mpmath.chop(v, 1e-30), 12) for v in a]
        ['1.0', '0.0', '1.41421356237', '0.0']
    """
    with mpmath.workdps(int(digits) + precise.GUARD):
        key = mpmath.mpf(q)
    return _coefficients(act, key, int(n_max), int(digits))


def series(act, c, q=1.0, *, order: int = 0, n_max: int = 60, digits: int = 30):
    """``C^(order)(c)`` from the first ``n_max + 1`` Hermite coefficients, with a bound.

    .. math:: C^{(k)}(c) = \\frac{1}{Q(q)} \\sum_{n=k}^{N} \\frac{n!}{(n-k)!} a_n^2 c^{n-k}
              + \\text{tail}, \\quad |\\text{tail}| \\le |c|^{N+1-k}
              \\frac{K^{(k)}(1) - \\sum_{n \\le N} \\frac{n!}{(n-k)!} a_n^2}{Q(q)}.

    Args:
        act: a fixed Activation.
        c: correlation in [-1, 1].
        q: input second moment.
        order: 0, 1 or 2.
        n_max: truncation index N.
        digits: precision of the coefficients and of ``K^(k)(1)``.

    Returns:
        :class:`HermiteSeries` (``bound`` is ``inf`` when ``K^(k)(1)`` is infinite and
        ``|c| = 1``).

    Example:
        >>> from kernelshape import activation
        >>> s = series(activation("sin"), 0.5, order=0, n_max=40, digits=30)
        >>> with mpmath.workdps(40):
        ...     abs(s.value - mpmath.sinh(0.5) / mpmath.sinh(1)) < 1e-25, s.bound < 1e-25
        (True, True)
    """
    a = coefficients(act, q, n_max=n_max, digits=digits)
    with mpmath.workdps(int(digits) + precise.GUARD):
        c = mpmath.mpf(c)
        weights = [mpmath.ff(n, order) for n in range(len(a))]
        total = mpmath.fsum(w * an * an * c ** (n - order)
                            for n, (w, an) in enumerate(zip(weights, a)) if n >= order)
        used = mpmath.fsum(w * an * an for w, an in zip(weights, a))
        q_val = precise.q_map(act, q, 0, digits)
        at_one = precise.c_map(act, 1, q, order, digits) * q_val
        if mpmath.isinf(at_one):
            bound = mpmath.inf if abs(c) == 1 else \
                _infinite_tail_bound(act, q, c, order, a, digits) / q_val
        else:
            bound = max(at_one - used, 0) * abs(c) ** (len(a) - order) / q_val
        return HermiteSeries(total / q_val, bound, len(a), int(digits))


def _infinite_tail_bound(act, q, c, order, a, digits):
    """Tail bound when ``K^(order)(1)`` diverges: uses ``K^(order-1)(1)`` (if finite)."""
    lower = precise.c_map(act, 1, q, order - 1, digits) * precise.q_map(act, q, 0, digits)
    if mpmath.isinf(lower) or order == 0:
        return mpmath.inf
    n = len(a)
    used = mpmath.fsum(mpmath.ff(m, order - 1) * am * am for m, am in enumerate(a))
    rest = max(lower - used, 0)
    # n!/(n-k)! |c|^(n-k) <= n!/(n-k+1)! * max_{m>=n} m |c|^(m-k) and m|c|^m decreases once
    # m > 1/log(1/|c|)
    r = abs(c)
    m0 = max(n, int(1 / -mpmath.log(r)) + 1) if r > 0 else n
    return rest * m0 * r ** (n - order) if m0 == n else rest * m0 * r ** max(0, n - order)


# -- float64 (the series route of kernelshape.maps.fast) ---------------------------------
def float64_series(prep):
    """Power-series coefficients of ``C^(k)(c)``, k = 0, 1, 2, in float64, or None.

    ``b_n = E[f(z) He_n(z)] / sqrt(n!)`` (:func:`projections` on ``prep.projection_rule``)
    for ``f(z) = phi(sqrt(q) z)`` of a smooth activation (``prep``: the per-(activation, q)
    data of :mod:`kernelshape.maps.fast`); ``C^(k)(c) = sum_n n!/(n-k)! b_n^2 c^(n-k) / Q``.
    The sizes of :data:`SERIES_SIZES` are tried in turn until the tail beyond 3/4 of the
    size holds less than 1e-17 of ``sum n^2 b_n^2``; when the energy sits at high indices
    and falls off faster than geometrically (sin at q = 1e3 or 1e4), one size past the mean
    index ``E[f''^2] / E[f'^2]`` (up to :data:`SERIES_MAX`). Kept only when Parseval's
    identities ``sum b_n^2 = E[f^2]``, ``sum n b_n^2 = E[f'^2]``, ``sum n(n-1) b_n^2 =
    E[f''^2]`` hold to :data:`PARSEVAL_RTOL` (this checks the series at c = 1, its worst
    point); coefficients below 1e-18 of the total are dropped from the top.

    Example:
        >>> from kernelshape import activation
        >>> from kernelshape.maps import fast
        >>> coefs = float64_series(fast.prepared(activation("x**2"), 1.0))  # x^2 = He_2 + 1
        >>> [round(float(v), 12) for v in coefs[0]]                       # (1 + 2 c^2) / 3
        [0.333333333333, 0.0, 0.666666666667]
    """
    if prep.kinks:
        return None
    energies = [prep.energy(k) for k in range(3)]
    sizes = list(SERIES_SIZES)
    for size in sizes:
        extended = size > SERIES_SIZES[-1]
        z, w, branch = prep.projection_rule(size)
        coef = projections(w * prep.r(0, z, branch), z, size)
        b2 = coef * coef
        n = np.arange(size + 1, dtype=np.float64)
        weighted = b2 * n * n
        if weighted[3 * size // 4:].sum() <= 1e-17 * max(weighted.sum(), 1e-300):
            break
        eighth = size // 8
        last, before = weighted[-eighth:].sum(), weighted[-2 * eighth:-eighth].sum()
        if not extended and (b2.sum() < 0.5 * prep.Q or last < 1e-6 * before):
            # The energy sits at high indices and the coefficients fall off faster than
            # geometrically (e.g. sin at q = 1e3 or 1e4): E[f''^2] / E[f'^2] estimates the
            # mean index; go straight to a size past it if that is within SERIES_MAX.
            mean = energies[2] / max(energies[1], 1e-300)
            need = 512 * math.ceil(4.0 / 3.0 * (mean + 12.0 * math.sqrt(mean) + 64.0) / 512)
            if SERIES_SIZES[-1] < need <= SERIES_MAX:
                sizes[sizes.index(size) + 1:] = [need]
    else:
        return None
    sums = [b2.sum(), (n * b2).sum(), (n * (n - 1) * b2).sum()]
    for k, (total, energy) in enumerate(zip(sums, energies)):
        if abs(total - energy) > PARSEVAL_RTOL * (energy + prep.Q):
            return None
    out = []
    falling = np.ones_like(n)
    for k in range(3):
        coefs = (falling * b2)[k:] / prep.Q
        keep = np.nonzero(np.cumsum(coefs[::-1])[::-1] > 1e-18 * coefs.sum())[0]
        out.append(np.ascontiguousarray(coefs[: keep[-1] + 1] if keep.size else coefs[:1]))
        falling = falling * (n - k)
    return out


def projections(fw, z, nmax):
    """``out[n] = sum_j fw[j] psi_n(z[j])``, n <= nmax, psi_n = He_n / sqrt(n!).

    With ``fw = weights * f(z)`` of a Gaussian rule: the Hermite coefficients
    ``E[f(z) He_n(z)] / sqrt(n!)``. The orthonormal recurrence ``psi_{n+1} = (z psi_n -
    sqrt(n) psi_{n-1}) / sqrt(n + 1)`` is stable and does not overflow where the weight is
    not negligible; each coefficient is a pairwise (numpy) sum over the nodes.

    Example:
        >>> z, w = np.polynomial.hermite_e.hermegauss(20)     # E[g] = sum(w g) / sqrt(2 pi)
        >>> b = projections(w / math.sqrt(2 * math.pi) * z**3, z, 4)   # z^3 = He_3 + 3 He_1
        >>> [round(float(v), 12) + 0.0 for v in b]            # 3 / sqrt(1!), 1 * sqrt(3!)
        [0.0, 3.0, 0.0, 2.449489742783, 0.0]
    """
    out = np.empty(nmax + 1)
    roots = np.sqrt(np.arange(nmax + 2, dtype=np.float64))
    keep = fw != 0.0
    fw, z = fw[keep], z[keep]
    previous, current = np.zeros_like(z), np.ones_like(z)
    for n in range(nmax + 1):
        out[n] = (fw * current).sum()
        previous, current = current, (z * current - roots[n] * previous) / roots[n + 1]
    return out


def power_series(c, coef):
    """``sum_n coef[n] c^n`` (Horner, vectorized over c) for non-negative ``coef`` and
    ``|c| <= 1``, dropping the terms beyond the first n with ``max|c|^n sum_{k >= n}
    coef[k] <= 1e-19 sum_k coef[k]`` (a bound on their sum).

    Example:
        >>> power_series(np.array([0.5, -1.0]), np.array([1.0, 2.0, 4.0]))
        array([3., 3.])
    """
    top = coef.shape[0]
    biggest = float(np.max(np.abs(c))) if c.size else 0.0
    if biggest < 1.0:
        suffix = np.cumsum(coef[::-1])[::-1]
        with np.errstate(under="ignore"):
            bound = biggest ** np.arange(top, dtype=np.float64) * suffix
        small = np.nonzero(bound <= 1e-19 * suffix[0])[0]
        top = int(small[0]) if small.size else top
    acc = np.zeros_like(c)
    for n in range(top - 1, -1, -1):
        acc *= c
        acc += coef[n]
    return acc
