"""The edge of chaos (Poole et al. 2016; Schoenholz et al. 2017; THEORY.md §3).

A layer ``h = W phi(h_prev) + b`` with ``W_ij ~ N(0, sigma_w^2 / fan_in)``,
``b ~ N(0, sigma_b^2)`` maps the second moment as ``q -> F(q) = sigma_w^2 Q(q) + sigma_b^2``
(``Q(q) = E[phi(sqrt(q) z)^2]``). Deep in the network q settles at a *stable* fixed point
``q*`` of F (``|F'(q*)| = |sigma_w^2 Q'(q*)| < 1``, or the limit ``q* = 0`` when F(0) = 0
and F attracts to 0), and there

    chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]                (C map slope at c = 1)
    1/xi_q = -log|sigma_w^2 Q'(q*)|                          (q converges, oscillating if < 0)
    1/xi_c = -log|sigma_w^2 E[phi'(u1) phi'(u2)]| at the stable correlation fixed point c*.

The edge of chaos is ``chi_1 = 1`` at a stable ``q*``: with ``s = sigma_w^2 = 1 /
E[phi'^2](q)`` the fixed point condition becomes ``h(q) = E[phi^2](q) / E[phi'^2](q) +
sigma_b^2 - q = 0``, a one-dimensional root, kept only where ``q*`` is stable (an unstable
``q*`` is never reached: q flows to another fixed point, where chi_1 != 1). With
``sigma_b = 0`` and ``phi(0) = 0``, ``q* = 0`` is a candidate too, at ``s = 1 / E[phi'^2]``
in the limit ``q -> 0`` (``(phi'(0-)^2 + phi'(0+)^2) / 2``: both sides of a kink count).
Oscillation never destabilises q: ``sqrt(q) Q(q) = int phi(x)^2 exp(-x^2 / (2q)) dx /
sqrt(2 pi)`` increases with q, so ``sigma_w^2 Q'(q*) >= -(q* - sigma_b^2) / (2 q*) >= -1/2``
at every fixed point; instability is always ``F'(q*) > 1``. At ``q* = 0`` the layers act (piecewise) linearly in the limit, so correlations are not
forgotten exponentially: ``xi_c`` is infinite there. Every infinite depth scale comes with
its reason (:attr:`EdgeOfChaos.xi_q_reason`, :attr:`EdgeOfChaos.xi_c_reason`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import ConvergenceError, UnreachableTargetError
from . import _common as cm

__all__ = ["EdgeOfChaos", "eoc"]

#: Largest number of steps of the q (or c) recursion before it is declared unsettled.
MAX_STEPS = 2000
#: ``|F'(q*)|`` within this of 1 is marginal: convergence is polynomial, xi infinite.
MARGINAL = 1e-9
#: q beyond this (and growing) counts as a diverging recursion; the quadrature's cost grows
#: with sqrt(q) at kinks and steep features, so it is not followed further.
Q_OVERFLOW = 1e6


@dataclasses.dataclass(frozen=True)
class EdgeOfChaos:
    """Mean-field quantities of a deep network with given weight and bias variances.

    Attributes:
        sigma_w: weight standard deviation (times ``sqrt(fan_in)``).
        sigma_b: bias standard deviation.
        q_star: the stable fixed point of the q recursion the network settles at (0.0 when
            q decays to 0; for a positively homogeneous phi at ``sigma_b = 0`` on the edge
            of chaos every q is a fixed point and 1.0 is reported).
        chi_1: slope of the C map at c = 1 at ``q_star``; 1 on the edge of chaos.
        xi_q: depth scale of q convergence, ``> 0``, or inf (see ``xi_q_reason``).
        xi_c: depth scale of c convergence, ``> 0``, or inf (see ``xi_c_reason``).
        c_star: the stable correlation fixed point (1 unless chaotic).
        phase: ``"ordered"``, ``"edge of chaos"`` or ``"chaotic"``.
        xi_q_reason: why ``xi_q`` is infinite ("" when finite).
        xi_c_reason: why ``xi_c`` is infinite ("" when finite).

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
    xi_q_reason: str = ""
    xi_c_reason: str = ""


_ROWS, _ = cm.terms_array([(2, 0, 0, 0), (0, 2, 0, 0), (1, 1, 0, 1)])


def _stats(moments, q):
    """``(E[phi^2], E[phi'^2], Q'(q))`` at second moment ``q`` (q = 0: the limits q -> 0,
    both sides of a kink at 0 averaged)."""
    r = math.sqrt(q)
    if r == 0.0:
        r = 1e-300
    E = moments(_ROWS, r, 0.0)
    return float(E[0]), float(E[1]), float(E[2]) / r


def eoc(phi, *, sigma_b: float = 0.0, sigma_w: float | None = None) -> EdgeOfChaos:
    """Edge of chaos for ``phi`` at bias ``sigma_b``, or the quantities at ``(sigma_w, sigma_b)``.

    Args:
        phi: an Activation, built-in name or expression text (parameters fixed).
        sigma_b: bias standard deviation, ``>= 0``.
        sigma_w: None to solve ``chi_1 = 1`` at a stable fixed point ``q*``; a positive
            number to evaluate there (``q*`` is where the recursion from ``q = 1`` settles).

    Returns:
        :class:`EdgeOfChaos`.

    Raises:
        TransformError: negative or non-finite sigma_b / sigma_w.
        UnreachableTargetError: no ``sigma_w`` puts ``phi`` on the edge of chaos at this
            ``sigma_b`` (e.g. ReLU with ``sigma_b > 0``; swish, whose only point with
            chi_1 = 1 has an unstable ``q*``), or the q recursion diverges at ``sigma_w``.
        ConvergenceError: the q recursion at ``sigma_w`` does not settle (it oscillates).

    Example:
        >>> e = eoc("relu")
        >>> round(e.sigma_w ** 2, 12), e.chi_1
        (2.0, 1.0)
    """
    sigma_b = cm.check_real("sigma_b", sigma_b, low=0.0, low_open=False)
    act = cm.check_activation(phi, "eoc")
    moments = cm.Moments(act)
    sb2 = sigma_b * sigma_b
    zero_fixed = sb2 == 0.0 and float(act(0.0)) == 0.0
    if sigma_w is None:
        s, q, homogeneous = _edge(act, moments, sb2, zero_fixed)
    else:
        sigma_w = cm.check_real("sigma_w", sigma_w, low=0.0)
        s = sigma_w * sigma_w
        q, homogeneous = _fixed_q(act, moments, s, sb2, zero_fixed), False
    e2, d2, qslope = _stats(moments, q)
    chi_1 = s * d2
    if sigma_w is None or abs(chi_1 - 1.0) < 1e-12:
        chi_1 = 1.0 if abs(chi_1 - 1.0) < 1e-12 else chi_1
    phase = ("edge of chaos" if chi_1 == 1.0 else "ordered" if chi_1 < 1 else "chaotic")
    if homogeneous:
        xi_q, why_q = math.inf, (f"{act.expr} is positively homogeneous: at sigma_w^2 = "
                                 f"{s!r} every q is a fixed point (sigma_w^2 Q'(q) = 1)")
    elif q == 0.0:
        # F(q) = s Q(q) ~ s Q'(0) q near 0, with s Q'(0) = s E[phi'^2](0) = chi_1
        xi_q, why_q = _depth(chi_1, "q decays to q* = 0 polynomially, not exponentially: "
                                    "sigma_w^2 Q'(0) = chi_1 = 1")
    else:
        xi_q, why_q = _depth(s * qslope, "sigma_w^2 Q'(q*) = 1: q converges polynomially, "
                                         "not exponentially")
    c_star, slope_c = _c_fixed(act, s, sb2, q, e2, chi_1)
    if q == 0.0:
        xi_c, why_c = math.inf, (
            "q* = 0: the layers act (piecewise) linearly in the limit q -> 0, whose C map "
            "has slope 1 at c = 1, so correlations are not forgotten exponentially")
    else:
        xi_c, why_c = _depth(slope_c, "chi_1 = 1 on the edge of chaos: correlations "
                                      "approach c* = 1 polynomially, not exponentially")
    return EdgeOfChaos(sigma_w=math.sqrt(s), sigma_b=sigma_b, q_star=float(q),
                       chi_1=float(chi_1), xi_q=xi_q, xi_c=xi_c, c_star=c_star, phase=phase,
                       xi_q_reason=why_q, xi_c_reason=why_c)


def _depth(rate, reason):
    """``(-1 / log|rate|, "")`` for a stable linear rate; ``(inf, reason)`` at |rate| = 1.

    A negative rate (cos, gaussian: Q decreases) means the recursion converges while
    oscillating about the fixed point, at the depth scale of ``|rate|``."""
    r = abs(rate)
    if abs(r - 1.0) <= MARGINAL:
        return math.inf, reason
    if r == 0.0:   # superexponential convergence: a depth scale of zero layers
        return 0.0, ""
    if r > 1.0:    # the callers keep only stable fixed points
        raise ConvergenceError(f"eoc: the fixed point is unstable (rate {rate!r})")
    return -1.0 / math.log(r), ""


def _zero_attracts(moments, s, q_hi):
    """True when ``F(q) = s Q(q) < q`` on ``(0, q_hi]`` (sampled on a geometric grid down to
    1e-12, then the limit): the q recursion below ``q_hi`` decays to 0 (F increasing there,
    so no fixed point is skipped); marginal limits (``s Q(q) = q`` to rounding) count."""
    for q in np.geomspace(q_hi, 1e-12, max(2, int(math.log(q_hi / 1e-12) / math.log(1.5)))):
        e2, _, qs = _stats(moments, float(q))
        if s * e2 - q > 1e-13 * q or qs < 0:
            return False
    return True


def _edge(act, moments, sb2, zero_fixed):
    """``(sigma_w^2, q*, homogeneous)`` with chi_1 = 1 at a stable fixed point ``q*``."""
    def h(q):
        e2, d2, _ = _stats(moments, q)
        return e2 / d2 + sb2 - q

    homogeneous = abs(h(2.0) - 2 * h(1.0) + sb2) <= 1e-12 * (1 + sb2) and \
        abs(h(0.5) - 0.5 * h(1.0) - 0.5 * sb2) <= 1e-12 * (1 + sb2)
    if homogeneous:
        if sb2 == 0.0 and abs(h(1.0)) <= 1e-12:
            return 1.0 / _stats(moments, 1.0)[1], 1.0, True
        if sb2 == 0.0:
            raise UnreachableTargetError(
                f"eoc: for {act.expr}, E[phi^2]/E[phi'^2] = {h(1.0) + 1.0:.6g} q at every q, "
                "so chi_1 = 1 is never met at a fixed point (that needs the ratio q)")
        raise UnreachableTargetError(
            f"eoc: {act.expr} is positively homogeneous, so chi_1 = 1 forces sigma_b = 0; "
            f"got sigma_b^2 = {sb2!r}")
    grid = np.geomspace(1e-8, 1e4, 121)
    values = [h(float(q)) for q in grid]
    unstable = []
    for (q0, v0), (q1, v1) in zip(zip(grid, values), zip(grid[1:], values[1:])):
        if v0 == 0.0 or v0 * v1 < 0:
            q = float(q0) if v0 == 0.0 else _bisect(h, float(q0), float(q1), v0)
            _, d2, qs = _stats(moments, q)
            rate = qs / d2     # sigma_w^2 Q'(q*) with sigma_w^2 = 1 / E[phi'^2]
            if abs(rate) <= 1.0 + MARGINAL:
                return 1.0 / d2, q, False
            unstable.append((q, 1.0 / d2, rate))
    if zero_fixed:
        d0 = _stats(moments, 0.0)[1]
        if d0 > 0 and math.isfinite(d0) and _zero_attracts(moments, 1.0 / d0, 1e-2):
            return 1.0 / d0, 0.0, False
        if d0 > 0 and math.isfinite(d0):
            unstable.append((0.0, 1.0 / d0, None))
    sb = math.sqrt(sb2)
    if unstable:
        parts = [f"q* = {q:.6g} at sigma_w = {math.sqrt(s):.6g} "
                 + (f"(sigma_w^2 Q'(q*) = {rate:.6g} > 1)" if rate is not None else
                    "(sigma_w^2 Q(q) > q for small q > 0: q grows away from 0)")
                 for q, s, rate in unstable]
        raise UnreachableTargetError(
            f"eoc: no sigma_w puts {act.expr} on the edge of chaos at sigma_b = {sb!r}: "
            f"the only fixed points with chi_1 = 1 are unstable, {'; '.join(parts)}, so the "
            "q recursion moves away from them (to another fixed point, where chi_1 != 1, "
            "or to infinity)")
    raise UnreachableTargetError(
        f"eoc: no sigma_w puts {act.expr} on the edge of chaos at sigma_b = {sb!r}; "
        f"E[phi^2]/E[phi'^2] + sigma_b^2 - q keeps the sign of {values[0]:.3g} on q in "
        "[1e-8, 1e4]" + ("" if not zero_fixed else
                         ", and E[phi'^2] vanishes as q -> 0"))


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


def _fixed_q(act, moments, s, sb2, zero_fixed):
    """The fixed point the recursion ``q -> s Q(q) + sb2`` settles at from ``q = 1``:
    iteration (what the network does), Newton steps once next to an attracting root, and
    the limit 0 recognised without iterating a polynomial decay to the end."""
    def g_of(q):
        e2, _, qs = _stats(moments, q)
        return s * e2 + sb2 - q, s * qs - 1.0

    q, seen = 1.0, []
    for step in range(MAX_STEPS):
        g, gp = g_of(q)
        q_new = q + g
        if not math.isfinite(q_new) or (q_new > Q_OVERFLOW and q_new > q):
            raise UnreachableTargetError(
                f"eoc: the q recursion of {act.expr} diverges at sigma_w^2 = {s!r}, "
                f"sigma_b^2 = {sb2!r} (q passes {Q_OVERFLOW:g} and keeps growing, "
                f"{step + 1} layers from q = 1): there is no fixed point to evaluate chi_1 at")
        if abs(g) <= 1e-15 * q:
            return q
        if -2.0 < gp < 0.0 and abs(g) < 1e-3 * q:
            # next to an attracting root (|F'| < 1): Newton, kept when it reduces |g|
            q_try = q - g / gp
            if q_try > 0 and abs(g_of(q_try)[0]) < abs(g):
                q_new = q_try
        if zero_fixed and g < 0 and step in (30, 300, 1000) and \
                _zero_attracts(moments, s, q_new):
            return 0.0
        if q_new <= 0.0:
            return 0.0
        seen.append(q_new)
        q = q_new
    tail = seen[-4:]
    raise ConvergenceError(
        f"eoc: the q recursion of {act.expr} at sigma_w^2 = {s!r}, sigma_b^2 = {sb2!r} does "
        f"not settle in {MAX_STEPS} layers (last values {[f'{v:.6g}' for v in tail]}): no "
        "stable fixed point q* (it oscillates), so chi_1 and the depth scales are undefined")


def _c_fixed(act, s, sb2, q, e2, chi_1):
    """Stable correlation fixed point and ``sigma_w^2 E[phi'(u1) phi'(u2)]`` there."""
    if chi_1 <= 1.0 + 1e-12 or q == 0.0:
        return 1.0, chi_1
    # Chaotic: c -> (s Q C(c; q) + sb2) / q has a stable fixed point below 1.
    c = 0.0
    for _ in range(MAX_STEPS):
        c_new = (s * e2 * float(act.c_map(c, q=q)) + sb2) / q
        if abs(c_new - c) <= 1e-15:
            break
        c = c_new
    else:
        raise ConvergenceError(
            f"eoc: the correlation recursion of {act.expr} at sigma_w^2 = {s!r} does not "
            f"settle in {MAX_STEPS} layers: no stable correlation fixed point c*")
    slope = s * e2 * float(act.c_map(c, q=q, order=1)) / q
    return float(c), float(slope)
