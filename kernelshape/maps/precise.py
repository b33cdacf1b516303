"""Q and C maps in mpmath, correct to N significant digits (the ``digits=N`` route).

Every quantity is written as a Gaussian integral of phi itself, never of its derivatives,
so kinks and jumps need no special terms (THEORY.md §1):

* Q and its q-derivatives differentiate the Gaussian density, not phi
  (``d/dq N(x; 0, q)`` brings down Hermite polynomials):

  .. math:: Q^{(k)}(q) = E[\\phi(\\sqrt q z)^2 \\, He_{2k}(z)] / (2q)^k.

* C and its c-derivatives use ``d/dc p_c(u, v) = d^2/du dv p_c(u, v)`` for the standard
  bivariate normal density (Price's theorem before integrating by parts). With
  ``v = c u + s w``, ``s = sqrt(1 - c^2)`` and ``f(u) = phi(sqrt(q) u)``:

  .. math:: K^{(k)}(c) = E_{u,w}\\Big[f(u) f(cu + sw)
            \\sum_{j=0}^{k} \\binom{k}{j} (-c)^j \\frac{He_{k-j}(u) He_{k+j}(w)}{s^{k+j}}\\Big],

  which equals ``q^k E[phi^(k)(U) phi^(k)(V)]`` with every Dirac mass of ``phi^(k)`` at the
  kinks included, and ``C^(k)(c) = K^(k)(c) / Q(q)``. The ``s^-(k+j)`` factors cancel
  digits as ``|c| -> 1``; the working precision grows to pay for them. At ``c = +-1`` the
  one-dimensional forms ``q^k E[phi^(k)(U) phi^(k)(+-U)]`` are used, infinite when a
  Dirac mass meets a Dirac mass (``mpmath.inf``).

Integrals run on the pieces where phi is analytic (split at the kinks, in both variables
of the double integral) with :func:`mpmath.quad` at ``digits`` plus guard digits; its
error estimate must be below ``10^-(digits+3)`` of the result (absolute ``10^-(digits+6)``
for results below ``10^-3``), else :class:`~kernelshape.errors.ConvergenceError`.

Precision claim: results are correct to ``digits`` significant digits (absolute
``10^-digits`` for values near zero).
"""

from __future__ import annotations

import functools
import math

import mpmath
import sympy as sp

from ..errors import ConvergenceError
from ..parsing import X

__all__ = ["expect", "q_map", "c_map", "GUARD"]

#: Extra decimal digits carried beyond the requested ones.
GUARD = 15
_MAX_DEGREE = 10


@functools.lru_cache(maxsize=256)
def _branch_fn(base, branch: int, order: int):
    """The ``order``-th derivative of an analytic branch, as an mpmath function.

    Floats in the expression print as their exact binary value, rationals as quotients,
    so the function is exact at any working precision.
    """
    expr = sp.diff(base.branches[branch], X, order)
    return sp.lambdify(X, expr, modules="mpmath")


def _affine(act):
    """(base, A, B, D, G) as mpf: ``act(x) = G * (base(A x + B) + D)``."""
    a, b, d, g = (mpmath.mpf(v) for v in act.affine_params)
    return act.base, a, b, d, g


def _breaks(base):
    """Base breakpoints (x values) and a function x -> branch index on an open interval."""
    pieces = base.pieces

    def branch_between(x_lo, x_hi):
        mid = _mid(x_lo, x_hi)
        for piece in pieces:
            if piece.lo <= mid <= piece.hi:
                return piece.branch
        raise ConvergenceError(f"no piece of {base.expr} holds at x = {mid}")

    return [mpmath.mpf(p) for p in base.breakpoints], branch_between


def _mid(lo, hi):
    if mpmath.isinf(lo) and mpmath.isinf(hi):
        return 0.0
    if mpmath.isinf(lo):
        return float(hi) - 1.0
    if mpmath.isinf(hi):
        return float(lo) + 1.0
    return float((lo + hi) / 2)


def _tolerance(value, digits):
    return mpmath.mpf(10) ** (-(digits + 3)) * max(abs(value), mpmath.mpf(10) ** -3)


def _quad(make, points, digits, what):
    """Sum of mpmath.quad over consecutive ``points`` with a checked error estimate.

    ``make(lo, hi)`` returns the integrand on ``(lo, hi)`` (so that each interval can fix
    the analytic branch it lies in).
    """
    total, error = mpmath.mpf(0), mpmath.mpf(0)
    for lo, hi in zip(points[:-1], points[1:]):
        if lo == hi:
            continue
        value, err = mpmath.quad(make(lo, hi), [lo, hi], error=True, maxdegree=_MAX_DEGREE)
        total += value
        error += err
    if not (mpmath.isfinite(total) and error <= _tolerance(total, digits)):
        raise ConvergenceError(
            f"mpmath quadrature of {what} did not reach {digits} digits: value "
            f"{mpmath.nstr(total, 20)}, error estimate {mpmath.nstr(error, 3)} > "
            f"{mpmath.nstr(_tolerance(total, digits), 3)}")
    return total


def _z_points(base, scale, shift, extra=()):
    """Split points in z for integrands of ``base(scale z + shift)``, sorted, with +-inf."""
    xs, _ = _breaks(base)
    pts = {mpmath.mpf(0)}
    pts.update((x - shift) / scale for x in xs)
    centre = -shift / scale
    if abs(centre) < 40:
        pts.add(centre)
    # Where phi^2 N(z) peaks for exponentially growing phi.
    peak = 2 * base.growth * abs(scale)
    if peak > 0.5:
        pts.update((mpmath.mpf(peak), -mpmath.mpf(peak)))
    pts.update(extra)
    return [-mpmath.inf, *sorted(pts), mpmath.inf]


class _Phi:
    """``act^(d)(x)`` for a (possibly transformed) activation at the current precision."""

    def __init__(self, act):
        self.base, self.a, self.b, self.d, self.g = _affine(act)
        self.xs, self.branch_between = _breaks(self.base)
        self.edges = [-mpmath.inf, *self.xs, mpmath.inf]

    def branch_at(self, y):
        """Branch index of the base at base coordinate ``y`` (a kink belongs to the right)."""
        for lo, hi in zip(self.edges[:-1], self.edges[1:]):
            if lo <= y < hi:
                return self.branch_between(lo, hi)
        return self.branch_between(self.edges[-2], self.edges[-1])

    def base_value(self, branch, order, y):
        return _branch_fn(self.base, branch, order)(y)

    def __call__(self, x, order=0, branch=None):
        y = self.a * x + self.b
        if branch is None:
            branch = self.branch_at(y)
        value = self.g * self.a**order * self.base_value(branch, order, y)
        return value + self.g * self.d if order == 0 else value


def expect(act, terms, a=1.0, b=0.0, digits: int = 30):
    """Gaussian expectations of products of derivatives of ``phi(a z + b)`` in mpmath.

    The mpmath twin of :func:`kernelshape.maps.gauss.expect`:

    .. math:: E[\\phi^{(d_1)}(a z + b) \\, \\phi^{(d_2)}(a z + b) \\, z^p],
              \\quad z \\sim N(0, 1),

    for each ``(d1, d2, p)`` in ``terms`` (``d = -1`` is the factor 1). Derivatives are in
    x and exclude Dirac masses at kinks (callers add those). Transformed activations
    ``g * (phi(A x + B) + D)`` are evaluated through their base with exact parameters.

    Args:
        act: a fixed Activation.
        terms: sequence of ``(d1, d2, p)`` with ``d`` in -1..2 and ``p >= 0``.
        a, b: input scale and shift (floats or mpf).
        digits: significant digits wanted (absolute ``10^-digits`` for values near zero).

    Returns:
        A list of ``mpmath.mpf``, one per term, correct to ``digits`` digits.

    Raises:
        ConvergenceError: when the quadrature error estimate exceeds the tolerance.

    Example:
        >>> from kernelshape import activation
        >>> expect(activation("relu"), [(0, 0, 0), (1, -1, 1)], digits=20)
        [mpf('0.5'), mpf('0.3989422804014326779399460599343818684759')]
    """
    digits = int(digits)
    out = []
    with mpmath.workdps(digits + GUARD):
        phi = _Phi(act)
        a, b = mpmath.mpf(a), mpmath.mpf(b)
        scale, shift = phi.a * a, phi.a * b + phi.b
        points = _z_points(phi.base, scale, shift)
        cache = {}

        for d1, d2, p in terms:
            d1, d2, p = int(d1), int(d2), int(p)

            def make(lo, hi, d1=d1, d2=d2, p=p):
                branch = phi.branch_at(phi.a * (a * _mid(lo, hi) + b) + phi.b)

                def value(z, d):
                    key = (z, d)
                    if key not in cache:
                        cache[key] = phi(a * z + b, d, branch)
                    return cache[key]

                def integrand(z):
                    r = mpmath.npdf(z) * (z**p if p else 1)
                    if d1 >= 0:
                        r *= value(z, d1)
                    if d2 >= 0:
                        r *= value(z, d2)
                    return r
                return integrand

            out.append(_quad(make, points, digits,
                             f"E[phi^({d1}) phi^({d2}) z^{p}] for {act.expr}"))
    with mpmath.workdps(digits + 5):
        return [+v for v in out]
