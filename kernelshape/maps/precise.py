"""Q and C maps in mpmath, correct to N significant digits (the ``digits=N`` route).

Every quantity is a Gaussian integral of phi itself, never of its derivatives, so kinks and
jumps need no special terms (THEORY.md §1):

* Q and its q-derivatives differentiate the Gaussian density, not phi
  (``d/dq N(x; 0, q)`` brings down Hermite polynomials):

  .. math:: Q^{(k)}(q) = E[\\phi(\\sqrt q z)^2 \\, He_{2k}(z)] / (2q)^k.

* C and its c-derivatives use ``d/dc p_c(u, v) = d^2/(du dv) p_c(u, v)`` for the standard
  bivariate normal density (Price's theorem before integrating by parts). With
  ``v = c u + s w``, ``s = sqrt(1 - c^2)`` and ``f(u) = phi(sqrt(q) u)``:

  .. math:: K^{(k)}(c) = E_{u,w}\\Big[f(u) f(cu + sw)
            \\sum_{j=0}^{k} \\binom{k}{j} (-c)^j \\frac{He_{k-j}(u) He_{k+j}(w)}{s^{k+j}}\\Big],

  which equals ``q^k E[phi^(k)(U) phi^(k)(V)]`` with every Dirac mass of ``phi^(k)`` at the
  kinks included; ``C^(k)(c) = K^(k)(c) / Q(q)``. The ``s^-(k+j)`` factors cancel digits
  as ``|c| -> 1``; the working precision grows to pay for them. At ``c = +-1`` the
  one-dimensional forms ``q^k E[phi^(k)(U) phi^(k)(+-U)]`` are used, with the Dirac masses
  added by hand (``mpmath.inf`` where two of them meet).

The inner integral over ``w`` is done in closed form on pieces where phi is a sum of
``x^r exp(lambda x)`` terms (ReLU family, ELU, SELU, polynomials) and by quadrature
otherwise. All quadrature (:mod:`kernelshape.maps._mpquad`-style composite Gauss-Legendre
on panels split at the kinks) is done twice, with two rules, and the results must agree to
``10^-(digits+3)`` relative (absolute ``10^-(digits+4)`` on the scale of Q near zero),
else :class:`~kernelshape.errors.ConvergenceError` is raised.

Precision claim: results are correct to ``digits`` significant digits (absolute
``10^-digits`` for values near zero).
"""

from __future__ import annotations

import functools
import itertools
import math

import mpmath
import sympy as sp

from ..errors import ConvergenceError, UnsupportedError
from ..parsing import X

__all__ = ["GUARD", "c_map", "expect", "q_map"]

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

    def xbreaks(self):
        """Breakpoints of the transformed activation in x."""
        return sorted((y - self.B) / self.A for y in self.ybreaks)

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
    pts.update(x / scale for x in phi.xbreaks())
    pts.update(extra)
    return sorted(p for p in pts if -zmax <= p <= zmax)


# -- one-dimensional -----------------------------------------------------------------------
def _integrate_1d(make, points, width, digits, what, scale_of=None):
    """Vector integrals ``sum_i w_i F(z_i)`` on panels; ``make(lo, hi)`` gives F there.

    Runs two Gauss-Legendre rules and, if they disagree, halves the panels (up to
    ``_MAX_REFINE`` times).
    """
    dps = mpmath.mp.dps
    for _ in range(_MAX_REFINE + 1):
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
        points = {mpmath.mpf(0), -zmax, zmax} | {(x - b) / a for x in phi.xbreaks()}
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


# -- Q map ---------------------------------------------------------------------------------
def _hermite(n, z):
    """[He_0(z), ..., He_n(z)] (probabilists')."""
    out = [mpmath.mpf(1), z]
    for k in range(1, n):
        out.append(z * out[k] - k * out[k - 1])
    return out[: n + 1]


def _q_all(act, q, digits):
    """[Q, Q', Q''] at q (mpf, working precision of the caller)."""
    phi = _Phi(act)
    root = mpmath.sqrt(q)

    def make(lo, hi):
        branch = phi.branch_x(root * mpmath.mpf(_mid(lo, hi)))

        def fn(z):
            v = phi(root * z, 0, branch)
            g = v * v * mpmath.npdf(z)
            z2 = z * z
            return [g, g * (z2 - 1) / 2, g * ((z2 - 6) * z2 + 3) / 4]
        return fn

    scale_of = (lambda vals: abs(vals[0]))
    vals = _integrate_1d(make, _z_points(phi, root), _panel_width(phi, root), digits,
                         f"Q map of {act.expr} at q = {mpmath.nstr(q, 8)}", scale_of)
    return [vals[0], vals[1] / q, vals[2] / (q * q)]


@functools.lru_cache(maxsize=4096)
def _q_cached(act, q, digits):
    with mpmath.workdps(digits + GUARD):
        return tuple(_q_all(act, mpmath.mpf(q), digits))


def q_map(act, q, order: int = 0, digits: int = 30):
    """Q (order 0), Q' or Q'' at ``q > 0`` to ``digits`` significant digits.

    .. math:: Q^{(k)}(q) = \\frac{d^k}{dq^k} E[\\phi(\\sqrt q z)^2]
              = E[\\phi(\\sqrt q z)^2 He_{2k}(z)] / (2q)^k

    (THEORY.md §1; differentiating the Gaussian density needs no derivative of phi).

    Args:
        act: a fixed Activation.
        q: input second moment (float or mpf), ``q > 0``.
        order: 0, 1 or 2.
        digits: significant digits (absolute ``10^-digits`` for values near zero).

    Returns:
        ``mpmath.mpf``.

    Example:
        >>> from kernelshape import activation
        >>> q_map(activation("relu"), 3.0, 0, digits=40)
        mpf('1.5')
    """
    with mpmath.workdps(int(digits) + GUARD):
        key = mpmath.mpf(q)
    return _q_cached(act, key, int(digits))[order]


# -- C map -----------------------------------------------------------------------------------
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


def _combine(f_u, hu, inner, c, s):
    """Outer integrand pieces for K, K', K'' from f(u), He(u) and inner integrals."""
    out = []
    for k in range(3):
        acc = mpmath.mpf(0)
        for j in range(k + 1):
            acc += math.comb(k, j) * (-c) ** j * hu[k - j] * inner[k + j] / s ** (k + j)
        out.append(f_u * acc)
    return out


def _k_interior(act, q, c, digits, what):
    """[K, K', K''] at |c| < 1 by the double integral (module docs)."""
    phi = _Phi(act)
    root = mpmath.sqrt(q)
    s = mpmath.sqrt(1 - c * c)
    inner = _Inner(phi, root, c, s, digits)
    extra = []
    if c != 0:
        extra = [x / (root * c) for x in phi.xbreaks()]
    zmax = _half_width(phi, root * (1 + abs(c)), mpmath.mp.dps)
    centres = {x / root for x in phi.xbreaks()} | set(extra)
    points = {mpmath.mpf(0), -zmax, zmax} | centres
    # The inner integral turns a kink into a smoothed kink of width ~ s near x / (root c):
    # grade the panels geometrically towards it.
    for x0 in set(extra):
        step = s
        while step < 1:
            points.update((x0 - step, x0 + step))
            step *= 4
    points = sorted(p for p in points if -zmax <= p <= zmax)
    # With the inner integral in closed form the outer integrand is entire on each piece:
    # wide panels converge as fast as narrow ones.
    width = 3 * _panel_width(phi, root) if inner.closed else _panel_width(phi, root)
    dps = mpmath.mp.dps
    q_val = _q_cached(act, q, digits)[0]
    for _ in range(_MAX_REFINE + 1):
        panels = _panels(points, width)
        results = []
        for n in _rules(dps):
            total = [mpmath.mpf(0)] * 3
            for lo, hi in panels:
                branch = phi.branch_x(root * mpmath.mpf(_mid(lo, hi)))
                half, mid = (hi - lo) / 2, (hi + lo) / 2
                for x, w in _gauss_legendre(n, dps):
                    u = mid + half * x
                    f_u = phi(root * u, 0, branch) * (w * half) * mpmath.npdf(u)
                    vals = _combine(f_u, _hermite(2, u), inner(u, n), c, s)
                    total = [t + v for t, v in zip(total, vals)]
            results.append(total)
        fine, coarse = results
        if all(abs(a - b) <= _tol(a, q_val, digits) for a, b in zip(fine, coarse)):
            return fine, q_val
        width /= 2
    raise ConvergenceError(
        f"mpmath double integral for the C map of {what} did not reach {digits} digits: "
        f"two rules give {[mpmath.nstr(v, 15) for v in fine]} and "
        f"{[mpmath.nstr(v, 15) for v in coarse]}")


def _k_zero(act, q, digits, what):
    """[K, K', K''] at c = 0: ``K^(k)(0) = E[f(z) He_k(z)]^2`` (Mehler)."""
    phi = _Phi(act)
    root = mpmath.sqrt(q)

    def make(lo, hi):
        branch = phi.branch_x(root * mpmath.mpf(_mid(lo, hi)))

        def fn(z):
            v = phi(root * z, 0, branch) * mpmath.npdf(z)
            return [v, v * z, v * (z * z - 1)]
        return fn

    q_val = _q_cached(act, q, digits)[0]
    # absolute accuracy sqrt(Q) 10^-(digits+3) on the means gives that of their squares
    means = _integrate_1d(make, _z_points(phi, root), _panel_width(phi, root), digits + 1,
                          what, lambda vals: mpmath.sqrt(q_val))
    return [m * m for m in means], q_val


def _k_edge(act, q, sign, digits, what):
    """[K, K', K''] at c = sign (= +-1): ``q^k E[phi^(k)(U) phi^(k)(sign U)]`` + Dirac."""
    phi = _Phi(act)
    root = mpmath.sqrt(q)
    xs = phi.xbreaks()
    mirrored = sorted(set(xs) | {sign * x for x in xs})
    points = sorted(set(_z_points(phi, root)) | {x / root for x in mirrored})

    def make(lo, hi):
        mid = root * mpmath.mpf(_mid(lo, hi))
        b1, b2 = phi.branch_x(mid), phi.branch_x(sign * mid)

        def fn(z):
            x = root * z
            g = mpmath.npdf(z)
            return [g * phi(x, k, b1) * phi(sign * x, k, b2) * q**k for k in range(3)]
        return fn

    q_val = _q_cached(act, q, digits)[0]
    smooth = _integrate_1d(make, points, _panel_width(phi, root), digits, what,
                           lambda vals: q_val)
    out = [smooth[0]]
    for k in (1, 2):
        # phi^(k) holds J1 delta(x - x_i) from jumps of phi^(k-1) (and delta' from jumps
        # of phi^(k-2), which we only support where they make the result infinite).
        dirac = [(x, j) for x, j in phi.jumps(k - 1) if j != 0]
        dprime = [(x, j) for x, j in phi.jumps(k - 2) if j != 0] if k == 2 else []
        density = (lambda x: mpmath.npdf(x / root) / root)
        infinite = mpmath.mpf(0)
        finite = smooth[k]
        for xi, ji in dirac:
            for xj, jj in dirac:
                if abs(xi - sign * xj) <= mpmath.mpf(10) ** (-(digits + 5)) * (1 + abs(xi)):
                    infinite += ji * jj * density(xi)
        if sign > 0 and (dirac or dprime):
            out.append(mpmath.inf)
            continue
        if dprime:
            raise UnsupportedError(
                f"C'' at c = -1 for {what}: phi jumps, and the derivative of a Dirac mass "
                "meets phi'' there; not supported")
        if infinite != 0:
            out.append(mpmath.inf if infinite > 0 else -mpmath.inf)
            continue
        for xi, ji in dirac:
            # delta(U - xi) phi^(k)(sign U) and its mirror: density at xi times the other
            # factor's (two-sided average) value at sign * xi, both ways round.
            y = sign * xi
            vals = [phi(y + e, k) for e in (-mpmath.mpf(10) ** -(mpmath.mp.dps - 5),
                                            mpmath.mpf(10) ** -(mpmath.mp.dps - 5))]
            other = (vals[0] + vals[1]) / 2
            finite += 2 * q**k * ji * density(xi) * other
        out.append(finite)
    return out, q_val


@functools.lru_cache(maxsize=4096)
def _c_cached(act, c, q, digits):
    s2 = 1 - c * c
    # digits lost to the s^-(k+j) factors near |c| = 1
    lost = 0 if s2 == 0 else int(max(0, -4 * mpmath.log10(s2))) + 2
    what = f"{act.expr} at q = {mpmath.nstr(q, 8)}, c = {mpmath.nstr(c, 8)}"
    with mpmath.workdps(digits + GUARD + lost):
        c, q = mpmath.mpf(c), mpmath.mpf(q)
        if abs(c) == 1:
            ks_, q_val = _k_edge(act, q, int(c), digits, what)
        elif c == 0:
            ks_, q_val = _k_zero(act, q, digits, what)
        elif len(act.base.pieces) == 1 and _polyexp_terms(act.base, 0) is None:
            ks_, q_val = _k_trapezoid(act, q, c, digits, what)
        else:
            ks_, q_val = _k_interior(act, q, c, digits, what)
        out = [k / q_val for k in ks_]
        if abs(c) == 1 and c > 0:
            out[0] = mpmath.mpf(1)
    return tuple(out)


def c_map(act, c, q=1.0, order: int = 0, digits: int = 30):
    """C (order 0), C' or C'' at ``c`` in [-1, 1] and input ``q`` to ``digits`` digits.

    .. math:: C^{(k)}(c) = q^k E[\\phi^{(k)}(U) \\phi^{(k)}(V)] / Q(q), \\quad
              Var U = Var V = q, \\ Cov(U, V) = q c,

    Dirac masses of ``phi^(k)`` at kinks included (THEORY.md §1; computed as in the module
    docs). At ``c = 1`` a jump of ``phi^(k-1)`` makes ``C^(k)`` infinite: returns
    ``mpmath.inf``.

    Args:
        act: a fixed Activation.
        c: correlation in [-1, 1] (float or mpf).
        q: input second moment, ``q > 0``.
        order: 0, 1 or 2.
        digits: significant digits (absolute ``10^-digits`` near zero).

    Returns:
        ``mpmath.mpf`` (possibly ``mpmath.inf``).

    Example:
        >>> from kernelshape import activation
        >>> mpmath.nstr(c_map(activation("relu"), 0.0, digits=30), 25)   # 1/pi
        '0.3183098861837906715377675'
    """
    digits = int(digits)
    with mpmath.workdps(digits + GUARD):
        key_c, key_q = mpmath.mpf(c), mpmath.mpf(q)
    return _c_cached(act, key_c, key_q, digits)[order]


# -- smooth activations: trapezoid sums on uniform grids -------------------------------------
def _k_trapezoid(act, q, c, digits, what):
    """[K, K', K''] at |c| < 1 for an activation analytic on the whole line.

    The trapezoid rule converges geometrically for analytic integrands that decay
    (error ``~ exp(-2 pi tau / h)`` for a strip of half-width ``tau``), and on uniform grids
    ``f(y_j)`` is evaluated once for all outer nodes: the inner Gaussian weights
    ``exp(-(y_j - c u)^2 / 2 s^2)`` follow by two multiplications per node (a recurrence
    in ``j``), done in fixed-point integers. Grids ``h`` and ``2h`` (a subset) are compared;
    geometric convergence makes the error of the ``h`` grid about the square of theirs.
    """
    phi = _Phi(act)
    root = mpmath.sqrt(q)
    s = mpmath.sqrt(1 - c * c)
    dps = mpmath.mp.dps
    scale = abs(phi.A) * root
    tau = mpmath.pi / 2 / scale  # assumed distance of the nearest singularity (in v)
    ln10 = mpmath.log(10)
    q_val = _q_cached(act, q, digits)[0]
    zw = mpmath.sqrt(2 * ln10 * (dps + 4)) + 2
    umax = 2 * phi.growth * scale + zw
    for _ in range(_MAX_REFINE + 1):
        h = mpmath.pi * tau / ((digits + 6) * ln10)
        hy = min(h, mpmath.pi * s / mpmath.sqrt(2 * (digits + 6) * ln10) / 2)
        result = _trapezoid_pass(phi, root, c, s, h, hy, umax, zw + 2 * phi.growth * scale * s)
        fine, coarse = result
        # Trapezoid errors fall like exp(-const / h) for analytic integrands: halving h
        # squares the relative error, so |I_h - I_2h| ~ err(2h) bounds err(h) by
        # err(2h)^2 / scale (the usual double-exponential argument, as in mpmath.quad).
        if all((a - b) ** 2 * 100 <= _tol(a, q_val, digits) * q_val
               and abs(a - b) < q_val / 100 for a, b in zip(fine, coarse)):
            return fine, q_val
        tau /= 2
    raise ConvergenceError(
        f"trapezoid sums for the C map of {what} did not reach {digits} digits: grids h and "
        f"2h give {[mpmath.nstr(v, 15) for v in fine]} and {[mpmath.nstr(v, 15) for v in coarse]}")


def _trapezoid_pass(phi, root, c, s, h, hy, umax, zw):
    prec = mpmath.mp.prec + 40
    one = 1 << prec

    def fix(x):
        return int(mpmath.nint(x * one))

    ymax = abs(c) * umax + s * zw
    jmax = int(mpmath.ceil(ymax / hy))
    ys = [j * hy for j in range(-jmax, jmax + 1)]
    fy = [fix(phi(root * y)) for y in ys]
    delta = hy / s
    rho = fix(mpmath.exp(-delta * delta))
    imax = int(mpmath.ceil(umax / h))
    totals = {2: [mpmath.mpf(0)] * 3, 1: [mpmath.mpf(0)] * 3}
    band = int(mpmath.ceil(s * zw / hy)) + 1
    for i in range(-imax, imax + 1):
        u = i * h
        centre = c * u / hy
        j_lo = max(-jmax, int(mpmath.floor(centre)) - band)
        j_hi = min(jmax, int(mpmath.ceil(centre)) + band)
        t0 = (j_lo * hy - c * u) / s
        jc = min(max(int(mpmath.nint(centre)), j_lo), j_hi)
        tc = (jc * hy - c * u) / s
        # Gaussian weights by recurrence outwards from the centre (fixed point keeps
        # absolute accuracy, which is what the sums need)
        weights = {}
        e = fix(mpmath.exp(-tc * tc / 2))
        up = fix(mpmath.exp(-tc * delta - delta * delta / 2))
        down = fix(mpmath.exp(tc * delta - delta * delta / 2))
        weights[jc] = e
        for j in range(jc + 1, j_hi + 1):
            e = (e * up) >> prec
            up = (up * rho) >> prec
            weights[j] = e
        e = weights[jc]
        for j in range(jc - 1, j_lo - 1, -1):
            e = (e * down) >> prec
            down = (down * rho) >> prec
            weights[j] = e
        sums = [[0] * 5, [0] * 5]  # all j, even j (grid 2 hy): sum v_j m^r, m = j - j_lo
        for m, j in enumerate(range(j_lo, j_hi + 1)):
            v = (fy[j + jmax] * weights[j]) >> prec
            vm = v * m
            vm2 = vm * m
            vm3 = vm2 * m
            for row in (sums[0], sums[1]) if j % 2 == 0 else (sums[0],):
                row[0] += v
                row[1] += vm
                row[2] += vm2
                row[3] += vm3
                row[4] += vm3 * m
        fu = phi(root * u) * mpmath.npdf(u)
        hu = _hermite(2, u)
        for key, row, weight in ((1, sums[0], hy), (2, sums[1], 2 * hy)):
            if key == 2 and i % 2:
                continue
            # moments in t = t0 + m delta, then Hermite combinations
            pm = [mpmath.mpf(x) / one for x in row]
            tm = []
            for r in range(5):
                tm.append(mpmath.fsum(math.comb(r, k) * t0 ** (r - k) * delta**k * pm[k]
                                      for k in range(r + 1)))
            norm = weight / (s * mpmath.sqrt(2 * mpmath.pi))
            inner = [tm[0], tm[1], tm[2] - tm[0], tm[3] - 3 * tm[1],
                     tm[4] - 6 * tm[2] + 3 * tm[0]]
            inner = [norm * v for v in inner]
            vals = _combine(fu * (h if key == 1 else 2 * h), hu, inner, c, s)
            totals[key] = [t + v for t, v in zip(totals[key], vals)]
    return totals[1], totals[2]
