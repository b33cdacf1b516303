"""Closed-form inner integrals of the C map for piecewise ``x^r exp(lambda x)`` and rational
activations.

On a piece where phi is a sum of ``x^r exp(lambda x)`` terms (ReLU family, ELU, SELU,
polynomials) the inner Gaussian integral over ``w`` in :mod:`kernelshape.maps.precise` is a
finite sum of truncated Gaussian moments, evaluated exactly in mpmath (:class:`_Inner`).

A piece that is a polynomial plus simple real poles ``coef / (x - p)`` outside it
(softsign: ``1 - 1/(1 + x)``) adds, per pole, ``He_n(w_p) J + (truncated moments)``, from
``He_n(w) = He_n(w_p) + (w - w_p) R_n(w)``, with one integral left,
``J = int N(w) / (w - w_p) dw`` over the piece. Its pieces are edge integrals

    F_d(a) = int_a^inf N(w) / (w - a + d) dw,   d > 0 the distance from edge to pole,

and ``F_d' = -Phi_c(a) - (a - d) F_d`` (differentiate under ``w = a + t``) gives

    F_d(a) = exp(-(a - d)^2 / 2) int_a^inf Phi_c(s) exp((s - d)^2 / 2) ds,

a cumulative integral of a smooth positive function: for the outer nodes of one C map, ``d``
is fixed per (piece edge, pole) and ``F_d`` at all of them costs one sweep
(:meth:`_Inner.prepare`), not one quadrature per node.
"""

from __future__ import annotations

import functools
import itertools

import mpmath
import sympy as sp

from ..errors import ConvergenceError
from ..parsing import X
from ._mpquad import (
    _gauss_legendre,
    _half_width,
    _integrate_1d,
    _mid,
    _panel_width,
    _panels,
)

#: Extra digits for pole terms (``He_n(w_p) J`` and the moments cancel like ``|w_p|^4``).
_POLE_GUARD = 20
#: Largest ``gap * |s - d|`` between neighbouring sweep points (the integrand changes by up
#: to ``e^(gap |s - d|)`` there); beyond it the caller integrates numerically instead.
_MAX_SWING = 150


@functools.lru_cache(maxsize=512)
def _polyexp_terms(base, branch: int):
    """Branch as ``[(coef, r, lam)]`` meaning ``sum coef x^r exp(lam x)``, or None."""
    expr = sp.expand(base.branches[branch])
    out = []
    for term in sp.Add.make_args(expr):
        coef, r, lam = sp.Integer(1), 0, sp.Integer(0)
        for factor in sp.Mul.make_args(term):
            if factor.is_number:
                coef *= factor
            elif factor == X:
                r += 1
            elif factor.is_Pow and factor.base == X and factor.exp.is_Integer \
                    and factor.exp > 0:
                r += int(factor.exp)
            elif isinstance(factor, sp.exp):
                poly = sp.Poly(factor.args[0], X) if factor.args[0].is_polynomial(X) else None
                if poly is None or poly.degree() > 1:
                    return None
                lam += poly.coeff_monomial(X)
                coef *= sp.exp(poly.coeff_monomial(1))
            else:
                return None
        out.append((coef, r, lam))
    return tuple(out)


@functools.lru_cache(maxsize=512)
def _split_terms(base, branch: int):
    """Branch as ``(polyexp terms, ((coef, p), ...))``: ``sum coef x^r exp(lam x)`` plus
    simple real poles ``coef / (x - p)``; or None."""
    terms = _polyexp_terms(base, branch)
    if terms is not None:
        return terms, ()
    expr = base.branches[branch]
    if not expr.is_rational_function(X):
        return None
    poly, poles = [], []
    for term in sp.Add.make_args(sp.apart(sp.together(expr), X)):
        if term.is_polynomial(X):
            for (r,), coef in sp.Poly(term, X).terms():
                poly.append((coef, r, sp.Integer(0)))
            continue
        num, den = term.as_numer_denom()
        if num.has(X) or not den.is_polynomial(X) or sp.degree(den, X) != 1:
            return None
        lead, const = sp.Poly(den, X).all_coeffs()
        pole = -const / lead
        if not (pole.is_number and pole.is_real):
            return None
        poles.append((num / lead, pole))
    return tuple(poly), tuple(poles)


def _edge_integrals(d, points):
    """``{a: F_d(a)}`` for the points ``a`` (module docs), by one downward sweep of
    ``K(a) = int_a^inf Phi_c(s) exp((s - d)^2 / 2) ds``: from the
    highest point on, then on each gap (two-rule Gauss-Legendre throughout)."""
    def g(s):
        return mpmath.erfc(s / mpmath.sqrt(2)) / 2 * mpmath.exp((s - d) ** 2 / 2)

    order = sorted(set(points), reverse=True)
    if any((hi - lo) * max(abs(hi - d), abs(lo - d)) > _MAX_SWING
           for hi, lo in itertools.pairwise(order)):
        raise ConvergenceError("edge integrals: the integrand swings too far between "
                               "neighbouring points for the sweep")
    top = order[0]
    # g decreases, like exp(-d s) / s beyond max(top, 0): truncate where that is below
    # 10^-(dps + 10) of g(top), with panels a few decay lengths wide
    end = max(top, 0) + (mpmath.mp.dps + 10) * mpmath.log(10) / d + 1
    k = _integrate_1d(lambda a, b: lambda s: [g(s)], [top, end], min(4, 8 / d),
                      mpmath.mp.dps - 8, "an edge integral",
                      scale_of=lambda values: abs(values[0]))[0]
    out = {top: k}
    for hi, lo in itertools.pairwise(order):
        k += _integrate_1d(lambda a, b: lambda s: [g(s)], [lo, hi], mpmath.mpf(1) / 2,
                           mpmath.mp.dps - 8, "an edge integral",
                           scale_of=lambda values: abs(values[0]))[0]
        out[lo] = k
    return {a: mpmath.exp(-(a - d) ** 2 / 2) * kv for a, kv in out.items()}


def _poly_mul(p, q):
    out = [mpmath.mpf(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return out


@functools.lru_cache(maxsize=16)
def _hermite_coeffs(n):
    """Monomial coefficients (exact ints) of He_0..He_n."""
    out = [[1], [0, 1]]
    for k in range(1, n):
        nxt = [0] + out[k]
        for i, c in enumerate(out[k - 1]):
            nxt[i] -= k * c
        out.append(nxt)
    return out[: n + 1]


def _shift_poly(coeffs, delta):
    """Coefficients of p(t + delta) from those of p(t)."""
    out = [mpmath.mpf(0)] * len(coeffs)
    for i, c in enumerate(coeffs):
        if c == 0:
            continue
        for j in range(i + 1):
            out[j] += c * mpmath.binomial(i, j) * delta ** (i - j)
    return out


def _gauss_moments(lo, hi, n):
    """``int_lo^hi t^j N(t) dt`` for j = 0..n (lo < hi, either may be infinite)."""
    def tail(x):  # P(T > x), accurate in both tails
        return mpmath.erfc(x / mpmath.sqrt(2)) / 2
    if lo >= 0:
        m0 = tail(lo) - tail(hi)
    elif hi <= 0:
        m0 = tail(-hi) - tail(-lo)
    else:
        m0 = 1 - tail(hi) - tail(-lo)

    def edge(x, j):
        return 0 if mpmath.isinf(x) else x**j * mpmath.npdf(x)
    out = [m0, edge(lo, 0) - edge(hi, 0)]
    for j in range(2, n + 1):
        out.append((j - 1) * out[j - 2] + edge(lo, j - 1) - edge(hi, j - 1))
    return out[: n + 1]


class _Inner:
    """``I_n(u) = E_w[f(c u + s w) He_n(w)]`` for n = 0..4, ``f(v) = phi(sqrt(q) v)``."""

    def __init__(self, phi, root, c, s, digits):
        self.phi, self.root, self.c, self.s, self.digits = phi, root, c, s, digits
        self.closed = all(_split_terms(phi.base, br) is not None for br in set(phi.ybranch))
        herm = _hermite_coeffs(4)
        self.herm = [[mpmath.mpf(v) for v in row] for row in herm]
        self.poles, self.edges = {}, None
        if self.closed:
            sigma = phi.A * root * s
            self.terms = {}
            for br in set(phi.ybranch):
                rows = []
                terms, poles = _split_terms(phi.base, br)
                self.poles[br] = [(mpmath.mpf(sp.N(coef, mpmath.mp.dps + 5)),
                                   mpmath.mpf(sp.N(pole, mpmath.mp.dps + 5)))
                                  for coef, pole in poles]
                for coef, r, lam in terms:
                    coef = mpmath.mpf(sp.N(coef, mpmath.mp.dps + 5))
                    lam = mpmath.mpf(sp.N(lam, mpmath.mp.dps + 5))
                    shift = lam * sigma
                    hes = [_shift_poly([mpmath.mpf(v) for v in herm[n]], shift)
                           for n in range(5)]
                    rows.append((coef, r, lam, shift, hes))
                self.terms[br] = rows
        zmax = _half_width(phi, root * s, mpmath.mp.dps)
        self.zmax = zmax
        self.width = _panel_width(phi, root * s)

    @property
    def has_poles(self):
        return any(self.poles.values())

    def _intervals(self, u):
        """``(wlo, whi, branch, mu, sigma)`` of each piece for the outer node ``u``."""
        phi = self.phi
        mu = phi.A * self.root * self.c * u + phi.B
        sigma = phi.A * self.root * self.s
        for (ylo, yhi), br in zip(zip(phi.yedges[:-1], phi.yedges[1:]), phi.ybranch):
            wlo, whi = (ylo - mu) / sigma, (yhi - mu) / sigma
            if wlo > whi:
                wlo, whi = whi, wlo
            yield wlo, whi, br, mu, sigma

    def _edge_terms(self, wp, wlo, whi):
        """``J = int_wlo^whi N(w) / (w - w_p) dw`` as ``[(sign, d, a)]``, ``J = sum sign
        F_d(a)`` (module docs; a pole above the piece is mirrored below it)."""
        if wp < wlo:
            terms = [(1, wlo - wp, wlo), (-1, whi - wp, whi)]
        else:   # w -> -w: pole at -w_p below [-whi, -wlo]
            terms = [(-1, wp - whi, -whi), (1, wp - wlo, -wlo)]
        return [t for t in terms if not mpmath.isinf(t[2])]

    def prepare(self, us):
        """Edge integrals for every pole term at the outer nodes ``us`` (one sweep per
        distinct edge-to-pole distance); a no-op without poles."""
        if not (self.closed and self.has_poles):
            return
        wanted = {}
        with mpmath.workdps(mpmath.mp.dps + _POLE_GUARD):
            for u in us:
                for wlo, whi, br, mu, sigma in self._intervals(mpmath.mpf(u)):
                    for _, pole in self.poles[br]:
                        wp = (pole - mu) / sigma
                        for _, d, a in self._edge_terms(wp, wlo, whi):
                            wanted.setdefault(d, set()).add(a)
            self.edges = {d: _edge_integrals(d, points) for d, points in wanted.items()}

    def _pole(self, pole, mu, sigma, wlo, whi):
        """``E_w[He_n(w) / (mu + sigma w - pole); wlo < w < whi]`` for n = 0..4 (the pole
        outside the interval), from the edge integrals of :meth:`prepare`."""
        wp = (pole - mu) / sigma
        J = mpmath.fsum(sign * self.edges[d][a] for sign, d, a in
                        self._edge_terms(wp, wlo, whi))
        moments = _gauss_moments(wlo, whi, 3)
        out = []
        for n in range(5):
            # synthetic division: He_n(w) = He_n(w_p) + (w - w_p) R_n(w)
            quotient, acc = [mpmath.mpf(0)] * max(n, 1), mpmath.mpf(0)
            for k in range(n, -1, -1):
                acc = acc * wp + self.herm[n][k]
                if k > 0:
                    quotient[k - 1] = acc
            rest = mpmath.fsum(q * m for q, m in zip(quotient, moments)) if n else 0
            out.append((acc * J + rest) / sigma)
        return out

    def wbreaks(self, u):
        """Kinks of w -> f(c u + s w), in w."""
        return [(x / self.root - self.c * u) / self.s for x in self.phi.xbreaks()]

    def __call__(self, u, n_rule):
        """[I_0..I_4](u); ``n_rule`` selects the quadrature rule (ignored when closed)."""
        if self.closed:
            return self._closed(u)
        return self._numeric(u, n_rule)

    def _closed(self, u):
        phi = self.phi
        if self.has_poles:
            # the edge integrals were computed at this precision (He_n(w_p) J + moments
            # cancel like |w_p|^4 for large |w_p|)
            with mpmath.workdps(mpmath.mp.dps + _POLE_GUARD):
                return [+v for v in self._closed_terms(phi, mpmath.mpf(u))]
        return self._closed_terms(phi, u)

    def _closed_terms(self, phi, u):
        total = [mpmath.mpf(0)] * 5
        # base argument y = mu + sigma w
        for wlo, whi, br, mu, sigma in self._intervals(u):
            for coef, pole in self.poles.get(br, ()):
                for n, value in enumerate(self._pole(pole, mu, sigma, wlo, whi)):
                    total[n] += coef * value
            for coef, r, lam, shift, hes in self.terms[br]:
                # N(w) e^{lam sigma w} = e^{shift^2/2} N(w - shift)
                factor = coef * mpmath.exp(lam * mu + shift * shift / 2)
                base_poly = [mpmath.mpf(1)]
                for _ in range(r):
                    base_poly = _poly_mul(base_poly, [mu + sigma * shift, sigma])
                moments = _gauss_moments(wlo - shift, whi - shift, r + 4)
                for n in range(5):
                    poly = _poly_mul(base_poly, hes[n])
                    total[n] += factor * mpmath.fsum(a * m for a, m in zip(poly, moments))
        g, d = phi.G, phi.D
        total = [g * t for t in total]
        total[0] += g * d
        return total

    def _numeric(self, u, n_rule):
        phi, root, c, s = self.phi, self.root, self.c, self.s
        pts = {-self.zmax, self.zmax, mpmath.mpf(0)}
        pts.update(w for w in self.wbreaks(u) if -self.zmax < w < self.zmax)
        pts = sorted(pts)
        total = [mpmath.mpf(0)] * 5
        rule = _gauss_legendre(n_rule, mpmath.mp.dps)
        for lo, hi in _panels(pts, self.width):
            branch = phi.branch_x(root * (c * u + s * mpmath.mpf(_mid(lo, hi))))
            half, mid = (hi - lo) / 2, (hi + lo) / 2
            for x, w in rule:
                z = mid + half * x
                v = phi(root * (c * u + s * z), 0, branch) * (w * half) * mpmath.npdf(z)
                z2 = z * z
                total[0] += v
                total[1] += v * z
                total[2] += v * (z2 - 1)
                total[3] += v * z * (z2 - 3)
                total[4] += v * ((z2 - 6) * z2 + 3)
        return total


