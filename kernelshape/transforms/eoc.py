"""The edge of chaos (Poole et al. 2016; Schoenholz et al. 2017; THEORY.md §3).

A layer ``h = W phi(h_prev) + b`` with ``W_ij ~ N(0, sigma_w^2 / fan_in)``,
``b ~ N(0, sigma_b^2)`` maps the second moment as ``q -> sigma_w^2 Q(q) + sigma_b^2``
(``Q(q) = E[phi(sqrt(q) z)^2]``), with fixed point ``q*``, and has

    chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]                (C map slope at c = 1)
    1/xi_q = -log(sigma_w^2 Q'(q*))                          (= chi_1 + sigma_w^2 E[phi'' phi])
    1/xi_c = -log(sigma_w^2 E[phi'(u1) phi'(u2)]) at the correlation fixed point c*.

The edge of chaos is ``chi_1 = 1``: with ``s = sigma_w^2 = 1 / E[phi'^2](q)`` the fixed point
condition becomes ``E[phi^2](q) / E[phi'^2](q) + sigma_b^2 = q``, a one-dimensional root.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import ConvergenceError, UnreachableTargetError
from . import _common as cm

__all__ = ["EdgeOfChaos", "eoc"]


@dataclasses.dataclass(frozen=True)
class EdgeOfChaos:
    """Mean-field quantities of a deep network with given weight and bias variances.

    Attributes:
        sigma_w: weight standard deviation (times ``sqrt(fan_in)``).
        sigma_b: bias standard deviation.
        q_star: fixed point of the q recursion (for a positively homogeneous phi at
            ``sigma_b = 0`` every q is one; 1.0 is reported).
        chi_1: slope of the C map at c = 1; 1 on the edge of chaos.
        xi_q: depth scale of q convergence (inf when ``sigma_w^2 Q'(q*) = 1``).
        xi_c: depth scale of c convergence (inf on the edge of chaos).
        c_star: the stable correlation fixed point (1 unless chaotic).
        phase: ``"ordered"``, ``"edge of chaos"`` or ``"chaotic"``.

    All values float64, about 1e-13 relative.

    Example:
        >>> import kernelshape as ks
        >>> e = ks.eoc(ks.activation("relu"), sigma_b=0.0)
        >>> round(e.sigma_w ** 2, 12), e.phase
        (2.0, 'edge of chaos')
    """

    sigma_w: float
    sigma_b: float
    q_star: float
    chi_1: float
    xi_q: float
    xi_c: float
    c_star: float
    phase: str


_ROWS, _ = cm.terms_array([(2, 0, 0, 0), (0, 2, 0, 0), (1, 1, 0, 1)])


def _stats(moments, q):
    """``(E[phi^2], E[phi'^2], Q'(q))`` at second moment ``q`` (q = 0: the limits)."""
    r = math.sqrt(q)
    if r == 0.0:
        r = 1e-300
    E = moments(_ROWS, r, 0.0)
    return E[0], E[1], E[2] / r


def eoc(phi, *, sigma_b: float = 0.0, sigma_w: float | None = None) -> EdgeOfChaos:
    """Edge of chaos for ``phi`` at bias ``sigma_b``, or the quantities at ``(sigma_w, sigma_b)``.

    Args:
        phi: an Activation, built-in name or expression text (parameters fixed).
        sigma_b: bias standard deviation, ``>= 0``.
        sigma_w: None to solve ``chi_1 = 1`` for it; a positive number to evaluate there.

    Returns:
        :class:`EdgeOfChaos`.

    Raises:
        TransformError: negative or non-finite sigma_b / sigma_w.
        UnreachableTargetError: no ``sigma_w`` puts ``phi`` on the edge of chaos at this
            ``sigma_b`` (e.g. ReLU with ``sigma_b > 0``).

    Example:
        >>> e = eoc("relu")
        >>> round(e.sigma_w ** 2, 12), e.chi_1
        (2.0, 1.0)
    """
    sigma_b = cm.check_real("sigma_b", sigma_b, low=0.0, low_open=False)
    act = cm.check_activation(phi, "eoc")
    moments = cm.Moments(act)
    sb2 = sigma_b * sigma_b
    if sigma_w is None:
        s, q = _edge(act, moments, sb2)
    else:
        sigma_w = cm.check_real("sigma_w", sigma_w, low=0.0)
        s = sigma_w * sigma_w
        q = _fixed_q(act, moments, s, sb2)
    e2, d2, qslope = _stats(moments, q)
    chi_1 = s * d2
    if sigma_w is None:
        chi_1 = 1.0 if abs(chi_1 - 1.0) < 1e-12 else chi_1
    xi_q = _depth(s * qslope)
    c_star, slope_c = _c_fixed(act, s, sb2, q, e2, chi_1)
    xi_c = _depth(slope_c)
    phase = ("edge of chaos" if abs(chi_1 - 1.0) <= 1e-12 else
             "ordered" if chi_1 < 1 else "chaotic")
    return EdgeOfChaos(sigma_w=math.sqrt(s), sigma_b=sigma_b, q_star=float(q), chi_1=float(chi_1),
                       xi_q=xi_q, xi_c=xi_c, c_star=c_star, phase=phase)


def _depth(rate):
    if rate <= 0:
        return 0.0
    if abs(rate - 1.0) <= 1e-12:
        return math.inf
    return -1.0 / math.log(rate)


def _edge(act, moments, sb2):
    """``(sigma_w^2, q*)`` with chi_1 = 1 and q* a fixed point."""
    def h(q):
        e2, d2, _ = _stats(moments, q)
        return e2 / d2 + sb2 - q

    homogeneous = abs(h(2.0) - 2 * h(1.0) + sb2) <= 1e-12 * (1 + sb2) and \
        abs(h(0.5) - 0.5 * h(1.0) - 0.5 * sb2) <= 1e-12 * (1 + sb2)
    if homogeneous:
        if sb2 == 0.0 and abs(h(1.0)) <= 1e-12:
            return 1.0 / _stats(moments, 1.0)[1], 1.0
        raise UnreachableTargetError(
            f"eoc: {act.expr} is positively homogeneous, so chi_1 = 1 forces sigma_b = 0; "
            f"got sigma_b^2 = {sb2!r}")
    grid = np.geomspace(1e-8, 1e4, 121)
    values = [h(q) for q in grid]
    for (q0, v0), (q1, v1) in zip(zip(grid, values), zip(grid[1:], values[1:])):
        if v0 == 0.0:
            return 1.0 / _stats(moments, q0)[1], float(q0)
        if v0 * v1 < 0:
            q = _bisect(h, float(q0), float(q1), v0)
            return 1.0 / _stats(moments, q)[1], q
    e0 = float(act(0.0))
    if sb2 == 0.0 and e0 == 0.0:
        d0 = float(act(0.0, order=1))
        if d0 != 0.0:
            return 1.0 / (d0 * d0), 0.0
    raise UnreachableTargetError(
        f"eoc: no sigma_w puts {act.expr} on the edge of chaos at sigma_b = {math.sqrt(sb2)!r}; "
        f"E[phi^2]/E[phi'^2] + sigma_b^2 - q keeps the sign of {values[0]:.3g} on q in "
        "[1e-8, 1e4]")


def _bisect(f, lo, hi, f_lo, max_iter=200):
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            return mid
        f_mid = f(mid)
        if f_mid == 0.0:
            return mid
        if (f_mid < 0) == (f_lo < 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _fixed_q(act, moments, s, sb2):
    """Stable fixed point of ``q -> s Q(q) + sb2`` by iteration then Newton polishing."""
    q = 1.0
    for _ in range(10000):
        e2, _, qs = _stats(moments, q)
        q_new = s * e2 + sb2
        if not math.isfinite(q_new):
            raise UnreachableTargetError(
                f"eoc: the q recursion of {act.expr} diverges at sigma_w^2 = {s!r}")
        g = q_new - q
        slope = s * qs - 1.0
        if slope < 0 and abs(g) < 1e-3 * max(q, 1e-300):
            q_new = q - g / slope
        if abs(q_new - q) <= 1e-15 * max(q, 1e-300) or q_new == 0.0:
            return max(q_new, 0.0)
        q = q_new
    raise ConvergenceError(f"eoc: the q recursion of {act.expr} did not settle in 10000 steps")


def _c_fixed(act, s, sb2, q, e2, chi_1):
    """Stable correlation fixed point and ``sigma_w^2 E[phi'(u1) phi'(u2)]`` there."""
    if chi_1 <= 1.0 + 1e-12 or q == 0.0:
        return 1.0, chi_1
    # Chaotic: c -> (s Q C(c; q) + sb2) / q has a stable fixed point below 1.
    c = 0.0
    for _ in range(10000):
        c_new = (s * e2 * act.c_map(c, q=q) + sb2) / q
        if abs(c_new - c) <= 1e-15:
            break
        c = c_new
    slope = s * e2 * act.c_map(c, q=q, order=1) / q
    return float(c), float(slope)
