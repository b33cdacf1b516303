"""Printing one analytic branch of an activation as framework code.

Two steps, shared by every target:

1. :func:`stable_form` rewrites the sympy expression into numerically stable building blocks
   (``log(1 + exp(f))`` -> ``softplus(f)``, ``1 / (1 + exp(f))`` -> ``sigmoid(-f)``,
   ``c exp(f) - c`` -> ``c expm1(f)``, ``1 + tanh(f)`` -> ``2 sigmoid(2 f)``,
   ``1 + erf(f)`` -> ``erfc(-f)``, ``log(1 + f)`` -> ``log1p(f)``,
   ``sqrt(c1 f**2 + c0)`` -> ``sqrt(c1) hypot(f, sqrt(c0 / c1))``, which does not overflow
   while ``f**2`` would) and folds every constant subexpression (``sqrt(2/pi)``, rationals)
   into one float. Far from 0 the emitter also swaps outer branches for their exact
   asymptotes (:mod:`kernelshape.codegen.tails`).
2. :class:`TargetPrinter`, a subclass of sympy's :class:`~sympy.printing.str.StrPrinter`
   (which supplies operator precedence), prints the result. A target is a subclass that sets
   ``target`` and ``functions``, the whole mapping from sympy function classes to code
   templates in one dict (the habit of sympy2jax). A function without an entry raises
   :class:`~kernelshape.errors.CodegenError` naming it, so no code that fails at run time is
   ever emitted.

Constants print as the shortest round-trip float, ``repr(float(v))``; as Python floats they
keep float32 inputs float32 in NumPy, PyTorch and JAX (weak scalar typing). Integer powers
stay integers (``u**2``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import sympy as sp
from sympy.functions.elementary.miscellaneous import MinMaxBase
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from ..errors import CodegenError
from ..parsing import as_sympy

_POW = PRECEDENCE["Pow"]
_MUL = PRECEDENCE["Mul"]

__all__ = ["Erfc", "Expm1", "Hypot", "HypotRatio", "Log1p", "Sigmoid", "Softplus", "TargetPrinter",
           "stable_form"]


class Softplus(sp.Function):
    """``log(1 + exp(x))``, printed through a framework's stable logaddexp."""

    nargs = 1

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])


class Sigmoid(sp.Function):
    """``1 / (1 + exp(-x))``, printed through a framework's sigmoid."""

    nargs = 1

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0]) * Sigmoid(-self.args[0])


class Expm1(sp.Function):
    """``exp(x) - 1`` without cancellation near 0."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.exp(self.args[0])


class Log1p(sp.Function):
    """``log(1 + x)`` without cancellation near 0."""

    nargs = 1

    def fdiff(self, argindex=1):
        return 1 / (1 + self.args[0])


class Erfc(sp.Function):
    """``1 - erf(x)`` without cancellation (sympy's own erfc rewrites ``erfc(-x)``)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return -2 * sp.exp(-self.args[0] ** 2) / sp.sqrt(sp.pi)


class Hypot(sp.Function):
    """``sqrt(x**2 + c**2)`` for a constant ``c > 0``, without overflow of ``x**2``."""

    nargs = 2

    def fdiff(self, argindex=1):
        if argindex != 1:   # the second argument is a constant (see _rewrite_sqrt)
            raise sp.ArgumentIndexError(self, argindex)
        return HypotRatio(*self.args)


class HypotRatio(sp.Function):
    """``x / hypot(x, c)``, in [-1, 1]: derivatives keep it whole, so ``x**2 / hypot**3``
    (inf / inf for large x) never appears."""

    nargs = 2

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return self.args[1] ** 2 / Hypot(*self.args) ** 3


def _fold_constants(expr: sp.Expr) -> sp.Expr:
    """Replace every constant subexpression except integers by one float (30 digits)."""
    if expr.is_Integer or isinstance(expr, sp.Float):
        return expr
    if not expr.free_symbols:
        if expr.is_Number or expr.is_NumberSymbol or isinstance(expr, (sp.Pow, sp.Mul, sp.Add,
                                                                      sp.Function)):
            value = expr.evalf(30)
            if not (value.is_Number and value.is_finite and value.is_real):
                raise CodegenError(f"constant {expr} is not a finite real number")
            return sp.Float(value, 30)
        return expr
    if expr.is_Atom:
        return expr
    if isinstance(expr, sp.Pow) and expr.exp.is_Rational:
        return sp.Pow(_fold_constants(expr.base), expr.exp)
    return expr.func(*(_fold_constants(a) for a in expr.args))


def _split_affine_term(term):
    """``c * f(arg)`` -> (c, f, arg) for f in tanh/erf/exp, else None."""
    coeff, rest = term.as_coeff_Mul()
    if isinstance(rest, (sp.tanh, sp.erf, sp.exp)):
        return coeff, type(rest), rest.args[0]
    return None


def _rewrite_add(expr: sp.Add) -> sp.Expr:
    const, rest = expr.as_coeff_Add()
    if const == 0:
        return expr
    for term in sp.Add.make_args(rest):
        split = _split_affine_term(term)
        if split is None:
            continue
        coeff, func, arg = split
        sign = 1 if coeff == const else -1 if coeff == -const else 0
        if sign == 0:
            continue
        others = rest - term
        if func is sp.tanh:    # n (1 +- tanh f) = 2 n sigmoid(+-2 f)
            return others + 2 * const * Sigmoid(2 * sign * arg)
        if func is sp.erf:     # n (1 +- erf f) = n erfc(-+f)
            return others + const * Erfc(-sign * arg)
        if sign == -1:         # c exp(f) - c = c expm1(f)
            return others + coeff * Expm1(arg)
    return expr


def _one_plus(expr):
    """``f`` if ``expr`` is ``1 + f``, else None."""
    if isinstance(expr, sp.Add):
        const, rest = expr.as_coeff_Add()
        if const == 1:
            return rest
    return None


def _rewrite_sqrt(expr: sp.Pow) -> sp.Expr:
    """``(c1 f**2 + c0)**(+-1/2)`` with constants c0, c1 > 0 -> through :class:`Hypot`."""
    if not (isinstance(expr.base, sp.Add) and abs(expr.exp) == sp.S.Half):
        return expr
    c0, rest = expr.base.as_coeff_Add()
    c1, square = rest.as_coeff_Mul()
    if not (c0.is_positive and c1.is_positive and isinstance(square, sp.Pow)
            and square.exp == 2 and square.base.free_symbols):
        return expr
    return (sp.sqrt(c1) * Hypot(square.base, sp.sqrt(c0 / c1))) ** (2 * expr.exp)


def _rewrite(expr: sp.Expr) -> sp.Expr:
    if expr.is_Atom:
        return expr
    expr = expr.func(*(_rewrite(a) for a in expr.args))
    if isinstance(expr, sp.Add):
        return _rewrite_add(expr)
    if isinstance(expr, sp.log):
        inner = _one_plus(expr.args[0])
        if isinstance(inner, sp.exp):
            return Softplus(inner.args[0])
        if inner is not None:
            return Log1p(inner)
    if isinstance(expr, sp.Pow) and expr.exp.is_Rational and expr.exp.q == 2:
        return _rewrite_sqrt(expr)
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp < 0:
        inner = _one_plus(expr.base)
        if isinstance(inner, sp.exp):   # (1 + exp(f))^-n = sigmoid(-f)^n
            return Sigmoid(-inner.args[0]) ** (-expr.exp)
    return expr


def stable_form(expr: sp.Expr) -> sp.Expr:
    """The expression rewritten into stable building blocks, constants folded to floats.

    Args:
        expr: an analytic sympy expression (no Piecewise: the emitter splits pieces first).

    Returns:
        An equal expression using :class:`Softplus`, :class:`Sigmoid`, :class:`Expm1`,
        :class:`Log1p` and :class:`Erfc` where they avoid overflow or cancellation.

    Example:
        >>> from kernelshape.parsing import X
        >>> stable_form(X / (1 + sp.exp(-X)))
        x*Sigmoid(x)
    """
    return _fold_constants(_rewrite(as_sympy(expr, "expression")))


class TargetPrinter(StrPrinter):
    """Base printer: sympy operators and numbers, functions through the ``functions`` table.

    Subclasses set ``target`` (the target's name, for messages) and ``functions``: sympy
    function class -> template with ``{0}``, ``{1}`` for the printed arguments, or a
    callable ``(printed_args, sympy_args) -> str``. ``Max`` and ``Min`` are folded pairwise
    through their two-argument entry, numbers last.
    """

    target = "none"
    functions: Mapping[type, str] = {}
    _allowed = (sp.Add, sp.Mul, sp.Pow, sp.Symbol, sp.Number, sp.NumberSymbol)

    def __init__(self):
        super().__init__({"full_prec": False})

    def _print(self, expr, **kwargs):
        if isinstance(expr, sp.Basic):
            if isinstance(expr, (sp.Function, MinMaxBase)):
                return self._print_call(expr)
            if not isinstance(expr, self._allowed) or expr in (sp.nan, sp.zoo, sp.oo, -sp.oo):
                raise CodegenError(
                    f"cannot emit {self.target} code for {type(expr).__name__} ({expr}); "
                    "expected arithmetic, numbers and functions in x")
        return super()._print(expr, **kwargs)

    def _print_call(self, expr):
        func = type(expr)
        template = self.functions.get(func)
        if template is None:
            known = sorted(f.__name__ for f in self.functions)
            raise CodegenError(
                f"no {self.target} mapping for the sympy function {func.__name__!r} in "
                f"{expr}; the {self.target} target maps {', '.join(known)}")
        if isinstance(expr, MinMaxBase):
            # Fold pairwise with numbers last, so the first argument is always an array.
            ordered = sorted(expr.args, key=lambda a: bool(a.is_Number))
            out = self._print(ordered[0])
            for arg in ordered[1:]:
                out = self._apply(template, [out, self._print(arg)], (None, arg))
            return out
        return self._apply(template, [self._print(a) for a in expr.args], expr.args)

    @staticmethod
    def _apply(template, printed, args):
        """A table entry is a format string or a callable ``(printed, args) -> str``."""
        if callable(template):
            return template(printed, args)
        return template.format(*printed)

    def _print_Float(self, expr):
        value = float(expr)
        if not math.isfinite(value):
            raise CodegenError(f"constant {expr} does not fit a float64")
        return repr(value)

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Integer(self, expr):
        # Past 2**53 an integer is no more exact than a float, and a Python int that large
        # overflows framework calls (torch.full_like(u, 10**40)).
        return str(int(expr)) if abs(expr) <= 2**53 else self._print_Float(expr)

    def _print_NumberSymbol(self, expr):
        return repr(float(expr))

    _print_Pi = _print_Exp1 = _print_NumberSymbol

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.base, expr.exp
        sqrt = self.functions.get(sp.sqrt)
        if exp == sp.S.Half and sqrt:
            return sqrt.format(self._print(base))
        if exp == -sp.S.Half and sqrt:
            return "1 / " + sqrt.format(self._print(base))
        if exp.is_Number:
            if exp == -1:
                return "1 / " + self.parenthesize(base, _MUL, strict=True)
            if exp.is_negative:
                return "1 / " + self._print(sp.Pow(base, -exp, evaluate=False))
            text_exp = self._print(exp) if exp.is_Integer else repr(float(exp))
            return f"{self.parenthesize(base, _POW)}**{text_exp}"
        return super()._print_Pow(expr, rational=rational)
