"""Hermite (Mehler) expansion of the C map, in mpmath: an independent route to C, C', C''.

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
"""

from __future__ import annotations

import dataclasses
import functools

import mpmath

from . import precise

__all__ = ["HermiteSeries", "coefficients", "series"]


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
        points = {mpmath.mpf(0), -zmax, zmax} | {x / root for x in phi.xbreaks()}
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
