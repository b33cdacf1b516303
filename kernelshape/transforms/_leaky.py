"""Leaky ReLU in closed form: the DKS and TAT solves that treat the slope as unknown.

With ``phi(x) = max(x, 0) + a min(x, 0)`` and ``x = z + b`` (input scale 1: it is redundant
for a positively homogeneous phi), ``P = Phi(b)``, ``n = N(b)`` (standard normal cdf, pdf):

    E[phi]        = b P + n - a (n - b (1 - P))
    E[phi^2]      = (b^2 + 1) P + b n + a^2 ((b^2 + 1)(1 - P) - b n)
    E[phi'^2]     = P + a^2 (1 - P)  = E[phi phi' z]   (Stein; phi(0) = 0)
    E[phi' z]     = (1 - a) n                          (the Dirac mass of phi'' at 0)

so Q'(1) = (E[phi'^2] - E[phi] (1 - a) n) / Var[phi] and C'(1) = E[phi'^2] / Var[phi].
Evaluating these closed forms avoids compiling a kernel per slope value.
"""

from __future__ import annotations

import math

import numpy as np

from . import _common as cm
from .result import Residual

_SQRT_2PI = math.sqrt(2 * math.pi)


def leaky_moments(a, b, *, mp=False):
    """``(E[phi], E[phi^2], E[phi'^2], E[phi' z])`` at ``x = z + b``; mpmath with ``mp``."""
    if mp:
        import mpmath
        P, n = mpmath.ncdf(b), mpmath.npdf(b)
    else:
        P, n = 0.5 * math.erfc(-b / math.sqrt(2)), math.exp(-0.5 * b * b) / _SQRT_2PI
    Q = 1 - P
    m1 = b * P + n - a * (n - b * Q)
    m2 = (b * b + 1) * P + b * n + a * a * ((b * b + 1) * Q - b * n)
    p11 = P + a * a * Q
    p1z = (1 - a) * n
    return m1, m2, p11, p1z


def _conditions(a, b, q_slope, xi, mp=False):
    m1, m2, p11, p1z = leaky_moments(a, b, mp=mp)
    V = m2 - m1 * m1
    return [(p11 - m1 * p1z) / V - q_slope, p11 / V - xi]


def solve_leaky_dks(q_slope, xi, digits):
    """DKS for leaky ReLU: negative slope and input shift; returns ``dks``-named params.
    ``xi`` may be an mpf (digits): float64 Newton on its rounding, then mpmath on it."""
    xi_mp, xi = xi, float(xi)

    def fun(x):
        a, b = x
        if not (math.isfinite(a) and math.isfinite(b)) or abs(b) > 30:
            return None, None
        F = np.array(_conditions(a, b, q_slope, xi))
        if not np.all(np.isfinite(F)):
            return None, None
        J = np.empty((2, 2))
        for j in range(2):
            h = 1e-6 * max(1.0, abs(x[j]))
            xp, xm = x.copy(), x.copy()
            xp[j] += h
            xm[j] -= h
            J[:, j] = (np.array(_conditions(*xp, q_slope, xi))
                       - np.array(_conditions(*xm, q_slope, xi))) / (2 * h)
        return F, J

    best = None
    for start in [(s, b) for s in (0.0, 0.5) for b in (0.0, 1.0, -1.0)]:
        x, F, ok = cm.newton(fun, start)
        if F is not None and (best is None or np.max(np.abs(F)) < np.max(np.abs(best[1]))):
            best = (x, F)
        if ok:
            break
    else:
        cm.raise_stalled(
            "DKS leaky ReLU", ("Q'(1)", "C'(1)"), (q_slope, xi), best,
            ("negative_slope", "input_shift"),
            nothing=(f"DKS leaky ReLU: no negative slope and input shift meet "
                     f"Q'(1) = {q_slope!r}, C'(1) = {xi!r}"))
    a, b = float(x[0]), float(x[1])
    if digits:
        import mpmath
        with mpmath.workdps(digits + 10):
            xv = [mpmath.mpf(a), mpmath.mpf(b)]
            J = mpmath.matrix(fun(np.array([a, b]))[1].tolist())
            for _ in range(2 + digits // 12):
                F = mpmath.matrix(_conditions(xv[0], xv[1], q_slope, mpmath.mpf(xi_mp), mp=True))
                step = mpmath.lu_solve(J, -F)
                xv = [xv[0] + step[0], xv[1] + step[1]]
            a, b = xv
            m1, m2, _, _ = leaky_moments(a, b, mp=True)
            return {"negative_slope": a, "input_shift": b, "output_shift": -m1,
                    "output_scale": 1 / mpmath.sqrt(m2 - m1 * m1)}
    m1, m2, _, _ = leaky_moments(a, b)
    return {"negative_slope": a, "input_shift": b, "output_shift": -m1,
            "output_scale": 1.0 / math.sqrt(m2 - m1 * m1)}


def leaky_residuals(params, conditions, digits, *, net=None):
    """Local conditions of the transformed leaky ReLU, re-evaluated in mpmath.

    ``M(0)`` (TAT) pushes 0 through ``net`` with the leaky ReLU C map of the solved slope.
    Evaluated at ``digits + 10`` digits (30 for float64 solves), then rounded to the solve's
    number type.
    """
    import mpmath

    from ._targets import leaky_relu_c_mp
    dps = (digits or 20) + 10
    out = []
    with mpmath.workdps(dps):
        a = mpmath.mpf(params["negative_slope"])
        b = mpmath.mpf(params.get("input_shift", 0))
        d = mpmath.mpf(params.get("output_shift", 0))
        g = mpmath.mpf(params["output_scale"])
        m1, m2, p11, p1z = leaky_moments(a, b, mp=True)
        q1 = g * g * (m2 + 2 * d * m1 + d * d)
        values = {"Q(1)": q1, "Q'(1)": g * g * (p11 + d * p1z), "C(0)": g * g * (m1 + d) ** 2 / q1,
                  "C'(1)": g * g * p11 / q1}
        if "M(0)" in conditions:
            values["M(0)"] = net.subnet_max(mpmath.mpf(0), lambda c: leaky_relu_c_mp(c, a))
        conv = (lambda v: +v) if digits else float
        for name, target in conditions.items():
            out.append(Residual(name, target, conv(values[name])))
    return tuple(out)
