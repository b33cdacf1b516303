"""Q and C maps in float64: the default fast path (THEORY.md §1).

Everything is computed in standardized coordinates ``f(u) = phi(sqrt(q) u)``; for a
transformed activation ``g (phi(a x + b) + d)`` the rules get ``alpha = a sqrt(q)``,
``beta = b`` and fold ``(d, g)`` in pointwise (so ``phi + d`` never cancels against an
expanded ``d^2``), sharing the base activation's branch functions and numba module.

One-dimensional integrals (Q, C at c = -1, 0, 1, the Hermite projections) evaluate the
branches with numpy (:func:`kernelshape.maps._vector.fused_branches`, the solvers' printing
of :mod:`kernelshape._jit`): a fresh process answers ``q_map`` and smooth or ReLU-like
``c_map`` calls in about 0.1 s, without numba's start-up. Only the two-dimensional rule
loads the numba module. The z-range is ``|z| <= 10 + 2.2 alpha growth``, widened while
``f^2`` still has mass at its ends (``relu(0.3 x - 3)`` lives beyond z = 10).

Routes, chosen per (activation, q) and cached on the activation:

* **Closed forms** (erf, gelu's erf form, sin and cos, Gaussians, ReLU / leaky ReLU / abs;
  :mod:`kernelshape.maps._closed64`): one compiled loop per call, no temporaries. The
  public :func:`kernelshape.maps.c_map` sends float64 arrays there before its numpy checks
  (the loop checks c itself); everything below serves the other activations. Long arrays
  go through the routes below in chunks of ``_CHUNK`` values (bounded temporaries).
* **Q, Q', Q''**: composite Gauss-Legendre quadrature split at the kinks of
  ``Q^(k)(q) = E[h He_2k(z)] / (2 q)^k``, ``h = f^2`` (no Dirac terms), or of the same
  integrated by parts twice (``h'' = 2 (f'^2 + f f'')`` plus jump terms at kinks), whichever
  sums smaller terms. An embedded coarser rule gives an error estimate; failure raises
  :class:`~kernelshape.errors.ConvergenceError`.
* **C^(k) at c = +-1**: ``E[f^(k)(U) f^(k)(+-U)] / Q`` with the Dirac masses of ``f^(k)`` at
  kinks added (``inf`` where two masses meet, e.g. ``C''(1)`` of ReLU); ``C(1) = 1``.
  **At c = 0**: ``E[f^(k)]^2 / Q`` (``E[f^(k)] = E[f He_k]``, or directly with the masses).
* **Positively homogeneous piecewise-linear activations** (ReLU, leaky ReLU, unshifted):
  the closed form :func:`kernelshape.maps.closed_forms.homogeneous_c_map`.
* **Smooth activations**: the Hermite series ``C(c) = sum_n b_n^2 c^n / Q``
  (:func:`kernelshape.maps.hermite.float64_series`: Parseval-checked at c = 1).
* **Everything else** (kinks, jumps, slowly converging series): a two-dimensional
  Gauss-Legendre rule (numba, ``kernelshape/_kernels/cmap.py``) with ``V = c U + s W``,
  split at the kinks in both variables and graded around the kinks' images as
  ``|c| -> 1``; Dirac masses of ``f''`` (kinks) or ``f'`` (jumps) contribute the bivariate
  normal density at the kinks and conditional expectations.

Steep features (``tanh(1e6 x)``, :mod:`kernelshape.maps._features`) end panels of both the
1-D rules and the 2-D rule on points graded down to their width.

Precision: within 1e-13 relative or 1e-15 absolute, whichever is larger, on every route for
well-conditioned inputs, checked against 40-digit mpmath in the tests (typically 1e-16
absolute: a small C from cancelling terms is not relatively accurate). C' and C'' of the
2-D rule raise ConvergenceError where their estimated rounding exceeds 1e-11 relative. A transformed
activation whose output shift ``d`` nearly cancels ``phi`` (``|phi(b)| >> a |phi'(b)|``)
inherits float64's rounding of ``phi`` relative to its variation.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConvergenceError, UnsupportedError
from . import _closed64, closed_forms, hermite
from ._features import features, graded
from ._vector import fused_branches
from .gauss import gauss_legendre

__all__ = ["c_map", "prepared", "q_map"]

_GL_2D = 16          # nodes per panel of the 2-D rule
_H_2D = 2.0          # panel width (u and w) of the 2-D rule
_GL_1D, _GL_1D_COARSE = 20, 14
_H_1D = 1.0
_X_DENSE = 24.0      # |x| below which base-coordinate panels are at most 2 wide
_ACCEPT_1D = 1e-11   # accepted distance fine vs coarse 1-D rule, relative to E|integrand|
_CACHE_SIZE = 32
#: Rounding of the 2-D rule per unit of ``E[|f^(k)|]^2 / Q`` (an over-estimate: the
#: 40-digit references see 3 to 30 times less), and the largest accepted estimate
#: (relative + absolute) for its C' and C'' values; beyond it ConvergenceError.
_EPS_2D, _RTOL_2D, _ATOL_2D = 1e-16, 1e-11, 1e-16
#: Arrays with at least this many interior c values of a kinked activation use the theta
#: interpolant of the 2-D rule (built once per activation, q and order) instead of the rule.
_INTERP_MIN = 256
#: Values per chunk of a long C map (bounded temporaries: a few MB).
_CHUNK = 32768
_CHEB_N = 24
_CHEB_DEPTH = 6
_CHEB_TOL = 2e-15
_INV_SQRT_2PI = 0.3989422804014327
#: The z-range grows (by 2 at a time, up to _T_LIMIT) until the density of phi^2 at its ends
#: is below _TAIL_RTOL * Q.
_TAIL_RTOL = 1e-20
_T_LIMIT = 40.0


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
    flat = np.ascontiguousarray(c, dtype=np.float64).ravel()
    closed = _closed64.constants(act, float(q))
    if closed is not None:
        out = np.empty_like(flat)
        _closed64.loop(closed[0], order, flat.size)(closed[1], flat, out)
        return out.reshape(c.shape)
    prep = prepared(act, q)
    out = np.empty_like(flat)
    # in chunks, so a long array costs its output and a chunk's temporaries; the interior
    # route of a long array is the interpolant in every chunk (as it is unchunked)
    interp = None if flat.size <= _CHUNK else True
    for lo in range(0, flat.size, _CHUNK):
        _c_map_chunk(act, prep, flat[lo:lo + _CHUNK], out[lo:lo + _CHUNK], order, interp)
    return out.reshape(c.shape)


def _c_map_chunk(act, prep, flat, out, order, interp):
    top, bottom = flat == 1.0, flat == -1.0
    zero = (flat == 0.0) if prep._homogeneous is None else np.zeros_like(top)
    inside = ~(top | bottom | zero)
    if top.any():
        out[top] = prep.at_plus_one(order)
    if bottom.any():
        out[bottom] = prep.at_minus_one(order)
    if zero.any():
        out[zero] = prep.at_zero(order)
    if inside.any():
        out[inside] = prep.interior(flat[inside], order, interp)
    if np.isnan(out).any():
        raise ConvergenceError(
            f"the float64 C map of {act.expr} at q = {prep.q:g} produced NaN at "
            f"c = {flat[np.isnan(out)][:5]}; use digits=N for these values")


class _Prepared:
    """Per-(activation, q) data: coordinates, kinks, quadrature rules, Q, series."""

    def __init__(self, act, q):
        a, b, d, g = (float(v) for v in act.affine_params)
        base = act.base
        self.expr, self.q = act.expr, q
        self.alpha, self.beta, self.G, self.D = a * math.sqrt(q), b, g, d
        self._base = base
        self._fns = fused_branches(base)
        self._rules, self._memo = {}, {}
        self.lo, self.hi, self.br = base._piece_arrays
        self.t_max = 10.0 + 2.2 * abs(self.alpha) * base.growth
        self.kinks = [((k.location - b) / self.alpha, k.order, k.jumps) for k in base.kinks]
        self._series = None
        self._homogeneous = (closed_forms.homogeneous_slopes(self, base)
                             if len(base.pieces) == 2 else None)
        dense = False
        while True:
            try:
                self._set_features(base, dense=dense)
                self.Q = self._integrate(lambda z, v: v[0] ** 2, 0, "E[phi^2]")
            except ConvergenceError:
                if dense:
                    raise
                # structure far out (e.g. sin at a large input scale): panels 2 wide everywhere
                dense = True
                continue
            if self.t_max >= _T_LIMIT or (self.Q != 0.0 and not self._mass_beyond_range()):
                break
            self.t_max += 2.0
        if not (self.Q > 0.0 and math.isfinite(self.Q)):
            raise ConvergenceError(
                f"E[phi^2] of {self.expr} at q = {q:g} is {self.Q!r} in float64 (underflow "
                "or overflow); use digits=N")

    def _mass_beyond_range(self):
        """Whether ``f(z)^2 N(z)`` at ``|z| = t_max`` is not negligible against Q (e.g.
        ``relu(0.3 x - 3)``, whose whole mass lies beyond z = 10)."""
        ends = np.array([-self.t_max, self.t_max])
        tail = self.r(0, ends, self._branch_of(ends)) ** 2 * _INV_SQRT_2PI * math.exp(
            -0.5 * self.t_max ** 2)
        return bool(np.max(tail) > _TAIL_RTOL * self.Q)

    def _set_features(self, base, dense):
        self.dense = dense
        self.fpts = self._features(base, 2.0)
        self._fpts_1d = self._features(base, 1.0)
        self._rules, self._memo = {}, {}

    # -- geometry ------------------------------------------------------------------------
    def _features(self, base, step):
        """u-points where f has kinks or structure: panels graded down to the width of each
        steep feature (:mod:`kernelshape.maps._features`), base x-panels at most ``step / 2`` wide
        for |x| < 8 (near the complex singularities of common activations), ``step`` for
        |x| < 24, growing geometrically beyond (common activations are polynomial there up
        to exponentially small terms)."""
        near = np.arange(-8.0, 8.0 + step / 4, step / 2)
        xs = list(np.arange(-_X_DENSE, _X_DENSE + step / 2, step)) + list(near)
        xs += list(base.breakpoints)
        for feat in features(base):
            # graded down to the feature's width (or float64's resolution of x there)
            xs += graded(feat.x, feat.scale, step / 2, 1e-15 * max(1.0, abs(feat.x)))
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

    def _rule(self, n, h=_H_1D, symmetric=True, extra=0.0, features=True):
        """Composite n-point Gauss-Legendre rule on [-t_max - extra, t_max + extra] with the
        Gaussian weight folded in: (nodes, weights, branch at node, branch at -node).
        Panels end at the feature points (both signs with ``symmetric``; none without
        ``features``, for analytic integrands) and are at most ``h`` wide."""
        key = (n, h, symmetric, extra, features)
        if key not in self._rules:
            pts = [] if not features else [self._fpts_1d, -self._fpts_1d] if symmetric else [
                self._fpts_1d]
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
            for arr in (z, w, branch, mirror):
                arr.flags.writeable = False   # marks the node arrays _branch_values keeps
            self._rules[key] = (z, w, branch, mirror)
        return self._rules[key]

    def _branch_of(self, u):
        x = self.alpha * np.asarray(u, dtype=np.float64) + self.beta
        idx = np.searchsorted(self.hi[:-1], x, side="right")
        return self.br[idx]

    @property
    def mod(self):
        """The base activation's numba module (loaded only by the 2-D rule)."""
        return self._base.jit

    def r(self, order, z, branch):
        """f^(order)(z) away from kinks, with the base branch given per node."""
        vals = self._branch_values(z, branch)[order]
        out = self.G * self.alpha ** order * vals
        return out + self.G * self.D if order == 0 else out

    def _branch_values(self, z, branch):
        """(phi, phi', phi'') of the base branches at ``x = alpha z + beta`` (numpy, the
        solvers' fused branch functions); memoized for the cached rules' (read-only) node
        arrays and their mirror images."""
        key = (id(z), id(branch))
        hit = self._memo.get(key)
        if hit is not None and hit[0] is z and hit[1] is branch:
            return hit[2]
        x = self.alpha * np.asarray(z, dtype=np.float64) + self.beta
        kinds = np.unique(branch)
        with np.errstate(all="ignore"):   # inf in intermediates (cosh(1e3)) is harmless
            if kinds.size == 1:
                vals = tuple(np.broadcast_to(v, x.shape).astype(np.float64)
                             for v in self._fns[kinds[0]](x))
            else:
                vals = tuple(np.empty_like(x) for _ in range(3))
                for k in kinds:
                    sel = branch == k
                    for out, v in zip(vals, self._fns[k](x[sel])):
                        out[sel] = v
        if not z.flags.writeable:
            self._memo[key] = (z, branch, vals)
        return vals

    def _integrate(self, integrand, order, what):
        """Gaussian 1-D integral of ``integrand(z, (r_order(z), r_order(-z)))``, checked."""
        return self._quad(lambda z, b, m: integrand(
            z, (self.r(order, z, b), self.r(order, self._mirror(z), m))), what)[0]

    def _mirror(self, z):
        """``-z`` of a rule's nodes, kept (read-only) so its branch values are memoized."""
        hit = self._memo.get(("mirror", id(z)))
        if hit is None or hit[0] is not z:
            minus = -z
            minus.flags.writeable = False
            hit = self._memo[("mirror", id(z))] = (z, minus)
        return hit[1]

    def _quad(self, values, what, *, hermite=None):
        """(integral, integral of |.|) of ``values(z, branch, mirror)`` against N(0, 1),
        times ``hermite(z)`` if given: a polynomial orthogonal to constants (He_k, k >= 1),
        so ``values`` is first shifted by its value at the node nearest 0 (exact, and a
        constant, e.g. ``h''`` of an affine phi, then gives exactly 0). The 20-point rule,
        accepted when the 14-point one agrees (else ConvergenceError)."""
        results = []
        for n in (_GL_1D, _GL_1D_COARSE):
            z, w, branch, mirror = self._rule(n)
            g = values(z, branch, mirror)
            if hermite is not None:
                g = (g - g[np.argmin(np.abs(z))]) * hermite(z)
            terms = w * g
            results.append((terms.sum(), np.abs(terms).sum()))
        (fine, scale), (coarse, _) = results
        if not (math.isfinite(fine) and abs(fine - coarse) <= _ACCEPT_1D * scale):
            raise ConvergenceError(
                f"float64 quadrature of {what} for {self.expr} at q = {self.q:g} did not "
                f"converge (value {fine!r}, coarse-rule difference {abs(fine - coarse):.3g});"
                " use digits=N")
        return float(fine), float(scale)

    def projection_rule(self, size):
        """(nodes, weights, branches) of the rule for Hermite projections up to index size.

        Hermite functions ``psi_n phi^(1/2)`` reach ``|z| ~ 2 sqrt(n)``: the projections need
        the Gaussian weight down to ``exp(-z^2 / 4) ~ 1e-21`` (|z| ~ 14), not just
        ``exp(-z^2 / 2)``. Panels are ``3 / sqrt(size)`` wide, split at the feature points;
        beyond the standard sizes ``4 / sqrt(size)`` (a quarter of psi_n's shortest period,
        20 nodes each) without them (only f's structure needs them, and f is analytic).
        """
        extended = size > hermite.SERIES_SIZES[-1]
        z, w, branch, _ = self._rule(
            _GL_1D, h=min(_H_1D, (4.0 if extended else 3.0) / math.sqrt(size)),
            symmetric=False, extra=4.0, features=not extended)
        return z, w, branch

    def energy(self, order):
        """``E[f^(order)(z)^2]`` (no Dirac masses)."""
        if order == 0:
            return self.Q
        return self._integrate(lambda z, v: v[0] ** 2, order, f"E[phi^({order})^2]")

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
        """Q^(order)(q) = E[h(z) He_{2 order}(z)] / (2 q)^order, ``h = f^2``, or the same
        after integrating by parts twice (whichever sums smaller terms, so rounds less):

        ``E[h He_2] = E[h''] + sum_t N(t) (J1_t + t J0_t)``,
        ``E[h He_4] = E[h'' He_2] + sum_t N(t) (J1_t He_2(t) + J0_t He_3(t))``,

        ``h'' = 2 (f'^2 + f f'')`` away from the kinks t, where h jumps by J0_t and h' by
        J1_t. For ``relu(0.3 x - 3)`` or the identity at small q, ``h`` is large against
        the result and the first form cancels; for fast oscillations the second does.
        """
        if order == 0:
            return self.Q

        def he(z):
            return z * z - 1.0 if order == 1 else (z * z - 6.0) * z * z + 3.0

        def parts(z, branch, _):
            f0, f1, f2 = (self.r(k, z, branch) for k in range(3))
            return 2.0 * (f1 * f1 + f0 * f2)

        what = f"Q^({order})"
        direct = self._quad(lambda z, b, _: self.r(0, z, b) ** 2, what, hermite=he)
        value, scale = self._quad(parts, what, hermite=(lambda z: z * z - 1.0) if order == 2
                                  else None)
        for t, _, _ in self.kinks:
            j0, j1 = self._h_jumps(t)
            weight = (t * t - 1.0, t * (t * t - 3.0)) if order == 2 else (1.0, t)
            term = _INV_SQRT_2PI * math.exp(-0.5 * t * t) * (j1 * weight[0] + j0 * weight[1])
            value, scale = value + term, scale + abs(term)
        best = direct[0] if direct[1] <= scale else value
        return best / (2.0 * self.q) ** order

    def _limits(self, t):
        """(f, f') at u = t from the left and from the right: two arrays of two values."""
        eps = 1e-9 * max(1.0, abs(t))
        branches = self._branch_of(np.array([t - eps, t + eps]))
        at = np.array([t, t])
        return self.r(0, at, branches), self.r(1, at, branches)

    def _h_jumps(self, t):
        """Jumps of ``h = f^2`` and of ``h' = 2 f f'`` across the kink at u = t."""
        f0, f1 = self._limits(t)
        h, dh = f0 * f0, 2.0 * f0 * f1
        return float(h[1] - h[0]), float(dh[1] - dh[0])

    # -- C map at the ends and at zero ---------------------------------------------------
    def at_zero(self, order):
        """C^(k)(0) = E[f^(k)]^2 / Q (U and V independent), Dirac masses included.

        ``E[f^(k)] = E[f He_k]`` (integrating by parts; jumps need no terms) or directly
        ``E[f^(k)] + sum_t N(t) J_{k-1}`` (+ ``t N(t) J_0`` for k = 2), with ``J_j`` the
        jump of ``f^(j)`` at the kink t: whichever sums smaller terms. For a narrow
        gaussian (q = 1e4) ``E[f'']`` cancels to 1e-4 of ``E|f''|``; ``E[f He_2]`` does not.
        """
        if order == 0:
            return self._integrate(lambda z, v: v[0], 0, "E[phi]") ** 2 / self.Q
        self.dirac(order)   # raises for C'' of an activation with jumps
        he = (lambda z: z) if order == 1 else (lambda z: z * z - 1.0)
        parts = self._quad(lambda z, b, _: self.r(0, z, b), f"E[phi^({order})]", hermite=he)
        value, scale = self._quad(lambda z, b, _: self.r(order, z, b), f"E[phi^({order})]")
        for t, _, _ in self.kinks:
            f0, f1 = self._limits(t)
            j0, j1 = f0[1] - f0[0], f1[1] - f1[0]
            term = _INV_SQRT_2PI * math.exp(-0.5 * t * t) * (
                j0 if order == 1 else j1 + t * j0)
            value, scale = value + term, scale + abs(term)
        mean = parts[0] if parts[1] <= scale else value
        return mean * mean / self.Q

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
    def interior(self, c, order, interp=None):
        """C^(order) at |c| < 1, c != 0; ``interp`` forces the theta interpolant of the 2-D
        rule on (True) for kinked activations, else it serves arrays of _INTERP_MIN or more."""
        if self._homogeneous is not None:
            return closed_forms.homogeneous_c_map(self._homogeneous, c, order)
        series = self.series()
        if series is not None:
            return hermite.power_series(c, series[order])
        if (c.size >= _INTERP_MIN) if interp is None else interp:
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
        out /= self.Q
        self._check_cancellation(c, out, order)
        return out

    def _check_cancellation(self, c, out, order):
        """Raise where the 2-D rule's estimated rounding is far beyond the float64 claim.

        The rule sums ``f^(k)(u) f^(k)(v)`` over the plane: its rounding error is about
        ``_EPS_2D E[|f^(k)|]^2 / Q`` absolute. For a steep activation (``erf(1e4 x)``: ``f''``
        reaches 1e8 within 1e-4 of 0) that is far above ``|C''|``; the digits=N route
        integrates the Gaussian density's derivatives instead and has no such loss.
        """
        if order == 0:
            return
        key = ("abs", order)
        if key not in self._rules:
            # an estimate: |f^(k)| has kinks where f^(k) changes sign, no rule check
            z, w, branch, _ = self._rule(_GL_1D)
            self._rules[key] = float(w @ np.abs(self.r(order, z, branch)))
        bound = _EPS_2D * self._rules[key] ** 2 / self.Q
        bad = bound > _RTOL_2D * np.abs(out) + _ATOL_2D
        if np.any(bad):
            at = float(c[bad][0])
            raise ConvergenceError(
                f"float64 C^({order}) of {self.expr} at q = {self.q:g}, c = {at!r} loses its "
                f"digits to cancellation (rounding up to {bound:.2g} against a value of "
                f"{float(out[bad][0]):.6g}: phi^({order}) is large where phi is steep); use "
                "digits=N")

    def series(self):
        """Per-order power-series coefficients of C^(k) in c, or None (see module docs)."""
        if self._series is None:
            self._series = hermite.float64_series(self) or False
        return self._series or None


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
