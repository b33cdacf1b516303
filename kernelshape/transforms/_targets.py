"""Local targets from global ones: DKS ``xi`` from ``zeta``, TAT ``tau_local`` from ``tau``.

For a described network (not a bare ``subnet_max`` function) the maximal slope function
``mu(xi) = M_{f, y -> xi y}(1)`` is a maximum of polynomials in ``xi`` with non-negative
coefficients (one per subnetwork, each with value 1 at ``xi = 1``), so ``mu(xi) = zeta`` is
solved as the smallest root over those polynomials, each by Newton's method from ``xi = 1``
(convex and increasing: the iterates approach the root monotonically from above). A chain
of ``L`` nonlinear layers gives the monomial ``xi^L`` and so ``xi = zeta^(1/L)`` directly.
The maximal curvature function is linear in ``t`` (``M_{f, y -> t + y}(0) = K t``), so
``tau_local = tau / K``. Bare functions are solved by bracketing and bisection-secant steps.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UnreachableTargetError
from ._common import solve_increasing


class _Poly:
    """A polynomial in ``xi`` (coefficient array, lowest degree first) for ``_value``."""

    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def __mul__(self, s):
        return _Poly(self.c * float(s))

    __rmul__ = __mul__

    def __add__(self, other):
        n = max(len(self.c), len(other.c))
        out = np.zeros(n)
        out[:len(self.c)] += self.c
        out[:len(other.c)] += other.c
        return _Poly(out)

    def shift(self):
        return _Poly(np.concatenate(([0.0], self.c)))


def _slope_polynomials(net):
    cached = net.__dict__.get("_slope_polys")
    if cached is None:
        one = _Poly(np.array([1.0]))
        subs = (net, *net._subnetworks)
        cached = tuple(np.trim_zeros(s._value(one, _Poly.shift).c, "b") for s in subs)
        net.__dict__["_slope_polys"] = cached
    return cached


def _poly_root(c, zeta):
    """Root ``x >= 1`` of ``p(x) = zeta`` for ``p`` with non-negative coefficients ``c``
    and ``p(1) = 1``.

    Newton in ``s = log x`` first (``log p(e^s)`` is convex, increasing and nearly linear,
    so a few steps land next to the root), then Newton in ``x`` to full precision (convex
    and increasing: from the first step on the iterates decrease monotonically).
    """
    nonzero = np.flatnonzero(c)
    if len(nonzero) == 1:
        k = int(nonzero[0])
        if k == 0:
            return math.inf
        return (zeta / c[k]) ** (1.0 / k)
    deg = np.arange(len(c), dtype=float)
    dc = c * deg

    def value_slope(x):
        with np.errstate(over="ignore", invalid="ignore"):
            powers = x ** deg
            return float(c @ powers), float(dc @ powers) / x

    s, log_zeta = 0.0, math.log(zeta)
    for _ in range(8):
        v, slope = value_slope(math.exp(s))
        if not (v > 0 and slope > 0 and math.isfinite(v) and math.isfinite(slope)):
            break
        step = (math.log(v) - log_zeta) / (slope * math.exp(s) / v)
        if abs(step) <= 1e-8 * max(1.0, abs(s)):
            break
        s -= step
    x = math.exp(s)
    for i in range(200):
        v, slope = value_slope(x)
        if not slope > 0 or not math.isfinite(v):
            return math.inf
        x_new = x - (v - zeta) / slope
        if i > 0 and not x_new < x:
            break
        x = x_new
    return x


def local_slope(net, zeta):
    """DKS local slope target ``xi`` with ``mu(xi) = zeta`` (Martens et al. 2021, §5)."""
    from ..networks import _Function
    what = f"DKS on {net!r}"
    if isinstance(net, _Function):
        return solve_increasing(net.max_slope, zeta, 1.0, math.inf, name="zeta", what=what)
    roots = [_poly_root(c, zeta) for c in _slope_polynomials(net)]
    xi = float(min(roots))
    if not math.isfinite(xi):
        raise UnreachableTargetError(
            f"{what}: the network has no nonlinear layer, so its maximal slope stays 1 and "
            f"zeta = {zeta!r} cannot be reached")
    return xi


def local_curvature(net, tau):
    """TAT local curvature target with ``M_{f, y -> t + y}(0) = tau`` (Zhang et al. §4.2)."""
    from ..networks import _Function
    what = f"TAT on {net!r}"
    if isinstance(net, _Function):
        return solve_increasing(net.max_curvature, tau, 0.0, math.inf, name="tau", what=what)
    # M_{f, y -> t + y}(0) = K t: K is a property of the network, computed once per
    # network object (like its slope polynomials)
    k = net.__dict__.get("_curvature_constant")
    if k is None:
        k = net.__dict__["_curvature_constant"] = net.max_curvature(1.0)
    if not k > 0:
        raise UnreachableTargetError(
            f"{what}: the network has no nonlinear layer, so its maximal curvature stays 0 "
            f"and tau = {tau!r} cannot be reached")
    return tau / k


def leaky_relu_c(c, negative_slope):
    """The leaky ReLU C map at q-normalized input (THEORY.md §1)."""
    a = negative_slope
    c = min(1.0, max(-1.0, c))
    k = (1 - a) ** 2 / (math.pi * (1 + a * a))
    return c + k * (math.sqrt(1 - c * c) - c * math.acos(c))


def leaky_relu_c_mp(c, negative_slope):
    import mpmath
    a = mpmath.mpf(negative_slope)
    c = min(mpmath.mpf(1), max(mpmath.mpf(-1), c))
    k = (1 - a) ** 2 / (mpmath.pi * (1 + a * a))
    return c + k * (mpmath.sqrt(1 - c * c) - c * mpmath.acos(c))


def tat_negative_slope(net, eta):
    """Negative slope ``a`` in ``(0, 1)`` with ``M_{f, C_a}(0) = eta`` (Zhang et al. §4.1).

    ``M`` decreases from its ReLU value at ``a = 0`` to 0 at ``a = 1``.

    Raises:
        UnreachableTargetError: ``eta`` above the ReLU value (too shallow a network).
    """
    def one_minus_m(a):
        return 1.0 - net.subnet_max(0.0, lambda c: leaky_relu_c(c, a))

    relu_value = net.subnet_max(0.0, lambda c: leaky_relu_c(c, 0.0))
    if relu_value < eta:
        raise UnreachableTargetError(
            f"TAT on {net!r}: eta = {eta!r} cannot be reached; the largest value of "
            f"M_(f,C)(0) over negative slopes in [0, 1) is {relu_value!r} (ReLU), a deeper "
            "network or a smaller eta is needed")
    return solve_increasing(one_minus_m, 1.0 - eta, 0.0, 1.0, name="eta",
                            what=f"TAT leaky ReLU on {net!r}")
