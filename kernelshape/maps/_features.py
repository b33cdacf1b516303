"""Steep features of an activation: where it changes on a scale the quadrature must resolve.

Every quadrature route lays its panels on a grid about one unit wide in the activation's
own coordinate, split at the kinks. An analytic activation can still change on a far
smaller scale: ``tanh(1e6 x)`` goes from -1 to 1 within about 1e-6 of 0, and a Gauss rule
whose nodes all miss that window sees ``sign(x)`` and reports ``sign``'s maps with full
confidence. Such a transition is a *feature*: a location and a length scale, read from the
expression, around which the panels are graded geometrically down to that scale (as they
are around kinks), so every route resolves it.

Where features come from: every non-polynomial node ``f(g(x))`` of a branch (a function
application or a power with a non-integer or negative exponent) changes where its argument
``g`` is near 0 on the scale ``1 / |g'|``:

* ``g`` a polynomial: each root ``r`` of ``g`` (complex ones too: ``1 / (1 + 1e8 x^2)``
  has its structure at ``Re r = 0`` on the scale ``|Im r| = 1e-4``) gives the location
  ``Re r`` and the scale ``max(|Im r|, min_m |m! / g^(m)(Re r)|^(1/m))``;
* ``g`` anything else: its real roots on ``|x| <= NUMERIC_REACH`` (sign changes on a grid
  that resolves ``g``'s own features, then bisection), scale
  ``min_m |m! / g^(m)(root)|^(1/m)`` for m <= 3 (``1 / |g'(root)|`` at a simple root).

Periodic functions (sin, cos, tan, ...) are the exception: ``sin(100 x)`` oscillates
everywhere, not near a point, so it has no feature; the routes' own refinement (and its
ConvergenceError) answers for fast oscillations.
Only scales below :data:`RESOLVED` matter: wider structure is resolved by the default panels.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import mpmath
import numpy as np
import sympy as sp

from ..parsing import X

__all__ = ["RESOLVED", "Feature", "features", "graded"]

#: Length scale (base x units) at and above which the default panels resolve structure.
RESOLVED = 0.25
#: Half-width of the x-range searched for real roots of non-polynomial arguments.
NUMERIC_REACH = 60.0
_PERIODIC = (sp.sin, sp.cos, sp.tan, sp.cot, sp.sec, sp.csc)


@dataclasses.dataclass(frozen=True)
class Feature:
    """A steep transition of the base activation.

    Attributes:
        location: x of its centre, as a sympy number (exact where the root is: ``-b / a``
            for an affine argument ``a x + b``), so mpmath can place it to any precision.
        scale: its width in x (float).
    """

    location: sp.Expr
    scale: float

    @property
    def x(self) -> float:
        return float(self.location)


def features(base) -> tuple[Feature, ...]:
    """The steep features of ``base`` (a fixed, untransformed Activation), cached on it."""
    cached = base.__dict__.get("_steep_features")
    if cached is None:
        found = {}
        for branch in base.branches:
            for arg, periodic in _arguments(branch):
                if periodic:   # everywhere, not near a point (module docs)
                    continue
                for feat in _roots(arg):
                    if feat.scale < RESOLVED:
                        key = round(feat.x, 12)
                        if key not in found or feat.scale < found[key].scale:
                            found[key] = feat
        cached = base.__dict__["_steep_features"] = tuple(
            sorted(found.values(), key=lambda f: f.x))
    return cached


def graded(x0, scale, top, floor):
    """Split points ``x0, x0 +- scale 2^k`` for ``floor <= scale 2^k < top``: panels that
    grow geometrically away from a feature, so each one is resolved by a fixed rule (the
    feature's complex singularities stay a panel's width away from every panel)."""
    step = max(scale, floor)
    out = [x0]
    while step < top:
        out += [x0 - step, x0 + step]
        step *= 2
    return out


# -- reading the expression ---------------------------------------------------------------
def _arguments(expr):
    """``(g, periodic)`` for each argument ``g`` (depending on x) of a non-polynomial node."""
    out = []
    for node in sp.preorder_traversal(expr):
        if not getattr(node, "has", None) or not node.has(X):
            continue
        if isinstance(node, sp.Pow):
            if node.exp.has(X):
                out.append((node.exp, False))
            if not (node.exp.is_Integer and node.exp > 0) and node.base.has(X):
                out.append((node.base, False))
        elif isinstance(node, sp.Function):
            periodic = isinstance(node, _PERIODIC)
            out += [(a, periodic) for a in node.args if a.has(X)]
    return out


def _roots(arg):
    """Features of a node whose argument is ``arg`` (module docs)."""
    if arg.is_polynomial(X):
        poly = sp.Poly(arg, X)
        if poly.degree() < 1:
            return []
        if poly.degree() == 1:
            a, b = poly.all_coeffs()
            # the location exact (mpmath places it); 1 / a in sympy first: a may be 10**400
            return [Feature(-b / a, float(1 / abs(a)))]
        coeffs = [float(v) for v in poly.all_coeffs()]
        out = []
        for r in np.roots(coeffs):
            centre = float(r.real)
            local = _local_scale(poly, centre)
            out.append(Feature(sp.Float(centre, 30), max(abs(float(r.imag)), local)))
        return out
    return _numeric_roots(arg)


def _local_scale(poly, x0):
    """``min_m |m! / g^(m)(x0)|^(1/m)``: the distance over which ``g`` changes by 1."""
    best = math.inf
    deriv = poly
    for m in range(1, poly.degree() + 1):
        deriv = deriv.diff(X)
        value = abs(float(deriv.eval(x0))) / math.factorial(m)
        if value > 0:
            best = min(best, value ** (-1.0 / m))
    return best


def _scan(arg, grid):
    """``arg`` on the grid as float64, NaN where it is not a finite real (numpy; mpmath
    point by point for functions numpy lacks, such as erf)."""
    with np.errstate(all="ignore"):
        try:
            vals = np.broadcast_to(sp.lambdify(X, arg, modules="numpy")(grid), grid.shape)
            vals = np.asarray(vals, dtype=np.complex128)
        except Exception:  # noqa: BLE001 - a name numpy lacks: evaluate in mpmath instead
            fn = sp.lambdify(X, arg, modules="mpmath")
            vals = np.empty(grid.shape, dtype=np.complex128)
            for i, x in enumerate(grid):
                try:
                    vals[i] = complex(fn(mpmath.mpf(float(x))))
                except (ArithmeticError, ValueError, TypeError):
                    vals[i] = math.nan
        real = np.isfinite(vals) & (vals.imag == 0)
        return np.where(real, vals.real, np.nan)


@functools.lru_cache(maxsize=256)
def _numeric_roots(arg):
    """Real roots of a non-polynomial ``arg`` on ``|x| <= NUMERIC_REACH``, each with its
    scale (module docs): sign changes on a grid graded around ``arg``'s own features
    (numpy), then bisection in mpmath. Cached per expression (activations are rebuilt
    often; their expressions repeat)."""
    pts = set(np.linspace(-NUMERIC_REACH, NUMERIC_REACH, 4801).tolist())
    for sub, _ in _arguments(arg):
        if sub is arg:
            continue
        for feat in _roots(sub):
            if feat.scale < RESOLVED:
                pts.update(graded(feat.x, feat.scale, 1.0, 1e-15 * max(1.0, abs(feat.x))))
    grid = np.array(sorted(p for p in pts if abs(p) <= NUMERIC_REACH))
    vals = _scan(arg, grid)
    # isolated zeros only: a run of them is underflow (log(1 + exp(x)) far left), not roots
    isolated = (vals == 0) & (np.r_[1.0, vals[:-1]] != 0) & (np.r_[vals[1:], 1.0] != 0)
    zero = np.flatnonzero(isolated)
    sign = np.sign(vals)
    change = np.flatnonzero(sign[:-1] * sign[1:] < 0)
    if not (zero.size or change.size):
        return []
    fn = sp.lambdify(X, arg, modules="mpmath")
    slopes = [sp.lambdify(X, sp.diff(arg, X, m), modules="mpmath") for m in (1, 2, 3)]
    out = []
    with mpmath.workdps(30):
        def value(x):
            try:
                v = fn(mpmath.mpf(x))
                return float(v) if mpmath.isfinite(v) and not isinstance(v, mpmath.mpc) \
                    else math.nan
            except (ArithmeticError, ValueError, TypeError):
                return math.nan
        brackets = [(grid[i], grid[i]) for i in zero] + [(grid[i], grid[i + 1]) for i in change]
        for lo, hi in brackets:
            vlo = value(lo)
            for _ in range(200 if hi != lo else 0):
                mid = (lo + hi) / 2
                vm = value(mid)
                if mid in (lo, hi) or not math.isfinite(vm):
                    break
                lo, hi, vlo = (lo, mid, vlo) if vlo * vm <= 0 else (mid, hi, vm)
            root = float((lo + hi) / 2)
            scale = math.inf
            for m, slope in enumerate(slopes, start=1):
                try:
                    rate = abs(float(slope(mpmath.mpf(root)))) / math.factorial(m)
                except (ArithmeticError, ValueError, TypeError):
                    continue
                if rate > 0 and math.isfinite(rate):
                    scale = min(scale, rate ** (-1.0 / m))
            if scale < math.inf:
                out.append(Feature(sp.Float(root, 17), scale))
    return out
