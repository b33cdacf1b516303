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

Precision claim: results are correct to an absolute ``10^-(digits+3)`` of their scale
(``Q(q)`` for K and Q; so 1 for C). The public maps turn that into ``digits`` significant
digits where it can (:mod:`kernelshape.maps._value`). Steep features
(:mod:`kernelshape.maps._features`) end panels on graded points; a double integral that would
need more than :data:`MAX_EVALUATIONS` evaluations to resolve one is refused.
"""

from __future__ import annotations

import functools
import math

import mpmath

from ..errors import ConvergenceError, UnsupportedError
from ._features import features
from ._mpinner import _Inner, _polyexp_terms
from ._mpquad import (
    _MAX_REFINE,
    GUARD,
    _bisected,
    _gauss_legendre,
    _half_width,
    _integrate_1d,
    _mid,
    _panel_width,
    _panels,
    _Phi,
    _rules,
    _tol,
    _z_points,
    expect,
)

__all__ = ["GUARD", "c_map", "expect", "q_map"]


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
        # where the inner integral has its structure: kinks and steep features seen
        # through V = c U + s W (smoothed over a width ~ s)
        extra = [x / (root * c) for x in [*phi.xbreaks(), *phi.xfeatures()]]
    zmax = _half_width(phi, root * (1 + abs(c)), mpmath.mp.dps)
    centres = {x / root for x in phi.xsplits()} | set(extra)
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
    if phi.features and not inner.closed:
        _check_cost(phi, points, width, inner, dps, what)
    q_val = _q_cached(act, q, digits)[0]
    for level in range(_MAX_REFINE + 1):
        if level:
            points = _bisected(points)
        panels = _panels(points, width)
        if inner.closed and inner.has_poles:
            # pole terms of rational pieces share one sweep over all outer nodes; should
            # it fail to converge, the inner integrals fall back to quadrature at every
            # node (slow, but independent of the sweep)
            try:
                inner.prepare([(hi + lo) / 2 + (hi - lo) / 2 * x for n in _rules(dps)
                               for lo, hi in panels for x, _ in _gauss_legendre(n, dps)])
            except ConvergenceError:
                inner.closed = False
                width = _panel_width(phi, root)
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


#: Largest number of activation evaluations the double integral may take for an activation
#: with steep features (:mod:`kernelshape.maps._features`) before it is refused.
MAX_EVALUATIONS = 2_000_000


def _check_cost(phi, points, width, inner, dps, what):
    """Refuse a double integral whose graded panels would take hours: steep features make
    both the outer and every inner integral long (their cost multiplies)."""
    n = sum(_rules(dps))
    outer = len(_panels(points, width)) * n
    ws = sorted({-inner.zmax, inner.zmax, *(w for w in inner.wbreaks(mpmath.mpf(0))
                                            if abs(w) < inner.zmax)})
    cost = outer * len(_panels(ws, inner.width)) * n
    if cost > MAX_EVALUATIONS:
        steep = min(phi.features, key=lambda f: f[1])
        raise UnsupportedError(
            f"the digits=N C map of {what} is not supported: phi changes within "
            f"{mpmath.nstr(steep[1] / abs(phi.A), 3)} of x = "
            f"{mpmath.nstr((steep[0] - phi.B) / phi.A, 6)}, and resolving that inside the "
            f"double integral takes about {cost:.1e} evaluations (limit {MAX_EVALUATIONS:.0e});"
            " Q, C(0), C(+-1) and the float64 C map resolve it")


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
    xs = phi.xsplits()
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


#: Width (in z) of a steep feature below which the uniform grids of :func:`_k_trapezoid`
#: cannot be trusted to see it (every node may fall on its flat sides); such activations
#: take the graded panels of :func:`_k_interior`.
TRAPEZOID_MIN_WIDTH = mpmath.mpf("0.02")


def _too_steep_for_grids(act, q):
    scale = abs(mpmath.mpf(act.affine_params[0])) * mpmath.sqrt(q)
    return any(f.scale / scale < TRAPEZOID_MIN_WIDTH for f in features(act.base))


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
        elif len(act.base.pieces) == 1 and _polyexp_terms(act.base, 0) is None \
                and not _too_steep_for_grids(act, q):
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
    # The Gaussian factors limit the steps too (aliasing error ~ exp(-2 pi^2 s^2 / h^2)):
    # for a slowly varying phi (small input scale) tau is large and they alone set h.
    gauss_h = mpmath.pi / mpmath.sqrt(2 * (digits + 6) * ln10) / 2
    # First pass with steps 1.6x longer: when tau is the true distance the fine grid is
    # then good to 10^-1.25(digits + 6) and the check below passes at 2.6x less work;
    # when the nearest singularity is closer (atan, asinh: distance 1, not pi/2) the
    # check fails and the usual steps follow.
    steps = [1.6] + [1.0] * _MAX_REFINE
    for boost in steps:
        h = min(boost * mpmath.pi * tau / ((digits + 6) * ln10), gauss_h)
        hy = min(h, gauss_h * s)
        result = _trapezoid_pass(phi, root, c, s, h, hy, umax, zw + 2 * phi.growth * scale * s)
        fine, coarse = result
        # Trapezoid errors fall like exp(-const / h) for analytic integrands: halving h
        # squares the relative error, so |I_h - I_2h| ~ err(2h) bounds err(h) by
        # err(2h)^2 / scale (the usual double-exponential argument, as in mpmath.quad).
        if all((a - b) ** 2 * 100 <= _tol(a, q_val, digits) * q_val
               and abs(a - b) < q_val / 100 for a, b in zip(fine, coarse)):
            return fine, q_val
        if boost == 1.0:
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

