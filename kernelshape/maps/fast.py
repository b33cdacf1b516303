"""Q and C maps in float64: the default fast path (THEORY.md §1).

Everything is computed in standardized coordinates ``f(u) = phi(sqrt(q) u)``; for a
transformed activation ``g (phi(a x + b) + d)`` the kernels get ``alpha = a sqrt(q)``,
``beta = b`` and fold ``(d, g)`` in pointwise (so ``phi + d`` never cancels against an
expanded ``d^2``), sharing the base activation's compiled numba module.

Routes, chosen per (activation, q) and cached on the activation:

* **Q, Q', Q''**: one-dimensional composite Gauss-Legendre quadrature split at the kinks,
  differentiating the Gaussian density rather than phi (no Dirac terms, exact for jumps):
  ``Q^(k)(q) = E[phi(sqrt q z)^2 He_2k(z)] / (2 q)^k``. An embedded coarser rule gives an
  error estimate; failure raises :class:`~kernelshape.errors.ConvergenceError`.
* **C^(k) at c = +-1**: one-dimensional integrals ``E[f^(k)(U) f^(k)(+-U)] / Q`` with the
  Dirac masses of ``f^(k)`` at kinks added (``inf`` where two masses meet, e.g. ``C''(1)``
  of ReLU); ``C(1) = 1`` exactly.
* **Positively homogeneous piecewise-linear activations** (ReLU, leaky ReLU, unshifted):
  the closed form ``K(c) = s_l s_r c + (s_r - s_l)^2 R(c) / (2 pi)``,
  ``R(c) = sqrt(1 - c^2) + c arccos(-c)`` (series near ``c = -1`` where it cancels).
* **Smooth activations**: the Hermite series ``C(c) = sum_n b_n^2 c^n / Q``,
  ``b_n = E[f(z) He_n(z)] / sqrt(n!)``, coefficients from one 1-D quadrature, kept only when
  the tail is below 1e-19 and Parseval's identities ``sum b_n^2 = E[f^2]``,
  ``sum n b_n^2 = E[f'^2]``, ``sum n(n-1) b_n^2 = E[f''^2]`` hold to 1e-14 (this checks the
  series at c = 1, its worst point).
* **Everything else** (kinks, jumps, slowly converging series): a two-dimensional
  Gauss-Legendre rule (numba, ``kernelshape/_kernels/cmap.py``) with ``V = c U + s W``,
  split at the kinks in both variables and graded around the kinks' images as
  ``|c| -> 1``; Dirac masses of ``f''`` (kinks) or ``f'`` (jumps) contribute the bivariate
  normal density at the kinks and conditional expectations.

Precision: about 1e-14 relative (1e-16 absolute for values near zero) on every route for
well-conditioned inputs, checked against 40-digit mpmath in the tests. A transformed
activation whose output shift ``d`` nearly cancels ``phi`` (``|phi(b)| >> a |phi'(b)|``)
inherits float64's rounding of ``phi`` relative to its variation.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConvergenceError, UnsupportedError
from .gauss import gauss_legendre

__all__ = ["c_map", "prepared", "q_map"]

_GL_2D = 16          # nodes per panel of the 2-D rule
_H_2D = 2.0          # panel width (u and w) of the 2-D rule
_GL_1D, _GL_1D_COARSE = 20, 14
_H_1D = 1.0
_X_DENSE = 24.0      # |x| below which base-coordinate panels are at most 2 wide
_SERIES_SIZES = (96, 384, 1536)
_PARSEVAL_RTOL = 1e-14
_ACCEPT_1D = 1e-11   # accepted distance fine vs coarse 1-D rule, relative to E|integrand|
_CACHE_SIZE = 32
#: Arrays with at least this many interior c values of a kinked activation use the theta
#: interpolant of the 2-D rule (built once per activation, q and order) instead of the rule.
_INTERP_MIN = 256
_CHEB_N = 24
_CHEB_DEPTH = 6
_CHEB_TOL = 2e-15
_INV_SQRT_2PI = 0.3989422804014327


def prepared(act, q: float) -> _Prepared:
    """The cached per-(activation, q) precomputation (kept on the activation object)."""
    cache = act.__dict__.setdefault("_fast_maps", {})
    key = float(q)
    prep = cache.get(key)
    if prep is None:
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        prep = cache[key] = _Prepared(act, key)
    return prep


def q_map(act, q: np.ndarray, order: int) -> np.ndarray:
    """Q^(order) at each (validated, positive) q; float64 array of q's shape."""
    flat = q.ravel()
    out = np.array([prepared(act, v).q_derivative(order) for v in flat])
    return out.reshape(q.shape)


def c_map(act, c: np.ndarray, q: float, order: int) -> np.ndarray:
    """C^(order) at each (validated) c in [-1, 1] at input q; float64 array of c's shape."""
    prep = prepared(act, q)
    flat = np.ascontiguousarray(c, dtype=np.float64).ravel()
    out = np.empty_like(flat)
    top, bottom = flat == 1.0, flat == -1.0
    inside = ~(top | bottom)
    if top.any():
        out[top] = prep.at_plus_one(order)
    if bottom.any():
        out[bottom] = prep.at_minus_one(order)
    if inside.any():
        out[inside] = prep.interior(flat[inside], order)
    if np.isnan(out).any():
        raise ConvergenceError(
            f"the float64 C map of {act.expr} at q = {q:g} produced NaN at "
            f"c = {flat[np.isnan(out)][:5]}; use digits=N for these values")
    return out.reshape(c.shape)


class _Prepared:
    """Per-(activation, q) data: coordinates, kinks, quadrature rules, Q, series."""

    def __init__(self, act, q):
        a, b, d, g = (float(v) for v in act.affine_params)
        base = act.base
        self.expr, self.q = act.expr, q
        self.alpha, self.beta, self.G, self.D = a * math.sqrt(q), b, g, d
        self.mod = base.jit
        self.lo, self.hi, self.br = base._piece_arrays
        self.t_max = 10.0 + 2.2 * abs(self.alpha) * base.growth
        self.kinks = [((k.location - b) / self.alpha, k.order, k.jumps) for k in base.kinks]
        self._series = None
        self._homogeneous = _homogeneous_slopes(self, base) if len(base.pieces) == 2 else None
        try:
            self._set_features(base, dense=False)
            self.Q = self._integrate(lambda z, v: v[0] ** 2, 0, "E[phi^2]")
        except ConvergenceError:
            # structure far out (e.g. sin at a large input scale): panels 2 wide everywhere
            self._set_features(base, dense=True)
            self.Q = self._integrate(lambda z, v: v[0] ** 2, 0, "E[phi^2]")

    def _set_features(self, base, dense):
        self.dense = dense
        self.fpts = self._features(base, 2.0)
        self._fpts_1d = self._features(base, 1.0)
        self._rules = {}

    # -- geometry ------------------------------------------------------------------------
    def _features(self, base, step):
        """u-points where f has kinks or structure: base x-panels at most ``step / 2`` wide
        for |x| < 8 (near the complex singularities of common activations), ``step`` for
        |x| < 24, growing geometrically beyond (common activations are polynomial there up
        to exponentially small terms)."""
        near = np.arange(-8.0, 8.0 + step / 4, step / 2)
        xs = list(np.arange(-_X_DENSE, _X_DENSE + step / 2, step)) + list(near)
        xs += list(base.breakpoints)
        reach = abs(self.alpha) * self.t_max + abs(self.beta)
        if self.dense:
            far = np.arange(_X_DENSE, reach + step, step)
            xs += list(far) + list(-far)
        x = _X_DENSE
        while x < reach:
            x *= 1.5
            xs += [x, -x]
        u = (np.asarray(xs) - self.beta) / self.alpha
        u = np.concatenate([u, [k[0] for k in self.kinks]])
        return np.unique(u[np.abs(u) < self.t_max])

    def _rule(self, n, h=_H_1D, symmetric=True, extra=0.0):
        """Composite n-point Gauss-Legendre rule on [-t_max - extra, t_max + extra] with the
        Gaussian weight folded in: (nodes, weights, branch at node, branch at -node)."""
        key = (n, h, symmetric, extra)
        if key not in self._rules:
            pts = [self._fpts_1d, -self._fpts_1d] if symmetric else [self._fpts_1d]
            reach = self.t_max + extra
            bounds = np.unique(np.concatenate([[-reach, reach], *pts]))
            bounds = bounds[np.abs(bounds) <= reach]
            lengths = np.diff(bounds)
            counts = np.maximum(1, np.ceil(lengths / h)).astype(int)
            starts = np.repeat(bounds[:-1], counts)
            widths = np.repeat(lengths / counts, counts)
            starts = starts + widths * (np.arange(counts.sum()) - np.repeat(
                np.cumsum(counts) - counts, counts))
            mids = starts + widths / 2
            gx, gw = gauss_legendre(n)
            z = (mids[:, None] + widths[:, None] / 2 * gx).ravel()
            w = (widths[:, None] / 2 * gw).ravel() * _INV_SQRT_2PI * np.exp(-0.5 * z * z)
            branch = np.repeat(self._branch_of(mids), n)
            mirror = np.repeat(self._branch_of(-mids), n)
            self._rules[key] = (z, w, branch, mirror)
        return self._rules[key]

    def _branch_of(self, u):
        x = self.alpha * np.asarray(u, dtype=np.float64) + self.beta
        idx = np.searchsorted(self.hi[:-1], x, side="right")
        return self.br[idx]

    def r(self, order, z, branch):
        """f^(order)(z) away from kinks, with the base branch given per node."""
        x = np.ascontiguousarray(self.alpha * z + self.beta)
        vals = self.mod.eval_branches(x, np.ascontiguousarray(branch), order)
        out = self.G * self.alpha ** order * vals
        return out + self.G * self.D if order == 0 else out

    def _integrate(self, integrand, order, what):
        """Gaussian 1-D integral of ``integrand(z, (r_order(z), r_order(-z)))``, checked."""
        results = []
        for n in (_GL_1D, _GL_1D_COARSE):
            z, w, branch, mirror = self._rule(n)
            vals = (self.r(order, z, branch), self.r(order, -z, mirror))
            terms = w * integrand(z, vals)
            results.append((terms.sum(), np.abs(terms).sum()))
        (fine, scale), (coarse, _) = results
        if not (math.isfinite(fine) and abs(fine - coarse) <= _ACCEPT_1D * scale):
            raise ConvergenceError(
                f"float64 quadrature of {what} for {self.expr} at q = {self.q:g} did not "
                f"converge (value {fine!r}, coarse-rule difference {abs(fine - coarse):.3g});"
                " use digits=N")
        return float(fine)

    # -- Dirac masses ----------------------------------------------------------------------
    def dirac(self, order):
        """(locations, weights) of the Dirac masses of f^(order) (jumps of f^(order-1))."""
        if order == 0:
            return np.zeros(0), np.zeros(0)
        if order == 2 and any(k[1] == 0 for k in self.kinks):
            raise UnsupportedError(
                f"C'' of {self.expr} is not supported away from c = 1: phi itself jumps, "
                "so phi'' holds derivatives of Dirac masses; C and C' are supported")
        sgn = 1.0 if self.alpha > 0 else -1.0
        t = np.array([k[0] for k in self.kinks])
        j = np.array([self.G * self.alpha ** (order - 1) * sgn * k[2][order - 1]
                      for k in self.kinks])
        return t, j

    def _has_dirac(self, order):
        return order > 0 and any(k[2][order - 1] != 0.0 or k[1] < order - 1
                                 for k in self.kinks)

    def _r_mean(self, order, u):
        """Mean of the left and right limits of f^(order) at u."""
        eps = 1e-9 * max(1.0, abs(u))
        branches = self._branch_of(np.array([u - eps, u + eps]))
        vals = self.r(order, np.array([u, u]), branches)
        return 0.5 * (vals[0] + vals[1])

    # -- Q map ---------------------------------------------------------------------------
    def q_derivative(self, order):
        """Q^(order)(q) = E[f(z)^2 He_{2 order}(z)] / (2 q)^order."""
        if order == 0:
            return self.Q
        he = (lambda z: z * z - 1.0) if order == 1 else (lambda z: (z * z - 6.0) * z * z + 3.0)
        value = self._integrate(lambda z, v: v[0] ** 2 * he(z), 0, f"Q^({order})")
        return value / (2.0 * self.q) ** order

    # -- C map at the ends ---------------------------------------------------------------
    def at_plus_one(self, order):
        if order == 0:
            return 1.0
        if self._has_dirac(order):
            return math.inf
        return self._integrate(lambda z, v: v[0] ** 2, order, f"E[phi^({order})^2]") / self.Q

    def at_minus_one(self, order):
        if order == 2 and any(k[1] == 0 for k in self.kinks):
            raise UnsupportedError(
                f"C'' of {self.expr} at c = -1 is not supported: phi itself jumps, so "
                "phi'' holds derivatives of Dirac masses; C and C' are supported")
        value = self._integrate(lambda z, v: v[0] * v[1], order, f"C^({order})(-1)")
        t, j = self.dirac(order)
        for ti, ji in zip(t, j):
            if ji == 0.0:
                continue
            for tk, jk in zip(t, j):
                if jk != 0.0 and abs(ti + tk) <= 1e-13 * max(1.0, abs(ti)):
                    return math.copysign(math.inf, ji * jk)
            value += 2.0 * ji * _INV_SQRT_2PI * math.exp(-0.5 * ti * ti) * self._r_mean(
                order, -ti)
        return value / self.Q

    # -- C map inside --------------------------------------------------------------------
    def interior(self, c, order):
        if self._homogeneous is not None:
            return _homogeneous_c_map(self._homogeneous, c, order)
        series = self.series()
        if series is not None:
            out = np.empty_like(c)
            self.mod.power_series(c, series[order], out)
            return out
        if c.size >= _INTERP_MIN:
            return self.interpolant(order)(c)
        return self.direct(c, order)

    def interpolant(self, order):
        """Piecewise Chebyshev interpolant of the 2-D rule in theta = arccos(c) (cached)."""
        key = ("interp", order)
        if key not in self._rules:
            self._rules[key] = _ThetaInterpolant(self, order)
        return self._rules[key]

    def direct(self, c, order):
        """The 2-D rule (no series, no closed form) at each |c| < 1."""
        kt = np.array([k[0] for k in self.kinks], dtype=np.float64)
        _, j = self.dirac(order)
        kj = np.zeros_like(kt) if order == 0 else np.asarray(j, dtype=np.float64)
        gx, gw = gauss_legendre(_GL_2D)
        out = np.empty_like(c)
        self.mod.c_direct(np.ascontiguousarray(c), order, self.alpha, self.beta, self.G,
                          self.D, self.lo, self.hi, self.br, self.fpts, kt, kj,
                          self.t_max, self.t_max, _H_2D, gx, gw, out)
        return out / self.Q

    def series(self):
        """Per-order power-series coefficients of C^(k) in c, or None (see module docs)."""
        if self._series is None:
            self._series = _hermite_series(self) or False
        return self._series or None


def _hermite_series(prep):
    if prep.kinks:
        return None
    energies = [prep.Q] + [prep._integrate(lambda z, v: v[0] ** 2, k, f"E[phi^({k})^2]")
                           for k in (1, 2)]
    for size in _SERIES_SIZES:
        # Hermite functions psi_n phi^(1/2) reach |z| ~ 2 sqrt(n): the projections need the
        # Gaussian weight down to exp(-z^2 / 4) ~ 1e-21 (|z| ~ 14), not just exp(-z^2 / 2).
        z, w, branch, _ = prep._rule(_GL_1D, h=min(_H_1D, 3.0 / math.sqrt(size)),
                                     symmetric=False, extra=4.0)
        coef = np.empty(size + 1)
        prep.mod.hermite_project(w * prep.r(0, z, branch), z, size, coef)
        b2 = coef * coef
        n = np.arange(size + 1, dtype=np.float64)
        weighted = b2 * n * n
        if weighted[3 * size // 4:].sum() <= 1e-17 * max(weighted.sum(), 1e-300):
            break
    else:
        return None
    sums = [b2.sum(), (n * b2).sum(), (n * (n - 1) * b2).sum()]
    for k, (total, energy) in enumerate(zip(sums, energies)):
        if abs(total - energy) > _PARSEVAL_RTOL * (energy + prep.Q):
            return None
    out = []
    falling = np.ones_like(n)
    for k in range(3):
        coefs = (falling * b2)[k:] / prep.Q
        keep = np.nonzero(np.cumsum(coefs[::-1])[::-1] > 1e-18 * coefs.sum())[0]
        out.append(np.ascontiguousarray(coefs[: keep[-1] + 1] if keep.size else coefs[:1]))
        falling = falling * (n - k)
    return out


def _homogeneous_slopes(prep, base):
    """(s_l, s_r) when f(u) is s_l u for u < 0 and s_r u for u > 0, else None."""
    import sympy as sp

    from ..parsing import X
    if prep.beta != 0.0 or prep.D != 0.0 or len(base.pieces) != 2:
        return None
    if [k.location for k in base.kinks] != [0.0]:
        return None
    for piece in base.pieces:
        e = base.branches[piece.branch]
        if sp.simplify(sp.diff(e, X, 2)) != 0 or sp.simplify(e.subs(X, 0)) != 0:
            return None
    branch = prep._branch_of(np.array([-1.0, 1.0]))
    d1 = prep.r(1, np.array([-1.0, 1.0]), branch)
    return float(d1[0]), float(d1[1])


def _relu_r(c):
    """R(c) = sqrt(1 - c^2) + c arccos(-c) = sin(p) - p cos(p), p = arccos(-c), stably."""
    p = np.arccos(-c)
    out = np.sqrt((1.0 - c) * (1.0 + c)) + c * p
    small = p < 1.0
    if small.any():
        ps = p[small]
        term = ps ** 3 / 3.0
        acc = term.copy()
        for m in range(2, 14):
            term = -term * ps * ps * (2 * m) / ((2 * m - 2) * (2 * m) * (2 * m + 1))
            acc += term
        out[small] = acc
    return out


def _homogeneous_c_map(slopes, c, order):
    """C^(order) of ``s_l u 1{u<0} + s_r u 1{u>0}`` at |c| < 1 (THEORY.md §1, ReLU forms)."""
    sl, sr = slopes
    q_norm = 0.5 * (sl * sl + sr * sr)
    jump2 = (sr - sl) ** 2 / (2.0 * math.pi)
    if order == 0:
        k = sl * sr * c + jump2 * _relu_r(c)
    elif order == 1:
        k = sl * sr + jump2 * np.arccos(-c)
    else:
        k = jump2 / np.sqrt((1.0 - c) * (1.0 + c))
    return k / q_norm


class _ThetaInterpolant:
    """Adaptive piecewise Chebyshev interpolation of ``w(theta) C^(k)(cos theta)``.

    In ``theta = arccos(c)`` the C map of a kinked activation stays smooth up to ``c = +-1``
    (for ReLU it is ``(sin theta + (pi - theta) cos theta) / pi``); ``w = sin(theta)`` when
    ``f^(k)`` holds Dirac masses (then ``C^(k) ~ 1 / sin(theta)`` near c = 1), else 1.
    Chebyshev points of the first kind keep samples off the ends. A panel is accepted when
    its last three coefficients are below ``_CHEB_TOL`` times the largest sample, else it is
    halved; the result carries about 1e-14 absolute error on that scale. Panels still not
    accepted after ``_CHEB_DEPTH`` halvings (non-analytic points) are served by the 2-D rule.
    """

    def __init__(self, prep, order):
        self.prep, self.order = prep, order
        self.weighted = prep._has_dirac(order)
        nodes = np.cos(np.pi * (np.arange(_CHEB_N) + 0.5) / _CHEB_N)
        todo = [(k * np.pi / 4, (k + 1) * np.pi / 4, 0) for k in range(4)]
        done = []
        samples = {}
        for lo, hi, depth in todo:
            theta = 0.5 * (hi + lo) + 0.5 * (hi - lo) * nodes
            values = prep.direct(np.cos(theta), order)
            if self.weighted:
                values = values * np.sin(theta)
            samples[(lo, hi)] = (values, depth)
        scale = max(np.abs(v).max() for v, _ in samples.values())
        while samples:
            (lo, hi), (values, depth) = samples.popitem()
            coef = np.polynomial.chebyshev.chebfit(nodes, values, _CHEB_N - 1)
            if np.abs(coef[-3:]).max() <= _CHEB_TOL * scale:
                done.append((lo, hi, coef))
                continue
            if depth >= _CHEB_DEPTH:
                done.append((lo, hi, None))   # not smooth enough: the 2-D rule serves it
                continue
            mid = 0.5 * (lo + hi)
            for a, b in ((lo, mid), (mid, hi)):
                theta = 0.5 * (a + b) + 0.5 * (b - a) * nodes
                vals = prep.direct(np.cos(theta), order)
                samples[(a, b)] = (vals * np.sin(theta) if self.weighted else vals, depth + 1)
        done.sort()
        self.edges = np.array([d[0] for d in done] + [done[-1][1]])
        self.coefs = [d[2] for d in done]

    def __call__(self, c):
        theta = np.arccos(c)
        idx = np.clip(np.searchsorted(self.edges, theta, side="right") - 1, 0,
                      len(self.coefs) - 1)
        out = np.empty_like(c)
        for i in np.unique(idx):
            sel = idx == i
            if self.coefs[i] is None:
                out[sel] = self.prep.direct(c[sel], self.order)
                if self.weighted:
                    out[sel] *= np.sqrt((1.0 - c[sel]) * (1.0 + c[sel]))
                continue
            lo, hi = self.edges[i], self.edges[i + 1]
            x = (2.0 * theta[sel] - (lo + hi)) / (hi - lo)
            out[sel] = np.polynomial.chebyshev.chebval(x, self.coefs[i])
        if self.weighted:
            out /= np.sqrt((1.0 - c) * (1.0 + c))
        return out
