"""One-dimensional Gaussian expectations of an activation, in float64, split at kinks.

Two views of the same quadrature, ``z ~ N(0, 1)``, ``x = a z + b``:

* :class:`Moments` ``(terms, a, b, s)`` gives ``E[(phi(x)+s)^e0 phi'(x)^e1 phi''(x)^e2 z^ez]``
  (the output shift ``s`` applied at every node, so centred moments carry no cancellation);
  :func:`expect` is its convenience form for products of two derivatives.
* :meth:`Moments.frame` gives the node values the DKS/TAT/EOC solvers build their
  conditions and analytic Jacobians from: ``phi'``, ``phi''`` and the difference quotient
  ``u = (phi(x) - phi(b)) / a`` with its derivatives in ``a`` and ``b``, plus the Dirac
  masses of ``phi''`` at kinks. For small ``a`` (and no kink within reach) ``u`` comes from
  ``u = z * int_0^1 phi'(b + t a z) dt`` (Gauss-Legendre in ``t``) instead of the difference,
  so ``Var[phi] = a^2 Var[u]`` and ``C'(1) = E[phi'^2] / Var[u]`` keep all their digits as
  ``a -> 0`` (where ``phi(x) - phi(b)`` would cancel).

Both use composite Gauss-Legendre rules on each interval where phi is one analytic branch
(so kinks cost nothing in accuracy), on ``|z| <= 12 + 2.2 |a| growth``, 24 points per panel
with a 16-point rule alongside as the error estimate; panels are ``3 / 2^level`` wide (over
``|a|`` when ``|a| > 1``). Branches are evaluated with numpy (:mod:`kernelshape.maps._vector`,
phi, phi', phi'' in one pass), so the solvers never touch numba. Node layouts of the
panels are memoized (a pure function of the interval and panel count).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from ..errors import ConvergenceError

__all__ = ["Frame", "Moments", "expect", "gauss_legendre", "terms_array"]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
#: Points per panel of the accepted rule and of the embedded error estimate.
FINE, COARSE = 24, 16
#: Panel width in z at refinement level 0 (halved per level).
H0 = 3.0
#: Largest number of refinement levels.
MAX_LEVEL = 10
#: Base-coordinate input scale below which :meth:`Moments.frame` integrates phi' in t
#: (halved per level), and the t-rule sizes (fine, coarse).
A_SMALL = 0.02
T_POINTS = (12, 8)


@functools.cache
def gauss_legendre(n: int):
    """Nodes and weights of the n-point Gauss-Legendre rule on [-1, 1] (cached)."""
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


@functools.cache
def _unit_t_rule(n):
    x, w = gauss_legendre(n)
    return 0.5 * (x + 1.0), 0.5 * w


@functools.lru_cache(maxsize=512)
def _panels(z_lo, z_hi, n, points):
    """Nodes and Gaussian-weighted weights of ``n`` equal panels on ``[z_lo, z_hi]``."""
    gx, gw = gauss_legendre(points)
    width = (z_hi - z_lo) / n
    z = (z_lo + width * (np.arange(n)[:, None] + 0.5 + 0.5 * gx[None, :])).ravel()
    w = np.tile((0.5 * width * _INV_SQRT_2PI) * gw, n) * np.exp(-0.5 * z * z)
    z.flags.writeable = False
    w.flags.writeable = False
    return z, w


class Frame:
    """Node values of one rule at ``(a, b)`` in the activation's own coordinates.

    Attributes:
        z, w: nodes and weights (``sum(w * g(z)) ~ E[g(z)]``).
        u, ua, ub: ``u = (phi(a z + b) - phi(b)) / a`` and its partial derivatives in
            ``a`` and ``b``.
        f1, f2: ``phi'(x)``, ``phi''(x)`` (smooth parts; see ``diracs``).
        pb, p1b: ``phi(b)``, ``phi'(b)``.
        diracs: ``(z_k, omega_k, u_k, m_k)`` per kink of order 1 in reach: ``phi''`` holds
            the mass ``omega_k`` (``= jump of phi' * pdf(z_k) / |a|``) at ``z = z_k``, where
            ``u = u_k`` and ``m_k`` is the mean of the one-sided ``phi'``.
        small: True when ``u`` came from the t-integral (small input scale).
    """

    __slots__ = ("diracs", "f1", "f2", "p1b", "pb", "small", "u", "ua", "ub", "w", "z")


class Moments:
    """Float64 Gaussian expectations of ``phi(a z + b)`` and its derivatives.

    ``act`` may itself be a transformed activation ``G (phi0(A x + B) + D)``: the branches of
    ``phi0`` are used and the factors folded in.
    """

    def __init__(self, act):
        from ._features import features, graded
        from ._vector import fused_branches
        self.act = act
        self.A, self.B, self.D, self.G = (float(v) for v in act.affine_params)
        base = act.base
        self.pieces = [(p.lo, p.hi, p.branch) for p in base.pieces]
        self.fns = fused_branches(act)
        self.growth = base.growth
        self.zero_branches = {k for k, branch in enumerate(base.branches) if branch == 0}
        self.splits = [y for f in features(base)
                       for y in graded(f.x, f.scale, 1.0, 1e-15 * max(1.0, abs(f.x)))]
        self.kinks = []
        for k in base.kinks:
            if k.order != 1:
                continue
            right = self._branch_at(k.location, right=True)
            with np.errstate(all="ignore"):
                value, slope = (float(v[0]) for v in right(np.array([k.location]))[:2])
            self.kinks.append((k.location, k.jumps[1], value, slope - 0.5 * k.jumps[1]))

    def _branch_at(self, x, *, right=False):
        for lo, hi, k in self.pieces:
            if (lo <= x < hi) if right else (lo < x <= hi):
                return self.fns[k]
        return self.fns[self.pieces[-1][2] if x > 0 else self.pieces[0][2]]

    def derivatives(self, x):
        """``(phi(x), phi'(x), phi''(x))`` at one point (float64; the left branch at a
        breakpoint)."""
        A, B, G = self.A, self.B, self.G
        x0 = A * x + B
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            f0, f1, f2 = (float(v[0]) for v in self._branch_at(x0)(np.array([x0])))
        return G * (f0 + self.D), G * A * f1, G * A * A * f2

    def difference(self, x1, x2):
        """``phi(x2) - phi(x1)``, without cancellation when the points are close: as
        ``(x2 - x1) * int_0^1 phi'(x1 + t (x2 - x1)) dt`` (6-point Gauss-Legendre, exact
        to rounding) when both lie on one analytic piece within 1e-2 of each other (base
        coordinates); else the plain difference."""
        A, G = self.A, self.G
        y1, y2 = A * x1 + self.B, A * x2 + self.B
        fn = self._branch_at(y1)
        lo, hi = sorted((y1, y2))
        with np.errstate(all="ignore"):
            if hi - lo <= 1e-2 and fn is self._branch_at(y2) and not any(
                    lo < edge < hi for p in self.pieces for edge in p[:2]):
                t, tw = _unit_t_rule(6)
                return G * (y2 - y1) * float(tw @ fn(y1 + t * (y2 - y1))[1])
            if fn is self._branch_at(y2):
                v = fn(np.array([y1, y2]))[0]
                return G * (float(v[1]) - float(v[0]))
            return self.derivatives(x2)[0] - self.derivatives(x1)[0]

    # -- node layouts --------------------------------------------------------------------
    def _t_max(self, a0, b0):
        """Half-width of the z-range: the Gaussian's 12 plus the activation's growth, and,
        when ``x = b0`` lies on a piece where phi is identically 0 (relu(0.3 z - 3)), out to
        12 beyond that piece's nearest edge, where all of the mass is."""
        t = 12.0 + 2.2 * abs(a0) * self.growth
        for lo, hi, k in self.pieces:
            if lo < b0 <= hi and k in self.zero_branches:
                edges = [abs((e - b0) / a0) for e in (lo, hi) if math.isfinite(e)]
                if edges:
                    t = max(t, min(edges) + t)
                break
        return float(math.ceil(t))

    def _layout(self, a0, b0, level, points):
        """``[(branch, z, w), ...]`` over the pieces phi takes on ``|z| <= t_max``; panels
        also end on points graded towards each steep feature (``tanh(1e4 x)``), down to
        its width (:mod:`kernelshape.maps._features`)."""
        t_max = self._t_max(a0, b0)
        h = H0 / 2.0 ** level / max(abs(a0), 1.0)
        cuts = sorted(((y - b0) / a0 for y in self.splits), key=float)
        out = []
        for lo, hi, k in self.pieces:
            z_lo, z_hi = sorted(((lo - b0) / a0, (hi - b0) / a0))
            z_lo, z_hi = max(z_lo, -t_max), min(z_hi, t_max)
            if not z_hi > z_lo:
                continue
            ends = [z_lo, *(z for z in cuts if z_lo < z < z_hi), z_hi]
            for a, b in itertools.pairwise(ends):
                out.append((k, *_panels(a, b, max(1, math.ceil((b - a) / h)), points)))
        if len(out) > 1 and len(self.pieces) == 1:
            k = out[0][0]
            out = [(k, np.concatenate([o[1] for o in out]), np.concatenate([o[2] for o in out]))]
        return out

    def _evaluate(self, layout, a0, b0):
        """``z, w, f0, f1, f2`` over the layout (base coordinates)."""
        if len(layout) == 1:
            k, z, w = layout[0]
            return (z, w, *self.fns[k](a0 * z + b0))
        parts = [(z, w, *self.fns[k](a0 * z + b0)) for k, z, w in layout]
        return tuple(np.concatenate(col) for col in zip(*parts))

    # -- solver view ---------------------------------------------------------------------
    def frame(self, a, b, *, level=0, coarse=False, gradients=True):
        """Node values at ``(a, b)`` for the solvers (see :class:`Frame`).

        ``coarse`` selects the 16-point panel rule (and an 8-point t-rule): comparing a
        quantity between the two rules estimates the error of the fine one. Without
        ``gradients``, ``ua`` and ``ub`` are None (a cheaper frame for values only).
        """
        # overflow in a branch far out (cosh, exp) is harmless there: 1/inf -> 0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return self._frame(a, b, level, coarse, gradients)

    def _frame(self, a, b, level, coarse, gradients):
        A, B, G = self.A, self.B, self.G
        a0, b0 = A * a, A * b + B
        points, t_points = (COARSE, T_POINTS[1]) if coarse else (FINE, T_POINTS[0])
        layout = self._layout(a0, b0, level, points)
        home = self._branch_at(b0)
        if len(layout) == 1 and self.fns[layout[0][0]] is home:
            # phi(b) and phi'(b) ride along as one more node of the same branch
            _, z, w = layout[0]
            x = np.empty(z.shape[0] + 1)
            np.multiply(z, a0, out=x[:-1])
            x[:-1] += b0
            x[-1] = b0
            f0, f1, f2 = home(x)
            pb, p1b = float(f0[-1]), float(f1[-1])
            f0, f1, f2 = f0[:-1], f1[:-1], f2[:-1]
        else:
            z, w, f0, f1, f2 = self._evaluate(layout, a0, b0)
            pb, p1b = (float(v[0]) for v in home(np.array([b0]))[:2])
        reach = self._t_max(a0, b0) * abs(a0)
        small = abs(a0) <= A_SMALL / 2.0 ** level and not any(
            b0 - reach < edge < b0 + reach for lo, hi, _ in self.pieces for edge in (lo, hi))
        fr = Frame()
        if small:
            t, tw = _unit_t_rule(t_points)
            _, g1, g2 = home(b0 + t[:, None] * (a0 * z)[None, :])
            u = z * (tw @ g1)
            ub = z * (tw @ g2) if gradients else None
            ua = z * z * ((tw * t) @ g2) if gradients else None
        else:
            u = (f0 - pb) / a0
            ua = (z * f1 - u) / a0 if gradients else None
            ub = (f1 - p1b) / a0 if gradients else None
        diracs = []
        for x0, jump, value, mean in self.kinks:
            zk = (x0 - b0) / a0
            if abs(zk) <= self._t_max(a0, b0):
                omega = jump * math.exp(-0.5 * zk * zk) * _INV_SQRT_2PI / abs(a0)
                diracs.append((zk, omega, (value - pb) / a0, mean))
        if (A, G) != (1.0, 1.0):
            ga, ga2 = G * A, G * A * A
            u, f1, f2 = ga * u, ga * f1, ga2 * f2
            if gradients:
                ua, ub = ga2 * ua, ga2 * ub
            # the act's phi' jumps by G |A| jump at x_k, and |a| = |a0| / |A|
            diracs = [(zk, G * A * A * om, ga * uk, ga * m)
                      for zk, om, uk, m in diracs]
        fr.z, fr.w, fr.u, fr.ua, fr.ub, fr.f1, fr.f2 = z, w, u, ua, ub, f1, f2
        fr.pb = G * (pb + self.D)
        fr.p1b = G * A * p1b
        fr.diracs = diracs
        fr.small = small
        return fr

    # -- moments by exponents ------------------------------------------------------------
    def _integrate(self, terms, a0, b0, s0, level, points):
        z, w, f0, f1, f2 = self._evaluate(self._layout(a0, b0, level, points), a0, b0)
        p0 = _powers(f0 + s0, terms[:, 0].max())
        p1 = _powers(f1, terms[:, 1].max())
        p2 = _powers(f2, terms[:, 2].max())
        pz = _powers(z, terms[:, 3].max())
        v = p0[terms[:, 0]] * p1[terms[:, 1]] * p2[terms[:, 2]] * pz[terms[:, 3]]
        return v @ w, np.abs(v) @ w

    def __call__(self, terms, a, b, s=0.0, *, check=True, rtol=1e-10):
        """``E[(phi(x)+s)^e0 phi'(x)^e1 phi''(x)^e2 z^ez]`` for ``terms`` (int64 rows).

        With ``check``, the panels are refined from level 0 until the 16-point rule agrees
        with the 24-point one to ``rtol`` times the integral of the absolute integrand
        (ConvergenceError after MAX_LEVEL levels). Each call starts from level 0, so the
        result depends only on the arguments.
        """
        A, B, D, G = self.A, self.B, self.D, self.G
        a0, b0 = A * a, A * b + B
        s0 = D + s / G
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for level in range(MAX_LEVEL + 1):
                out, absout = self._integrate(terms, a0, b0, s0, level, FINE)
                if not check or not np.all(np.isfinite(out)):
                    break
                coarse, _ = self._integrate(terms, a0, b0, s0, level, COARSE)
                if np.all(np.abs(out - coarse) <= rtol * absout + 1e-300):
                    break
            else:
                raise ConvergenceError(
                    f"Gaussian quadrature for {self.act.expr} at input_scale={a!r}, "
                    f"input_shift={b!r} did not converge")
        if (A, G) != (1.0, 1.0):
            factor = (G ** (terms[:, 0] + terms[:, 1] + terms[:, 2])
                      * A ** (terms[:, 1] + 2 * terms[:, 2]))
            out = out * factor
        return out


def moments_of(act):
    """The :class:`Moments` of ``act``, built once per activation object (set-up only: the
    branch functions, pieces and kinks; no results are kept)."""
    moments = act.__dict__.get("_moments")
    if moments is None:
        moments = act.__dict__["_moments"] = Moments(act)
    return moments


def _powers(v, emax):
    """Rows ``v^0, v^1, ..., v^emax`` as a 2-D array."""
    out = np.empty((int(emax) + 1, v.shape[0]))
    out[0] = 1.0
    for e in range(1, int(emax) + 1):
        out[e] = out[e - 1] * v
    return out


def terms_array(rows):
    """Rows ``(e0, e1, e2, ez)`` as an int64 array, plus a row -> index map."""
    arr = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).reshape(-1, 4))
    return arr, {tuple(int(v) for v in row): i for i, row in enumerate(arr)}


def expect(act, terms, a: float = 1.0, b: float = 0.0):
    """Gaussian expectations of products of derivatives of ``phi(a z + b)``.

    Args:
        act: a fixed :class:`~kernelshape.activations.Activation` (transformed ones are
            reduced to their base, output shift applied at every node).
        terms: sequence of ``(d1, d2, p)``: ``E[phi^(d1)(x) phi^(d2)(x) z^p]`` with
            ``x = a z + b``; ``d = -1`` stands for the factor 1. Derivatives are in x and
            exclude Dirac masses at kinks (callers add those).
        a, b: input scale and shift.

    Returns:
        float64 array, about 1e-15 relative to ``E[|integrand|]`` (the embedded 16-point
        rule agrees with the 24-point one to 1e-10 of it; ConvergenceError otherwise).

    Example:
        >>> from kernelshape import activation
        >>> round(float(expect(activation("relu"), [(0, 0, 0)])[0]), 15)   # E[relu(z)^2]
        0.5
    """
    rows = []
    for d1, d2, p in np.asarray(terms, dtype=np.int64).reshape(-1, 3):
        counts = [0, 0, 0]
        for d in (d1, d2):
            if d >= 0:
                counts[int(d)] += 1
        rows.append((*counts, int(p)))
    return moments_of(act)(terms_array(rows)[0], float(a), float(b))
