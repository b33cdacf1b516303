"""mpmath quadrature foundations of the ``digits=N`` route: rules, activations, 1-D integrals.

Composite Gauss-Legendre rules at any precision (cached), the activation in mpmath with its
exact breakpoints (:class:`_Phi`), panel layouts wide enough for the activation's growth, and
the one-dimensional Gaussian integral done twice with two rules that must agree
(:func:`integrate_1d`, :func:`expect`). :mod:`kernelshape.maps.precise` builds the Q and C
maps on these.
"""

from __future__ import annotations

import functools
import itertools

import mpmath
import sympy as sp

from ..errors import ConvergenceError
from ..parsing import X
from ._features import features, graded

__all__ = ["GUARD", "expect"]

#: Extra decimal digits carried beyond the requested ones.
GUARD = 12
_MAX_REFINE = 3


# -- rules -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _gauss_legendre(n: int, dps: int):
    """n-point Gauss-Legendre nodes and weights on [-1, 1] at ``dps`` digits (cached)."""
    with mpmath.workdps(dps + 10):
        nodes = []
        for i in range(1, n // 2 + 1):
            x = mpmath.cos(mpmath.pi * (i - mpmath.mpf(1) / 4) / (n + mpmath.mpf(1) / 2))
            for _ in range(100):
                p0, p1 = mpmath.mpf(1), x
                for k in range(2, n + 1):
                    p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
                dp = n * (x * p1 - p0) / (x * x - 1)
                step = p1 / dp
                x -= step
                if abs(step) < mpmath.mpf(10) ** (-(dps + 8)):
                    break
            w = 2 / ((1 - x * x) * dp * dp)
            nodes += [(x, w), (-x, w)]
        if n % 2:
            p0, p1 = mpmath.mpf(1), mpmath.mpf(0)
            for k in range(2, n + 1):
                p0, p1 = p1, (-(k - 1) * p0) / k
            dp = n * (-p0) / (-1)
            nodes.append((mpmath.mpf(0), 2 / (dp * dp)))
    return tuple(sorted(nodes))


def _rules(dps: int):
    """Two Gauss-Legendre sizes per panel whose agreement vouches for ``dps`` digits."""
    n = max(12, int(0.62 * dps) + 6)
    return n, n - max(4, n // 6)


def _panels(points, width):
    """Split consecutive ``points`` into panels no wider than ``width``."""
    out = []
    for lo, hi in itertools.pairwise(points):
        if hi <= lo:
            continue
        m = max(1, int(mpmath.ceil((hi - lo) / width)))
        step = (hi - lo) / m
        out += [(lo + i * step, lo + (i + 1) * step if i + 1 < m else hi) for i in range(m)]
    return out


def _nodes(panels, n, dps):
    """(x, w, panel index) of the n-point rule on each panel."""
    rule = _gauss_legendre(n, dps)
    out = []
    for k, (lo, hi) in enumerate(panels):
        half, mid = (hi - lo) / 2, (hi + lo) / 2
        out += [(mid + half * x, half * w, k) for x, w in rule]
    return out


def _tol(value, scale, digits):
    """Acceptance threshold: 10^-(digits+3) relative, 10^-(digits+4) of ``scale`` near 0."""
    return mpmath.mpf(10) ** (-(digits + 3)) * max(abs(value), scale / 10)


# -- activations in mpmath ---------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def _branch_fn(base, branch: int, order: int):
    """``order``-th derivative of an analytic branch as an exact mpmath function.

    Floats print as their exact binary value and rationals as quotients under the mpmath
    printer, so the function is exact at any working precision.
    """
    expr = sp.diff(base.branches[branch], X, order)
    return sp.lambdify(X, expr, modules="mpmath")


@functools.lru_cache(maxsize=256)
def _exact_breakpoints(base):
    """Base breakpoints as sympy numbers (exact where sympy can solve the conditions)."""
    floats = list(base.breakpoints)
    exact = []
    try:
        folded = base._folded
        rels = set().union(*(c.atoms(sp.Rel) for _, c in folded.args)) \
            if isinstance(folded, sp.Piecewise) else set()
        for rel in rels:
            if isinstance(rel, (sp.Eq, sp.Ne)):
                continue
            sol = sp.solveset(rel.lhs - rel.rhs, X, sp.S.Reals)
            if isinstance(sol, sp.FiniteSet):
                exact += list(sol)
    except Exception:  # noqa: BLE001 - fall back to the float locations
        exact = []
    out = []
    for f in floats:
        near = [e for e in exact if abs(float(e) - f) <= 1e-12 * max(1.0, abs(f))]
        out.append(near[0] if near else sp.Float(f))
    return tuple(out)


class _Phi:
    """A (possibly transformed) activation ``G (base(A x + B) + D)`` at working precision."""

    def __init__(self, act):
        self.act = act
        self.base = act.base
        self.A, self.B, self.D, self.G = (mpmath.mpf(v) for v in act.affine_params)
        self.ybreaks = [mpmath.mpf(sp.N(e, mpmath.mp.dps + 5))
                        for e in _exact_breakpoints(self.base)]
        self.yedges = [-mpmath.inf, *self.ybreaks, mpmath.inf]
        pieces = self.base.pieces
        self.ybranch = []
        for lo, hi in zip(self.yedges[:-1], self.yedges[1:]):
            mid = _mid(lo, hi)
            self.ybranch.append(next(p.branch for p in pieces if p.lo <= mid <= p.hi))
        self.growth = self.base.growth
        self._fns = {}
        # steep features (tanh(1e6 x)): split points graded down to each one's width, or
        # to the working precision's resolution of y there
        floor = mpmath.mpf(10) ** -(mpmath.mp.dps + 2)
        self.features = [(mpmath.mpf(sp.N(f.location, mpmath.mp.dps + 5)),
                          mpmath.mpf(f.scale)) for f in features(self.base)]
        self.ysplits = [y for y0, scale in self.features
                        for y in graded(y0, scale, 1, floor * max(1, abs(y0)))]

    def xbreaks(self):
        """Breakpoints of the transformed activation in x."""
        return sorted((y - self.B) / self.A for y in self.ybreaks)

    def xsplits(self):
        """Breakpoints and graded points around steep features, in x: where panels end."""
        return sorted((y - self.B) / self.A for y in [*self.ybreaks, *self.ysplits])

    def xfeatures(self):
        """Centres of the steep features in x."""
        return [(y - self.B) / self.A for y, _ in self.features]

    def branch_x(self, x):
        """Branch index holding at x (points of an open interval: no ties)."""
        y = self.A * x + self.B
        for (lo, hi), br in zip(zip(self.yedges[:-1], self.yedges[1:]), self.ybranch):
            if lo <= y <= hi:
                return br
        return self.ybranch[-1]

    def fn(self, branch, order):
        """The base branch function (looked up once: hashing an Activation prints it)."""
        key = (branch, order)
        if key not in self._fns:
            self._fns[key] = _branch_fn(self.base, branch, order)
        return self._fns[key]

    def __call__(self, x, order=0, branch=None):
        if branch is None:
            branch = self.branch_x(x)
        value = self.G * self.A**order * self.fn(branch, order)(self.A * x + self.B)
        return value + self.G * self.D if order == 0 else value

    def jumps(self, order):
        """[(x, jump of phi^(order) at x)] over breakpoints, right minus left, exact-ish."""
        out = []
        for i, y in enumerate(self.ybreaks):
            left, right = self.ybranch[i], self.ybranch[i + 1]
            jump = self.fn(right, order)(y) - self.fn(left, order)(y)
            x = (y - self.B) / self.A
            # in x: d/dx = A d/dy; going right in x goes left in y when A < 0
            jump = self.G * self.A**order * jump * (1 if self.A > 0 else -1)
            out.append((x, jump))
        return out


def _mid(lo, hi):
    if mpmath.isinf(lo) and mpmath.isinf(hi):
        return 0.0
    if mpmath.isinf(lo):
        return float(hi) - 1.0
    if mpmath.isinf(hi):
        return float(lo) + 1.0
    return float((lo + hi) / 2)


def _half_width(phi, scale, dps):
    """z beyond which ``phi(scale z)^2 z^4 N(z)`` is below 10^-dps of its scale."""
    tail = mpmath.sqrt(2 * mpmath.log(10) * (dps + 4)) + 2
    return 2 * phi.growth * abs(phi.A * scale) + tail


def _z_points(phi, scale, extra=()):
    """Split points in z for integrands of ``phi(scale z)``: kinks, 0 and ``extra``."""
    zmax = _half_width(phi, scale, mpmath.mp.dps)
    pts = {mpmath.mpf(0), -zmax, zmax}
    pts.update(x / scale for x in phi.xsplits())
    pts.update(extra)
    return sorted(p for p in pts if -zmax <= p <= zmax)


# -- one-dimensional -----------------------------------------------------------------------
def _integrate_1d(make, points, width, digits, what, scale_of=None):
    """Vector integrals ``sum_i w_i F(z_i)`` on panels; ``make(lo, hi)`` gives F there.

    Runs two Gauss-Legendre rules and, if they disagree, halves the panels (up to
    ``_MAX_REFINE`` times): every panel, also those between close split points.
    """
    dps = mpmath.mp.dps
    for level in range(_MAX_REFINE + 1):
        if level:
            points = _bisected(points)
        panels = _panels(points, width)
        results = []
        for n in _rules(dps):
            total = None
            for (lo, hi) in panels:
                fn = make(lo, hi)
                half, mid = (hi - lo) / 2, (hi + lo) / 2
                for x, w in _gauss_legendre(n, dps):
                    vals = fn(mid + half * x)
                    if total is None:
                        total = [mpmath.mpf(0)] * len(vals)
                    wh = w * half
                    total = [t + wh * v for t, v in zip(total, vals)]
            results.append(total)
        fine, coarse = results
        scale = scale_of(fine) if scale_of else max(abs(v) for v in fine)
        if all(abs(a - b) <= _tol(a, scale, digits) for a, b in zip(fine, coarse)):
            return fine
        width /= 2
    raise ConvergenceError(
        f"mpmath quadrature of {what} did not reach {digits} digits: two rules give "
        f"{[mpmath.nstr(v, 15) for v in fine]} and {[mpmath.nstr(v, 15) for v in coarse]}")


def _bisected(points):
    """``points`` with the midpoint of every gap added (a refinement that also halves the
    panels between close split points, which a smaller panel width leaves alone)."""
    points = sorted(points)
    return sorted(set(points) | {(a + b) / 2 for a, b in itertools.pairwise(points)})


def _panel_width(phi, scale):
    return mpmath.mpf(1) / max(1, abs(phi.A * scale))


def expect(act, terms, a=1.0, b=0.0, digits: int = 30):
    """Gaussian expectations of products of derivatives of ``phi(a z + b)`` in mpmath.

    The mpmath twin of :func:`kernelshape.maps.gauss.expect`:

    .. math:: E[\\phi^{(d_1)}(a z + b) \\, \\phi^{(d_2)}(a z + b) \\, z^p],
              \\quad z \\sim N(0, 1),

    for each ``(d1, d2, p)`` in ``terms`` (``d = -1`` is the factor 1). Derivatives are in
    x and exclude Dirac masses at kinks (callers add those). Transformed activations
    ``g (phi(A x + B) + D)`` are evaluated through their base with exact parameters.

    Args:
        act: a fixed Activation.
        terms: sequence of ``(d1, d2, p)`` with ``d`` in -1..2 and ``p >= 0``.
        a, b: input scale and shift (floats or mpf).
        digits: significant digits wanted (absolute ``10^-digits`` near zero).

    Returns:
        A list of ``mpmath.mpf``, one per term, correct to ``digits`` digits.

    Raises:
        ConvergenceError: when two quadrature rules disagree after refinement.

    Example:
        >>> from kernelshape import activation
        >>> [mpmath.nstr(v, 20) for v in expect(activation("relu"), [(0, 0, 0), (1, -1, 1)])]
        ['0.5', '0.39894228040143267794']
    """
    digits = int(digits)
    terms = [tuple(int(v) for v in t) for t in terms]
    with mpmath.workdps(digits + GUARD):
        phi = _Phi(act)
        a, b = mpmath.mpf(a), mpmath.mpf(b)
        zmax = _half_width(phi, abs(a) + abs(b), mpmath.mp.dps)
        points = {mpmath.mpf(0), -zmax, zmax} | {(x - b) / a for x in phi.xsplits()}
        if abs(b / a) < zmax:
            points.add(-b / a)
        points = sorted(p for p in points if -zmax <= p <= zmax)
        orders = sorted({d for t in terms for d in t[:2] if d >= 0})

        def make(lo, hi):
            branch = phi.branch_x(a * mpmath.mpf(_mid(lo, hi)) + b)

            def fn(z):
                x = a * z + b
                vals = {d: phi(x, d, branch) for d in orders}
                vals[-1] = 1
                g = mpmath.npdf(z)
                return [g * vals[d1] * vals[d2] * (z**p if p else 1) for d1, d2, p in terms]
            return fn

        out = _integrate_1d(make, points, _panel_width(phi, a), digits,
                            f"Gaussian expectations {terms} of {act.expr}")
    return out


