"""dks's own search, on dks's own quadrature: which branch ``dks`` picks for TAT when phi''
jumps.

``dks`` (0.1.2) evaluates every Gaussian expectation with one fixed rule: 100,000-point
Gauss-Legendre on ``[-10, 10]``, never split at a kink. Where phi''^2 jumps (elu; not softsign, whose
phi'' only changes sign), the integrand of ``C''(1) = E[phi_hat''^2]`` jumps and dks's
value is off by ``O(h)``
(``h ~ 3e-4``, the node spacing), so its MINPACK ``hybr`` search, run from dks's starting
points in dks's order, can converge from a different start than it would on exact values,
and so land on another branch (TAT elu lands elsewhere on 5 of 7 networks).
:func:`tat_branch` reruns that search on the same rule, to name the branch; the solver
then polishes the point on kernelshape's exact maps (Newton), so only the branch comes
from this emulation, never the digits.

The rule's nodes and weights come from the interior asymptotic expansion of the Legendre
polynomial (Stieltjes; as used by Hale & Townsend 2013 and Bogaert 2014 for large-n Gauss
rules): for ``x = cos(theta)``,

    P_n(cos t) = C_n sum_m h_m cos((n + m + 1/2) t - (m + 1/2) pi / 2) / (2 sin t)^(m + 1/2),

``C_n = (2 / sqrt(pi)) Gamma(n + 1) / Gamma(n + 3/2)``,
``h_m = prod_{j <= m} (j - 1/2)^2 / (j (n + j + 1/2))``. Newton in ``t`` from
``t_k = (4k - 1) pi / (4n + 2)`` gives the nodes, ``w = 2 / (dP/dt)^2`` the weights, in
0.2 s without scipy's O(n^2) eigenvalue route (~4 minutes for n = 100,000; dks ships the
table). For ``|x| < 0.95`` (``|y| < 9.5`` on dks's interval) nodes match scipy's to 3e-16
and weights to 2e-10 (scipy's own weights carry ~1e-11); the outermost nodes are
rougher, but their Gaussian weight is below ``e^-45``.

Only the branch choice is emulated where dks's error steers its search. Where phi' jumps
(selu), dks's C'(1) carries the same sawtooth error at O(1) slope, so its roots form a
cloud ``3e-4`` apart and which one its hybr reaches depends on the last bits of its
arithmetic; that is not reproduced (see the DKS notes). Even for elu, on some networks
and targets dks's search sits on such an edge: 1e-16 relative noise added to its sums
changes which start succeeds first (seen on resnet(152, 0.8, version="v1") at tau 0.3 and
resnet(50) at tau 0.1), so no emulation can promise dks's branch there.

The search evaluates the rule's sums through :class:`RuleMeans` (an Euler-Maclaurin form
of each branch's share, not a visit of all 100,000 nodes: ~0.1 ms per evaluation instead
of ~6 ms, the same sums to ~1e-14).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math

import numpy as np

from ..maps.gauss import gauss_legendre

#: dks 0.1.2's quadrature: Gauss-Legendre order and half-width of the interval.
ORDER = 100_000
HALF_WIDTH = 10.0
#: Points per panel of the integrals in :class:`RuleMeans`.
POINTS = 24
#: Terms of the asymptotic expansion (the m-th is ~ (2 n sin t)^-m: 1e-5 per term here).
_TERMS = 6
#: Newton steps on the nodes (quadratic from Tricomi's first-order guess: 3 suffice).
_NEWTON_STEPS = 4


@functools.cache
def legendre_rule(n: int = ORDER):
    """Gauss-Legendre nodes (ascending) and weights on ``[-1, 1]`` for large even ``n``
    (``n >= 1000``), by the asymptotic expansion above."""
    if n % 2 or n < 1000:
        raise ValueError(f"legendre_rule needs an even n >= 1000, got {n!r}")
    import mpmath

    k = np.arange(1, n // 2 + 1, dtype=np.float64)
    t = (4.0 * k - 1.0) * math.pi / (4.0 * n + 2.0)
    with mpmath.workdps(30):
        c_n = float(2 / mpmath.sqrt(mpmath.pi) * mpmath.gamma(n + 1)
                    / mpmath.gamma(n + mpmath.mpf(3) / 2))
    h = [1.0]
    for m in range(1, _TERMS):
        h.append(h[-1] * (m - 0.5) ** 2 / (m * (n + m + 0.5)))

    def p_and_dp(t):
        s, c = np.sin(t), np.cos(t)
        val = np.zeros_like(t)
        der = np.zeros_like(t)
        for m in range(_TERMS):
            phase = (n + m + 0.5) * t - (m + 0.5) * math.pi / 2
            scale = (2.0 * s) ** -(m + 0.5)
            val += h[m] * np.cos(phase) * scale
            der -= h[m] * scale * ((n + m + 0.5) * np.sin(phase)
                                   + (m + 0.5) * np.cos(phase) * c / s)
        return c_n * val, c_n * der

    for _ in range(_NEWTON_STEPS):
        p, dp = p_and_dp(t)
        t = t - p / dp
    _, dp = p_and_dp(t)
    x, w = np.cos(t), 2.0 / (dp * dp)        # descending from ~1 to ~0
    return np.concatenate([-x, x[::-1]]), np.concatenate([w, w[::-1]])


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@functools.cache
def _gaussian_rule():
    """``(y, g)``: dks's nodes on ``[-10, 10]`` and weights times the standard normal
    density, so ``E[f(z)] ~ g @ f(y)``."""
    x, w = legendre_rule()
    y = HALF_WIDTH * x
    return y, HALF_WIDTH * w * np.exp(-0.5 * y * y) / math.sqrt(2.0 * math.pi)


def _evaluator(act):
    """``f(x) -> (phi, phi', phi'')`` on an array, branch by branch, as dks's autograd
    derivatives see them (one-sided at kinks; no Dirac masses)."""
    from ..maps._vector import fused_branches

    fns = fused_branches(act)
    pieces = act.base.pieces
    lows = np.array([p.lo for p in pieces], dtype=np.float64)
    a, b, d, g = (float(v) for v in act.affine_params)

    def evaluate(x):
        u = a * x + b
        index = np.searchsorted(lows, u, side="right") - 1
        out = [np.empty_like(u) for _ in range(3)]
        for i, piece in enumerate(pieces):
            mask = index == i
            if mask.any():
                for k, value in enumerate(fns[piece.branch](u[mask])):
                    out[k][mask] = value
        return g * (out[0] + d), g * a * out[1], g * a * a * out[2]
    return evaluate


class RuleMeans:
    """``(E[v^2], E[v f1 y], E[f1^2], E[f2^2])`` on dks's rule at ``p = (alpha, beta,
    delta)``, with ``v = phi(alpha y + beta) + delta``, ``f1 = alpha phi'``, ``f2 = alpha^2
    phi''``: the sums dks's TAT conditions are made of.

    The rule's 100,000 nodes are not visited one by one: on a range of consecutive nodes
    where one branch holds, the sum of ``G(i) = g_i Q(y_i)`` is, by the Euler-Maclaurin
    formula in the node index (``G`` varies on a scale of thousands of nodes),

        sum_{i=p}^{q-1} G(i) = int_{y_p}^{y_q} phi_N(y) Q(y) dy + (G(p) - G(q)) / 2
                               + (G'(q) - G'(p)) / 12 - (G'''(q) - G'''(p)) / 720 + ...,

    ``phi_N`` the normal density (the rule's weights over its node spacing, to 1e-11),
    ``G'`` and ``G'''`` derivatives in the index (five-point differences, the branch
    continued past the range). The integral is a composite 24-point Gauss-Legendre rule; the end
    terms carry the ``O(h)`` error dks makes at a kink. Which nodes a branch holds on is
    found by bisection with the arithmetic of the full sum, so kinks fall between the same
    nodes. Agrees with the full 100,000-point sums to ~1e-14 relative, a hundred times
    faster; ``full=True`` sums every node (the reference, and the fallback for input
    scales above MAX_SLOPE).
    """

    #: Panel width in y (over max(1, |alpha A|)).
    WIDTH = 2.0
    #: Input scale (base coordinates) beyond which the full sum is used: the end terms are
    #: an expansion in the change of G over one node, ~ |alpha A| 3e-4 (1e-13 at 16).
    MAX_SLOPE = 16.0

    def __init__(self, act, *, full=False):
        from ..maps._vector import fused_branches

        self.fns = fused_branches(act)
        self.pieces = act.base.pieces
        self.lows = [p.lo for p in self.pieces]
        self.affine = tuple(float(v) for v in act.affine_params)
        self.y, self.g = _gaussian_rule()
        self.evaluate = _evaluator(act)
        self.full = full

    def __call__(self, p):
        a, b, d = (float(v) for v in p)
        # far-out nodes may overflow a branch (as in dks's own sums): inf/nan, no warning
        with np.errstate(all="ignore"):
            if not self.full:
                ranges = self._ranges(a, b)
                if ranges is not None:
                    return self._fast(a, b, d, ranges)
            return self._full(a, b, d)

    def _full(self, a, b, d):
        y, g = self.y, self.g
        f0, f1, f2 = self.evaluate(a * y + b)
        v = f0 + d
        f1, f2 = a * f1, a * a * f2
        # not ``g @ values``: at this length OpenBLAS splits the dot product over threads,
        # which crawl (5x slower) when other processes hold the cores
        return [float(np.add.reduce(g * q)) for q in (v * v, v * f1 * y, f1 * f1, f2 * f2)]

    def _piece(self, i, a, b):
        """The piece node ``i`` falls on, as the full sum assigns it (same arithmetic)."""
        A, B = self.affine[:2]
        return bisect.bisect_right(self.lows, A * (a * float(self.y[i]) + b) + B) - 1

    def _ranges(self, a, b):
        """``[(p, q, branch), ...]``: node ranges ``[p, q)`` on one piece each; None when
        the fast sum does not apply (non-finite values, too many panels)."""
        n = len(self.y)
        slope = self.affine[0] * a
        if not (math.isfinite(slope) and math.isfinite(b)) or slope == 0.0 \
                or abs(slope) > self.MAX_SLOPE:
            return None
        # x = a y + b is monotone in the node index (so is its rounding), and so is the
        # piece index: bisect for the first node past each piece boundary
        first, last = self._piece(0, a, b), self._piece(n - 1, a, b)
        cuts = {0, n}
        for m in range(min(first, last) + 1, max(first, last) + 1):
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi) // 2
                if (self._piece(mid, a, b) >= m) != (first >= m):
                    hi = mid
                else:
                    lo = mid + 1
            cuts.add(lo)
        cuts = sorted(cuts)
        return [(p, q, self.pieces[self._piece(p, a, b)].branch)
                for p, q in itertools.pairwise(cuts) if q > p]

    def _fast(self, a, b, d, ranges):
        y, g = self.y, self.g
        n = len(y)
        A, B, D, G = self.affine
        width = self.WIDTH / max(1.0, abs(A * a))
        total = np.zeros(4)
        for p, q, branch in ranges:
            zq, wq = _panels(p, q, width)
            # Euler-Maclaurin end terms at the inner ends (sign, node): the outer ends of
            # the rule carry weights below 1e-20
            ends = [(s, i) for s, i in ((1.0, p), (-1.0, q)) if 2 <= i <= n - 3]
            stencil = [i + k for _, i in ends for k in (-2, -1, 0, 1, 2)]
            nodes = np.concatenate([zq, y[stencil]]) if stencil else zq
            f0, f1, f2 = self.fns[branch](A * (a * nodes + b) + B)
            v = G * (f0 + D) + d
            f1 = a * (G * A * f1)
            f2 = a * a * (G * A * A * f2)
            Q = np.stack([v * v, v * f1 * nodes, f1 * f1, f2 * f2])
            total += Q[:, :len(zq)] @ wq
            if stencil:
                Gs = Q[:, len(zq):] * g[stencil]
                for j, (sign, _) in enumerate(ends):
                    c = Gs[:, 5 * j:5 * j + 5]
                    d1 = (c[:, 0] - 8.0 * c[:, 1] + 8.0 * c[:, 3] - c[:, 4]) / 12.0
                    d3 = (c[:, 4] - 2.0 * c[:, 3] + 2.0 * c[:, 1] - c[:, 0]) / 2.0
                    total += sign * (0.5 * c[:, 2] - d1 / 12.0 + d3 / 720.0)
        return [float(t) for t in total]


@functools.lru_cache(maxsize=256)
def _panels(p, q, width):
    """Nodes and normal-density weights of the composite 24-point Gauss-Legendre rule on
    ``[y_p, y_q]`` (dks's nodes; ``-10`` and ``10`` for ``p = 0``, ``q = n``), in panels
    no wider than ``width`` (the same nodes recur along a search: kept)."""
    y, _ = _gaussian_rule()
    gx, gw = gauss_legendre(POINTS)
    y_lo = float(y[p]) if p > 0 else -HALF_WIDTH
    y_hi = float(y[q]) if q < len(y) else HALF_WIDTH
    m = max(1, math.ceil((y_hi - y_lo) / width))
    h = (y_hi - y_lo) / m
    z = (y_lo + h * (np.arange(m)[:, None] + 0.5 + 0.5 * gx)).ravel()
    w = np.tile(0.5 * h * gw, m) * np.exp(-0.5 * z * z) * _INV_SQRT_2PI
    z.flags.writeable = w.flags.writeable = False
    return z, w


def tat_branch(act, tau_local, starts, *, full=False):
    """dks's TAT search on dks's rule: yields each point ``(alpha, beta, delta)`` where its
    ``hybr`` (forward-difference Jacobian, as dks calls it) reports success and
    ``|alpha| * gamma < 2``, from ``starts`` (dks's, in its order: see
    :func:`~kernelshape.transforms.tat._dks_random_starts`). The caller polishes each on
    the exact maps and takes the first that converges. The rule's sums come from
    :class:`RuleMeans` (``full=True``: every node summed)."""
    from scipy.optimize import root

    means = RuleMeans(act, full=full)

    def fun(p):
        s, vf1y, f1f1, f2f2 = means(p)
        return np.array([vf1y / s - 1.0, f1f1 / s - 1.0, f2f2 / s - tau_local])

    for start in starts:
        with np.errstate(all="ignore"):
            sol = root(fun, np.array(start), method="hybr")
        s = means(sol.x)[0] if sol.success and np.all(np.isfinite(sol.x)) else None
        if s is None:
            continue
        if not (s > 0 and math.isfinite(s)) or abs(float(sol.x[0])) >= 2.0 * math.sqrt(s):
            continue   # dks's rejection, alpha * gamma >= 2 (on |alpha|: see tat)
        yield tuple(float(v) for v in sol.x)
