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
arithmetic; that is not reproduced (see the DKS notes).
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: dks 0.1.2's quadrature: Gauss-Legendre order and half-width of the interval.
ORDER = 100_000
HALF_WIDTH = 10.0
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


def tat_branch(act, tau_local, starts):
    """dks's TAT search on dks's rule: yields each point ``(alpha, beta, delta)`` where its
    ``hybr`` (forward-difference Jacobian, as dks calls it) reports success and
    ``|alpha| * gamma < 2``, from ``starts`` (dks's, in its order: see
    :func:`~kernelshape.transforms.tat._dks_random_starts`). The caller polishes each on
    the exact maps and takes the first that converges."""
    from scipy.optimize import root

    y, g = _gaussian_rule()
    evaluate = _evaluator(act)

    def outputs(p):
        a, b, d = (float(v) for v in p)
        f0, f1, f2 = evaluate(a * y + b)
        v = f0 + d
        return a, v, a * f1, a * a * f2

    def mean(values):
        # E[.] on dks's rule; not ``g @ values``: at this length OpenBLAS splits the dot
        # product over threads, which crawl (5x slower) when other processes hold the cores
        return float(np.add.reduce(g * values))

    def fun(p):
        _, v, f1, f2 = outputs(p)
        s = mean(v * v)
        return np.array([mean(v * f1 * y) / s - 1.0, mean(f1 * f1) / s - 1.0,
                         mean(f2 * f2) / s - tau_local])

    for start in starts:
        with np.errstate(all="ignore"):
            sol = root(fun, np.array(start), method="hybr")
        if not sol.success or not np.all(np.isfinite(sol.x)):
            continue
        a, v, _, _ = outputs(sol.x)
        s = mean(v * v)
        if not (s > 0 and math.isfinite(s)) or abs(a) >= 2.0 * math.sqrt(s):
            continue   # dks's rejection, alpha * gamma >= 2 (on |alpha|: see tat)
        yield tuple(float(v) for v in sol.x)
