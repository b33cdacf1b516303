"""Closed-form inner integrals of the C map for activations made of ``x^r exp(lambda x)`` terms.

On a piece where phi is a sum of ``x^r exp(lambda x)`` terms (ReLU family, ELU, SELU,
polynomials) the inner Gaussian integral over ``w`` in :mod:`kernelshape.maps.precise` is a
finite sum of truncated Gaussian moments, evaluated exactly in mpmath (:class:`_Inner`).
"""

from __future__ import annotations

import functools

import mpmath
import sympy as sp

from ..parsing import X
from ._mpquad import _gauss_legendre, _half_width, _mid, _panel_width, _panels


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
        self.closed = all(_polyexp_terms(phi.base, br) is not None for br in set(phi.ybranch))
        herm = _hermite_coeffs(4)
        if self.closed:
            sigma = phi.A * root * s
            self.terms = {}
            for br in set(phi.ybranch):
                rows = []
                for coef, r, lam in _polyexp_terms(phi.base, br):
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
        # base argument y = mu + sigma w
        mu = phi.A * self.root * self.c * u + phi.B
        sigma = phi.A * self.root * self.s
        total = [mpmath.mpf(0)] * 5
        for (ylo, yhi), br in zip(zip(phi.yedges[:-1], phi.yedges[1:]), phi.ybranch):
            wlo, whi = (ylo - mu) / sigma, (yhi - mu) / sigma
            if wlo > whi:
                wlo, whi = whi, wlo
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


