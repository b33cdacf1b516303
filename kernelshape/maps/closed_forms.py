"""Exact Q and C maps as sympy expressions, where a closed form is known (THEORY.md §1).

The kernel ``K(c; q) = E[phi(U) phi(V)]`` (``Var U = Var V = q``, ``Cov = q c``) is built
from the activation's *expression structure*, not its name, so ``"Max(0, x)"`` is recognised
as ReLU and transformed activations ``g (phi(a x + b) + d)`` are covered where the formula
extends:

* two-slope piecewise-linear with the kink at 0 (ReLU, leaky ReLU, ``abs``; transforms with
  ``b = 0``): ``phi = e + beta x^+ + alpha x^-`` gives
  ``K = q [(alpha^2 + beta^2) J(c) - 2 alpha beta J(-c)] + 2 e (beta - alpha) sqrt(q / 2 pi)
  + e^2`` with ``J(c) = (sqrt(1 - c^2) + (pi - arccos c) c) / (2 pi)``;
* ``erf(a x)``: ``E[erf erf] = (2/pi) arcsin(2 a^2 q c / (1 + 2 a^2 q))`` (``b != 0``: none);
* ``sin(a x + b)``, ``cos(a x + b)``: ``(e^{-a^2 q (1-c)} -+ cos(2b) e^{-a^2 q (1+c)}) / 2``;
* ``exp(a x + b)``: ``e^{2b + a^2 q (1 + c)}``; ``exp(-a^2 x^2 / 2)``:
  ``((1 + a^2 q)^2 - a^4 q^2 c^2)^{-1/2}``;
* polynomials: the finite Hermite sum ``sum_n a_n^2 c^n`` with exact ``a_n``.

Output shifts and scales ``g (. + d)`` are added through ``E[phi]``. ``Q(q) = K(1; q)`` and
``C = K / Q``; orders 1 and 2 are derivatives in q (for Q) or c (for C).

The float64 fast path evaluates the two-slope family through :func:`homogeneous_c_map`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp

from ..parsing import X, as_sympy

__all__ = ["C", "Q", "c_map_expr", "homogeneous_c_map", "homogeneous_slopes", "kernel_expr",
           "q_map_expr"]

#: The symbols of the closed forms.
Q = sp.Symbol("q", positive=True)
C = sp.Symbol("c", real=True)

_Z = sp.Symbol("z", real=True)


def _linear(arg):
    """(a, b) with ``arg = a x + b``, or None."""
    if not arg.is_polynomial(X):
        return None
    poly = sp.Poly(arg, X)
    if poly.degree() != 1:
        return None
    return poly.coeff_monomial(X), poly.coeff_monomial(1)


def _outer(expr):
    """Split ``expr = g * inner + e`` with ``inner`` a single non-additive function of x."""
    const, rest = expr.as_independent(X, as_Add=True)
    g, inner = rest.as_independent(X, as_Add=False)
    return g, inner, const


def _with_shift(k, mean, g, e):
    """Kernel of ``g * phi + e`` from the kernel k and the mean of phi."""
    return g**2 * k + 2 * g * e * mean + e**2


def _smooth_kernel(expr):
    """(K, E[phi(U)]) for the single-function families, or None."""
    g, inner, e = _outer(expr)
    if isinstance(inner, (sp.sin, sp.cos, sp.exp, sp.erf)):
        lin = _linear(inner.args[0])
        if lin is None:
            if isinstance(inner, sp.exp):
                return _gaussian_kernel(inner.args[0], g, e)
            return None
        a, b = lin
        decay_minus = sp.exp(-a**2 * Q * (1 - C))
        decay_plus = sp.exp(-a**2 * Q * (1 + C))
        if isinstance(inner, sp.sin):
            k = (decay_minus - sp.cos(2 * b) * decay_plus) / 2
            mean = sp.sin(b) * sp.exp(-a**2 * Q / 2)
        elif isinstance(inner, sp.cos):
            k = (decay_minus + sp.cos(2 * b) * decay_plus) / 2
            mean = sp.cos(b) * sp.exp(-a**2 * Q / 2)
        elif isinstance(inner, sp.exp):
            k = sp.exp(2 * b + a**2 * Q * (1 + C))
            mean = sp.exp(b + a**2 * Q / 2)
        else:
            if not b.is_zero:
                return None
            k = 2 / sp.pi * sp.asin(2 * a**2 * Q * C / (1 + 2 * a**2 * Q))
            mean = sp.Integer(0)
        return _with_shift(k, mean, g, e), g * mean + e
    return None


def _gaussian_kernel(arg, g, e):
    """``exp(-a^2 x^2 / 2)``: Gaussian integrals of Gaussians."""
    if not arg.is_polynomial(X):
        return None
    poly = sp.Poly(arg, X)
    if poly.degree() != 2 or not (poly.coeff_monomial(X).is_zero
                                  and poly.coeff_monomial(1).is_zero):
        return None
    lead = poly.coeff_monomial(X**2)
    if not (lead.is_number and lead < 0):
        return None
    a2 = -2 * lead
    k = 1 / sp.sqrt((1 + a2 * Q)**2 - a2**2 * Q**2 * C**2)
    mean = 1 / sp.sqrt(1 + a2 * Q)
    return _with_shift(k, mean, g, e), g * mean + e


def _polynomial_kernel(expr):
    """Finite Hermite sum for a polynomial activation (exact)."""
    if not expr.is_polynomial(X):
        return None
    poly = sp.Poly(sp.expand(expr.subs(X, sp.sqrt(Q) * _Z)), _Z)
    degree = poly.degree()

    def moment(m):  # E[z^m]
        return sp.Integer(0) if m % 2 else sp.factorial2(m - 1) if m else sp.Integer(1)

    he = [sp.Integer(1), _Z]
    for n in range(1, degree):
        he.append(sp.expand(_Z * he[n] - n * he[n - 1]))
    k = sp.Integer(0)
    mean = None
    for n in range(degree + 1):
        prod = sp.Poly(sp.expand(poly.as_expr() * he[n]), _Z)
        a_n = sum(coef * moment(m[0]) for m, coef in zip(prod.monoms(), prod.coeffs()))
        if n == 0:
            mean = sp.simplify(a_n)
        k += sp.simplify(a_n**2 / sp.factorial(n)) * C**n
    return k, mean


def _two_slope_kernel(act):
    """``e + beta x^+ + alpha x^-`` with the kink at 0 (ReLU family)."""
    pieces = act.pieces
    if len(pieces) != 2 or pieces[0].hi != 0.0:
        return None
    left, right = (sp.expand(act.branches[p.branch]) for p in pieces)
    out = []
    for branch in (left, right):
        if not branch.is_polynomial(X) or sp.degree(branch, X) > 1:
            return None
        poly = sp.Poly(branch, X)
        out.append((poly.coeff_monomial(X), poly.coeff_monomial(1)))
    (alpha, e_left), (beta, e_right) = out
    if not sp.simplify(e_left - e_right).is_zero:
        return None
    e = e_left

    def j(c):
        return (sp.sqrt(1 - c**2) + (sp.pi - sp.acos(c)) * c) / (2 * sp.pi)

    k = Q * ((alpha**2 + beta**2) * j(C) - 2 * alpha * beta * j(-C))
    mean = (beta - alpha) * sp.sqrt(Q / (2 * sp.pi))
    return k + 2 * e * mean + e**2, mean + e


@functools.lru_cache(maxsize=256)
def kernel_expr(act):
    """``K(c; q) = E[phi(U) phi(V)]`` as a sympy expression in :data:`C` and :data:`Q`.

    Returns None when no closed form is known for the activation's structure.

    Example:
        >>> from kernelshape import activation
        >>> kernel_expr(activation("exp(x)"))
        exp(q*(c + 1))
    """
    if act.free:
        return None
    expr = act.expr
    for attempt in (_polynomial_kernel, _smooth_kernel):
        found = attempt(expr)
        if found is not None:
            return found[0]
    try:
        found = _two_slope_kernel(act)
    except Exception:  # noqa: BLE001 - structures this recogniser does not understand
        found = None
    return None if found is None else found[0]


def q_map_expr(act, order: int = 0):
    """Exact ``Q^(order)(q)`` in the symbol :data:`Q`, or None.

    .. math:: Q(q) = K(1; q) = E[\\phi(\\sqrt q z)^2].

    Example:
        >>> from kernelshape import activation
        >>> q_map_expr(activation("leaky_relu", negative_slope=0.5))
        0.625*q
    """
    k = kernel_expr(act)
    if k is None:
        return None
    q_expr = sp.simplify(k.subs(C, 1))
    return sp.diff(q_expr, Q, order) if order else q_expr


def c_map_expr(act, order: int = 0, q=1):
    """Exact ``C^(order)(c) = d^k/dc^k K(c; q) / Q(q)`` in the symbol :data:`C`, or None.

    ``q`` may be a number or the symbol :data:`Q`.

    Example:
        >>> from kernelshape import activation
        >>> c_map_expr(activation("relu"))
        (-c*(acos(c) - pi) + sqrt(1 - c**2))/pi
    """
    k = kernel_expr(act)
    if k is None:
        return None
    q = as_sympy(q, "q")
    c_expr = k.subs(Q, q) / k.subs(C, 1).subs(Q, q)
    c_expr = sp.simplify(c_expr) if c_expr.count_ops() < 60 else c_expr
    return sp.diff(c_expr, C, order) if order else c_expr


# -- float64 (the positively homogeneous route of kernelshape.maps.fast) -------------------
def homogeneous_slopes(prep, base):
    """(s_l, s_r) when ``f(u) = s_l u`` for u < 0 and ``s_r u`` for u > 0, else None
    (``prep``: the per-(activation, q) data of :mod:`kernelshape.maps.fast`).

    Example:
        >>> from kernelshape import activation
        >>> from kernelshape.maps import fast
        >>> phi = activation("leaky_relu", negative_slope=0.2)
        >>> homogeneous_slopes(fast.prepared(phi, 4.0), phi)          # slopes times sqrt(q)
        (0.4, 2.0)
    """
    if prep.beta != 0.0 or prep.D != 0.0 or len(base.pieces) != 2:
        return None
    if [k.location for k in base.kinks] != [0.0]:
        return None
    for piece in base.pieces:
        # linear through 0 (sp.cancel, not sp.simplify: simplify's first call imports
        # sympy.physics, a quarter of a second on the first C map of every kinked activation)
        e = sp.cancel(base.branches[piece.branch])
        if not e.is_polynomial(X) or sp.degree(e, X) > 1 or e.subs(X, 0) != 0:
            return None
    branch = prep._branch_of(np.array([-1.0, 1.0]))
    d1 = prep.r(1, np.array([-1.0, 1.0]), branch)
    return float(d1[0]), float(d1[1])


def _relu_r(c):
    """R(c) = sqrt(1 - c^2) + c arccos(-c) = sin(p) - p cos(p), p = arccos(-c), stably."""
    p = np.arccos(-c)
    out = np.sqrt((1.0 - c) * (1.0 + c)) + c * p
    small = p < 1.0
    if small.any():
        ps = p[small]
        term = ps ** 3 / 3.0
        acc = term.copy()
        for m in range(2, 14):
            term = -term * ps * ps * (2 * m) / ((2 * m - 2) * (2 * m) * (2 * m + 1))
            acc += term
        out[small] = acc
    return out


def homogeneous_c_map(slopes, c, order):
    """C^(order) of ``s_l u 1{u<0} + s_r u 1{u>0}`` at |c| < 1, float64 (THEORY.md §1):
    ``K(c) = s_l s_r c + (s_r - s_l)^2 R(c) / (2 pi)``, ``R(c) = sqrt(1 - c^2) +
    c arccos(-c)`` (a series near ``c = -1``, where it cancels).

    Example:
        >>> float(homogeneous_c_map((0.0, 1.0), np.array([0.0]), 0)[0] * math.pi)   # ReLU
        1.0
    """
    sl, sr = slopes
    q_norm = 0.5 * (sl * sl + sr * sr)
    jump2 = (sr - sl) ** 2 / (2.0 * math.pi)
    if order == 0:
        k = sl * sr * c + jump2 * _relu_r(c)
    elif order == 1:
        k = sl * sr + jump2 * np.arccos(-c)
    else:
        k = jump2 / np.sqrt((1.0 - c) * (1.0 + c))
    return k / q_norm
