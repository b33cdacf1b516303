"""Element-wise primitives as sympy: one rule per primitive, the activation's expression.

A chain of element-wise equations on one variable (``tanh``, ``logistic``, ``max`` with a
constant, ``select_n`` on a comparison, ``x * logistic(x)``, ...) is one function of that
variable; the reader (:mod:`._trace`) composes these rules into a sympy expression in ``x``
and turns it into a :func:`kernelshape.activation` where a layer consumes it.
"""

from __future__ import annotations

import sympy as sp

X = sp.Symbol("x", real=True)


def _logistic(a):
    return 1 / (1 + sp.exp(-a))


def _rsqrt(a):
    return 1 / sp.sqrt(a)


def _select(pred, *cases):
    if len(cases) != 2:
        raise ValueError("select_n with more than two cases")
    false_case, true_case = cases
    return sp.piecewise_fold(sp.Piecewise((true_case, pred), (false_case, True)))


def _convert(a):
    return a


#: primitive name -> rule(*operands as sympy) -> sympy (``params`` as keywords where used)
UNARY = {
    "neg": lambda a: -a,
    "exp": sp.exp,
    "exp2": lambda a: 2**a,
    "log": sp.log,
    "log1p": lambda a: sp.log(1 + a),
    "expm1": lambda a: sp.exp(a) - 1,
    "tanh": sp.tanh,
    "logistic": _logistic,
    "erf": sp.erf,
    "erfc": sp.erfc,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "atan": sp.atan,
    "asinh": sp.asinh,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "abs": sp.Abs,
    "sign": sp.sign,
    "sqrt": sp.sqrt,
    "rsqrt": _rsqrt,
    "cbrt": sp.cbrt,
    "square": lambda a: a**2,
    "convert_element_type": _convert,
    "copy": _convert,
    "copy_p": _convert,
    "reduce_precision": _convert,
    "optimization_barrier": _convert,
}

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "max": sp.Max,
    "min": sp.Min,
    "pow": lambda a, b: a**b,
    "atan2": sp.atan2,
    "gt": lambda a, b: sp.StrictGreaterThan(a, b),
    "ge": lambda a, b: sp.GreaterThan(a, b),
    "lt": lambda a, b: sp.StrictLessThan(a, b),
    "le": lambda a, b: sp.LessThan(a, b),
    "eq": lambda a, b: sp.Eq(a, b),
    "ne": lambda a, b: sp.Ne(a, b),
    "and": sp.And,
    "or": sp.Or,
}

OTHER = {
    "integer_pow": lambda a, *, y: a**y,
    "select_n": _select,
    "clamp": lambda lo, a, hi: sp.Min(sp.Max(a, lo), hi),
    "not": sp.Not,
}


def rule(name):
    """The sympy rule of an element-wise primitive, or None."""
    if name in UNARY:
        return UNARY[name]
    return BINARY.get(name) or OTHER.get(name)


def constant(value):
    """A scalar as sympy: booleans stay booleans, integers exact, floats as Float."""
    if isinstance(value, bool):
        return sp.true if value else sp.false
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Float(float(value), 17)


def linear_coefficient(expr):
    """``c`` when ``expr == c * x`` (c a number), else None.

    Example:
        >>> linear_coefficient(2 * X), linear_coefficient(X + 1), linear_coefficient(sp.tanh(X))
        (2.0, None, None)
    """
    if expr == X:
        return 1.0
    if isinstance(expr, sp.Expr) and expr.is_zero:
        return 0.0      # 0 * x: a branch weighted by zero
    if isinstance(expr, sp.Expr) and expr.is_polynomial(X):
        poly = sp.Poly(expr, X)
        if poly.degree() == 1 and poly.coeff_monomial(1).is_zero:
            return float(poly.coeff_monomial(X))
    return None


def simplify(expr):
    """Light clean-up of a traced expression: whole-number floats exact (``1.0*x`` is
    ``x``), nested Piecewise folded.

    Example:
        >>> simplify(sp.Max(sp.Float(0.0), sp.Float(1.0) * X))
        Max(0, x)
    """
    whole = {f: sp.Integer(int(f)) for f in expr.atoms(sp.Float) if float(f).is_integer()}
    if whole:
        expr = expr.xreplace(whole)
    if expr.has(sp.Piecewise):
        expr = sp.piecewise_fold(expr)
    return expr
