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

a cumulative integral of a smooth positive function. For the outer nodes of one C map, ``d``
is fixed per (piece edge, pole), and :meth:`_Inner.prepare` gets ``F_d`` at all of them at
once (:func:`_edge_integrals`): points far from the pole's edge on their own (Dawson's
asymptotic series below 0, one Gauss-Laguerre rule for large ``a d``, a moment series for a
pole far beyond the Gaussian mass), the rest by a downward
sweep (a Taylor step of the ODE between close points, a truncated quadrature of the gap
otherwise). Near |c| = 1 the points spread over hundreds of units of ``a``; every step stays
bounded there.
"""

from __future__ import annotations

import functools
import itertools
import math

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
    """``{a: F_d(a)}`` for the points ``a`` (module docs), by one downward sweep.

    In the scaled form ``h_a(s) = exp(((s - d)^2 - (a - d)^2) / 2) Phi_c(s)``, with
    ``F_d(a) = int_a^inf h_a(s) ds``, neighbouring points ``lo < hi`` are linked by

        F_d(lo) = exp(((hi - d)^2 - (lo - d)^2) / 2) F_d(hi) + int_lo^hi h_lo(s) ds.

    Every term is positive and at most ``F_d(lo)``. ``h_lo`` decays at least like
    ``exp(-r (s - lo))`` with ``r = d + max(0, -s)`` (its log-derivative is ``s - d`` minus
    the inverse Mills ratio, which exceeds ``max(0, s)``), so each integral stops where it
    has fallen below ``10^-(dps + 10)`` of its start: gaps far from the pole cost no more
    than near ones, however far the points spread (near |c| = 1 they span thousands).
    """
    dps = mpmath.mp.dps
    budget = (dps + 10) * mpmath.log(10)

    def integral(lo, hi):
        # truncation length: within [lo, lo + t] the decay rate is at least d, and at
        # least d + |lo| / 2 while s <= lo / 2
        t = budget / d
        if lo < 0:
            t_neg = budget / (d - lo / 2)
            if t_neg <= -lo / 2:
                t = t_neg
        end = lo + t if hi is None else min(hi, lo + t)
        shift = (lo - d) ** 2

        def h(s):
            return [mpmath.exp(((s - d) ** 2 - shift) / 2) * mpmath.erfc(s / mpmath.sqrt(2))
                    / 2]
        # panels a few decay lengths wide, and (for s > 2, where h is exp(-d s) times a
        # function smooth on the scale of s) growing with s
        cuts, x = [lo], lo
        while x < end:
            x = min(end, x + min(8 / (d + max(0, -x)), max(mpmath.mpf(1) / 2, x / 4)))
            cuts.append(x)
        return _integrate_1d(lambda a, b: h, cuts, max(b - a for a, b in
                                                       itertools.pairwise(cuts)),
                             dps - 8, "an edge integral",
                             scale_of=lambda values: abs(values[0]))[0]

    order = sorted(set(points), reverse=True)
    out = {}
    for a in order:
        value = _direct_edge(d, a)
        if value is not None:
            out[a] = value
    hi = None
    for lo in order:
        if lo in out:
            pass
        elif hi is None:
            out[lo] = integral(lo, None)
        else:
            step = _taylor_step(d, hi, out[hi], lo - hi)
            out[lo] = step if step is not None else (
                mpmath.exp((hi - lo) * (hi + lo - 2 * d) / 2) * out[hi] + integral(lo, hi))
        hi = lo
    return out


#: Smallest ``a d`` (distance from 0 to the pole of the Laguerre integrand) for which
#: :func:`_direct_edge` tries one Gauss-Laguerre rule for ``F_d(a)``, ``a > 0``.
_LAGUERRE_REACH = 20


@functools.lru_cache(maxsize=16)
def _gauss_laguerre(n: int, dps: int):
    """n-point Gauss-Laguerre nodes and weights (weight ``e^-x`` on [0, inf)) at ``dps``
    digits: numpy's float64 nodes polished by Newton on ``L_n`` (three-term recurrence),
    weights ``x / ((n + 1) L_(n+1)(x))^2``."""
    import numpy as np

    def laguerre(x):
        """(L_n(x), L_n'(x), L_(n+1)(x))."""
        prev, cur = mpmath.mpf(1), 1 - x
        for k in range(1, n):
            prev, cur = cur, ((2 * k + 1 - x) * cur - k * prev) / (k + 1)
        nxt = ((2 * n + 1 - x) * cur - n * prev) / (n + 1)
        return cur, n * (cur - prev) / x, nxt

    rule = []
    with mpmath.workdps(dps + 10):
        tol = mpmath.mpf(10) ** -(dps + 8)
        for x0 in np.polynomial.laguerre.laggauss(n)[0]:
            x = mpmath.mpf(float(x0))
            for _ in range(12):
                value, slope, _ = laguerre(x)
                step = value / slope
                x -= step
                if abs(step) <= tol * x:
                    break
            else:
                raise ConvergenceError(f"Gauss-Laguerre node {float(x0)} of {n} did not "
                                       "converge")
            rule.append((x, x / ((n + 1) * laguerre(x)[2]) ** 2))
    return tuple((+x, +w) for x, w in rule)


def _direct_edge(d, a):
    """``F_d(a)`` on its own, far from the pole's edge; None elsewhere (the sweep takes it).

    * ``a`` far below 0: ``F_d(a) = sqrt(2) Dawson(D / sqrt 2) - int_-inf^a ...`` with
      ``D = d - a``; the second term is below ``N(a) (|ln d| + 6) (D + 3)`` relative, and
      Dawson's asymptotic series gives ``F_d(a) = sum_j (2j - 1)!! / D^(2j + 1)``, used
      when it reaches the working precision before its terms turn (``D^2`` large).
    * ``a d`` large: ``F_d(a) = N(a) / a int_0^inf e^-x e^(-x^2 / (2 a^2)) / (x / a + d)
      dx``, whose integrand is smooth on ``[0, inf)`` (pole at ``x = -a d``): one
      Gauss-Laguerre rule, two sizes that must agree.
    * ``d - a`` large against ``|a|``: :func:`_moment_edge`.

    None of them evaluates erfc more than once, where the sweep's gap quadratures take
    dozens per point."""
    dps = mpmath.mp.dps
    eps = mpmath.mpf(2) ** (-mpmath.mp.prec - 4)
    if a < 0 and mpmath.npdf(a) * (abs(mpmath.log(d)) + 6) * (d - a + 3) <= eps:
        return _dawson_edge(d - a, eps)
    if a > 0 and a * d >= _LAGUERRE_REACH:
        n = int(0.8 * dps) + 6
        values = []
        for size in (n, n - n // 6):
            total = mpmath.mpf(0)
            for x, w in _gauss_laguerre(size, dps):
                total += w * mpmath.exp(-(x / a) ** 2 / 2) / (x / a + d)
            values.append(total * mpmath.npdf(a) / a)
        fine, coarse = values
        if abs(fine - coarse) <= mpmath.mpf(10) ** (8 - dps) * abs(fine):
            return fine
    return _moment_edge(d, a) if d - a >= 4 * (abs(a) + 8) else None


def _dawson_edge(D, eps):
    """``sum_j (2j - 1)!! / D^(2j + 1)`` to relative ``eps``, or None if its terms turn
    first."""
    inv = 1 / (D * D)
    term = total = 1 / D
    for j in range(1, 10 * mpmath.mp.dps):
        ratio = (2 * j - 1) * inv
        if ratio >= 1:
            return None
        term *= ratio
        total += term
        if term <= eps * total:
            return total
    return None


def _moment_edge(d, a):
    """``F_d(a) = sum_k (-1)^k M_k(a) / D^(k+1)``, ``D = d - a``, ``M_k(a) = int_a^inf w^k
    N(w) dw`` (:func:`_gauss_moments`; expanding ``1 / (w + D)``): the pole far beyond the
    Gaussian mass (large ``d``, as for small input scales near |c| = 1). The moments'
    recurrence may cancel, but only by ``(k - 1)!!`` while the terms fall like
    ``((|a| + sqrt k) / D)^k``, which sets how many are taken. None if the series does
    not settle."""
    eps = mpmath.mpf(2) ** (-mpmath.mp.prec - 4)
    D = d - a
    log_eps, spread = float(mpmath.log(eps)), float(abs(a)) + 1.0
    n = next((k for k in range(2, 20 * mpmath.mp.dps)
              if k * math.log((spread + math.sqrt(k)) / float(D)) < log_eps), None)
    if n is None:
        return None
    terms = [m / D ** (k + 1) for k, m in enumerate(_gauss_moments(a, mpmath.inf, n + 3))]
    total = mpmath.fsum(-t if k % 2 else t for k, t in enumerate(terms))
    return total if all(abs(t) <= eps * abs(total) for t in terms[-3:]) else None


#: Longest Taylor step of :func:`_taylor_step`, in units of ``1 / (|a - d| + |a| + 1)``,
#: and the extra digits it carries for the cancellation of its terms (up to ``e^(2 x)``).
_TAYLOR_REACH, _TAYLOR_GUARD = 4, 8


def _taylor_step(d, a, value, t):
    """``F_d(a + t)`` from ``F_d(a)`` by the Taylor series of ``F' = -Phi_c - (a - d) F``,
    or None when the step is too long for it.

    With ``f_k = F^(k)(a) t^k / k!`` and ``p_k = Phi_c^(k)(a) t^k / k!`` (``Phi_c^(k) =
    (-1)^k He_(k-1) N`` for k >= 1), differentiating the ODE k times gives
    ``f_(k+1) = -t (p_k + (a - d) f_k + t f_(k-1)) / (k + 1)``. One erfc and one exp per
    point, where a quadrature of the gap takes dozens: the sweep's points are dense. The
    terms may cancel (stepping towards a decaying solution); the sum is refused if the
    largest term exceeds it by more than the guard digits."""
    reach = abs(t) * (abs(a - d) + abs(a) + 1)
    if reach > _TAYLOR_REACH:
        return None
    with mpmath.workdps(mpmath.mp.dps + _TAYLOR_GUARD):
        eps = mpmath.mpf(2) ** (-mpmath.mp.prec - 8)
        density = mpmath.npdf(a)
        p = mpmath.erfc(a / mpmath.sqrt(2)) / 2          # p_0
        e_prev, e = mpmath.mpf(0), mpmath.mpf(1)          # He_(k-1) t^(k-1) / (k-1)!
        f_prev, f = mpmath.mpf(0), +value
        total, largest, small = f, abs(f), 0
        for k in range(1000):
            f_prev, f = f, -t * (p + (a - d) * f + t * f_prev) / (k + 1)
            total += f
            largest = max(largest, abs(f))
            # p_(k+1) = (-1)^(k+1) N t e_k / (k + 1), e_k = He_k t^k / k!
            if k > 0:
                e_prev, e = e, (a * t * e - t * t * e_prev) / k
            p = (-1) ** (k + 1) * density * t * e / (k + 1)
            small = small + 1 if abs(f) <= eps * abs(total) and abs(p) <= eps * abs(total) \
                else 0
            if small == 3:
                if largest > abs(total) * mpmath.mpf(10) ** (_TAYLOR_GUARD - 1):
                    return None
                return total
    return None


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

    # x^j N(x) at the ends (0 at an infinite one): one density each, powers by products
    ends = [(0, 0) if mpmath.isinf(x) else (x, mpmath.npdf(x)) for x in (lo, hi)]
    powers = [mpmath.mpf(1), mpmath.mpf(1)]
    out = [m0, ends[0][1] - ends[1][1]]
    for j in range(2, n + 1):
        powers = [p * x for p, (x, _) in zip(powers, ends)]
        out.append((j - 1) * out[j - 2] + powers[0] * ends[0][1] - powers[1] * ends[1][1])
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
        """Kinks (and graded points around steep features) of w -> f(c u + s w), in w."""
        return [(x / self.root - self.c * u) / self.s for x in self.phi.xsplits()]

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


