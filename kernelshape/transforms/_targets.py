"""Local targets from global ones: DKS ``xi`` from ``zeta``, TAT ``tau_local`` from ``tau``.

For a described network (not a bare ``subnet_max`` function) the maximal slope function
``mu(xi) = M_{f, y -> xi y}(1)`` is a maximum of polynomials in ``xi`` with non-negative
coefficients (one per subnetwork, each with value 1 at ``xi = 1``), so ``mu(xi) = zeta`` is
solved as the smallest root over those polynomials, each by Newton's method from ``xi = 1``
(convex and increasing: the iterates approach the root monotonically from above). A chain
of ``L`` nonlinear layers gives the monomial ``xi^L`` and so ``xi = zeta^(1/L)`` directly;
``mlp(L)`` is recognised without walking its layers (closed forms in O(1): ``mlp(10**6)``
solves in seconds), other networks build their polynomials sparsely (O(layers x terms)).
The maximal curvature function is linear in ``t`` (``M_{f, y -> t + y}(0) = K t``), so
``tau_local = tau / K``. Bare functions are solved by bracketing and bisection-secant steps.

With ``digits=N`` every target is an ``mpmath.mpf`` to ``N`` digits (computed at ``N + 10``):
closed forms for ``mlp(L)``, else Newton in mpmath on the network's own ``subnet_max`` from
the float64 root; a float target given by the user is taken as its exact binary value.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConvergenceError, UnreachableTargetError
from ._common import solve_increasing


class _Poly:
    """A sparse polynomial in ``xi`` (``{degree: coefficient}``) for ``_value``: a chain of
    L nonlinear layers keeps one term, so building it costs O(L), not O(L^2)."""

    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def __mul__(self, s):
        s = float(s)
        return _Poly({k: v * s for k, v in self.c.items()})

    __rmul__ = __mul__

    def __add__(self, other):
        out = dict(self.c)
        for k, v in other.c.items():
            out[k] = out.get(k, 0.0) + v
        return _Poly(out)

    def shift(self):
        return _Poly({k + 1: v for k, v in self.c.items()})

    def dense(self):
        n = max(self.c) + 1 if self.c else 1
        out = np.zeros(n)
        for k, v in self.c.items():
            out[k] += v
        return out


def _slope_polynomials(net):
    cached = net.__dict__.get("_slope_polys")
    if cached is None:
        one = _Poly({0: 1.0})
        subs = (net, *net._subnetworks)
        cached = tuple(np.trim_zeros(s._value(one, _Poly.shift).dense(), "b") for s in subs)
        net.__dict__["_slope_polys"] = cached
    return cached


def chain_depth(net):
    """``L`` for ``mlp(L)`` (a chain of identical nonlinear layers, marked by
    :func:`~kernelshape.networks.mlp`), whose targets have closed forms; else None."""
    depth = net.__dict__.get("_mlp_depth")
    return int(depth) if depth is not None else None


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


def local_slope(net, zeta, digits=None):
    """DKS local slope target ``xi`` with ``mu(xi) = zeta`` (Martens et al. 2021, §5).

    float64, or with ``digits`` an ``mpmath.mpf`` accurate to ``digits`` (computed at
    ``digits + 10``): ``zeta^(1/L)`` for ``mlp(L)``, else Newton in mpmath on the network's
    own ``subnet_max`` from the float64 root.
    """
    from ..networks import _Function
    what = f"DKS on {net!r}"
    depth = chain_depth(net)
    if depth is not None:
        if digits:
            import mpmath
            with mpmath.workdps(digits + 10):
                return mpmath.mpf(zeta) ** (mpmath.mpf(1) / depth)
        return zeta ** (1.0 / depth)
    if isinstance(net, _Function):
        xi = solve_increasing(net.max_slope, zeta, 1.0, math.inf, name="zeta", what=what)
    else:
        # the root depends on the network and zeta only: kept on the network (solves
        # repeated on one network, as from a memoized resnet(), skip the Newton runs)
        known = net.__dict__.setdefault("_xi_of_zeta", {})
        xi = known.get(zeta)
        if xi is None:
            roots = [_poly_root(c, zeta) for c in _slope_polynomials(net)]
            xi = float(min(roots))
            if not math.isfinite(xi):
                raise UnreachableTargetError(
                    f"{what}: the network has no nonlinear layer, so its maximal slope "
                    f"stays 1 and zeta = {zeta!r} cannot be reached")
            if len(known) >= 64:
                known.clear()
            known[zeta] = xi
    if digits:
        return _polish_root(net, lambda x: (lambda y: x * y), 1, zeta, xi, digits, "zeta",
                            what)
    return xi


def _polish_root(net, r_of, x0, target, guess, digits, name, what):
    """Root of ``net.subnet_max(x0, r_of(v)) = target`` in ``v`` in mpmath at ``digits + 10``
    digits, by Newton from the float64 root ``guess`` (the slope from a central difference
    in float64: each step gains ~8 digits). The network's subnet_max must accept mpmath
    numbers (described networks do; a user's function may not)."""
    import mpmath

    from ..errors import PrecisionError
    h = 1e-6 * max(1.0, abs(guess))
    slope = (net.subnet_max(float(x0), r_of(guess + h))
             - net.subnet_max(float(x0), r_of(guess - h))) / (2 * h)
    with mpmath.workdps(digits + 10):
        v, tol = mpmath.mpf(guess), mpmath.mpf(10) ** -(digits + 8)
        for _ in range(4 + digits // 6):
            try:
                value = net.subnet_max(mpmath.mpf(x0), r_of(v))
            except (TypeError, ValueError) as err:
                raise PrecisionError(
                    f"{what}: digits={digits} needs the network's subnet_max to accept "
                    f"mpmath numbers, and it raised {type(err).__name__}: {err}") from err
            if not isinstance(value, mpmath.mpf):
                raise PrecisionError(
                    f"{what}: digits={digits} needs the network's subnet_max to compute in "
                    f"mpmath, but it returned {type(value).__name__} {value!r} for mpmath "
                    "input (a float64 value holds 16 digits)")
            f = value - mpmath.mpf(target)
            if abs(f) <= tol * (1 + abs(mpmath.mpf(target))):
                return +v
            v -= f / slope
    raise ConvergenceError(f"{what}: the {name} target did not converge to {digits} digits "
                           "in mpmath")


def local_curvature(net, tau, digits=None):
    """TAT local curvature target with ``M_{f, y -> t + y}(0) = tau`` (Zhang et al. §4.2);
    an ``mpmath.mpf`` with ``digits``."""
    from ..networks import _Function
    what = f"TAT on {net!r}"
    if isinstance(net, _Function):
        t = solve_increasing(net.max_curvature, tau, 0.0, math.inf, name="tau", what=what)
        if digits:
            return _polish_root(net, lambda x: (lambda y: x + y), 0, tau, t, digits,
                                "tau", what)
        return t
    # M_{f, y -> t + y}(0) = K t: K is a property of the network (L for mlp(L)), computed
    # once per network object (like its slope polynomials); in mpmath with digits
    depth = chain_depth(net)
    if digits:
        import mpmath
        with mpmath.workdps(digits + 10):
            k = mpmath.mpf(depth) if depth is not None else \
                net.subnet_max(mpmath.mpf(0), lambda y: 1 + y)
            if k > 0:
                return mpmath.mpf(tau) / k
    else:
        k = net.__dict__.get("_curvature_constant")
        if k is None:
            k = float(depth) if depth is not None else net.max_curvature(1.0)
            net.__dict__["_curvature_constant"] = k
        if k > 0:
            return tau / k
    raise UnreachableTargetError(
        f"{what}: the network has no nonlinear layer, so its maximal curvature stays 0 "
        f"and tau = {tau!r} cannot be reached")


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


#: Deepest network (nonlinear layers on the longest path) whose leaky-ReLU TAT target is
#: solved by walking it (~6 s at this depth).
MAX_WALK_DEPTH = 20_000


def tat_negative_slope(net, eta):
    """Negative slope ``a`` in ``(0, 1)`` with ``M_{f, C_a}(0) = eta`` (Zhang et al. §4.1).

    ``M`` decreases from its ReLU value at ``a = 0`` to 0 at ``a = 1``.

    Raises:
        UnreachableTargetError: ``eta`` above the ReLU value (too shallow a network).
    """
    depth = chain_depth(net)
    depth = depth if depth is not None else net.n_nonlinear
    if depth > MAX_WALK_DEPTH:
        from ..errors import TransformError
        raise TransformError(
            f"TAT leaky ReLU on {net!r}: M_(f,C_a)(0) has no closed form, so each trial slope "
            f"walks the network layer by layer (~0.3 ms per layer, ~60 trials); "
            f"{depth} nonlinear layers exceed the limit of {MAX_WALK_DEPTH}")

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
