"""numba modules generated from an activation's analytic branches, cached on disk.

For each distinct tuple of branch expressions kernelshape writes one Python module holding

* ``_branch(k, d, x)``: the ``d``-th derivative (d = 0, 1, 2) of branch ``k`` at ``x``,
  printed from sympy for the ``math`` module (with numerically stable rewrites), and
* the quadrature kernels in ``kernelshape/_kernels/*.py`` (concatenated in file-name order),
  which call ``_branch``. Those files are templates, never imported themselves.

The module's file name is a hash of the kernelshape version, the template and the branch
source, so a stale cache after an upgrade or a template change is never picked up: the new
source lands in a new file. Every jitted function gets a checked disk cache, so a fresh
process loads machine code from disk instead of compiling; :mod:`kernelshape._jitcache`
says when a directory or an entry is trusted, and how broken entries heal. If the cache
directory cannot be used, kernelshape falls back to a private temporary directory and says
so once (:class:`CacheWarning`); if nothing can be used, it compiles in memory.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from pathlib import Path

import sympy as sp
from sympy.codegen.cfunctions import expm1
from sympy.printing.pycode import PythonCodePrinter

from ._jitcache import CacheWarning, cache_dir, load_module
from .parsing import X

__all__ = ["CacheWarning", "cache_dir", "jit_module", "module_source", "stabilize"]

_KERNELS = Path(__file__).with_name("_kernels")
_LOCK = threading.Lock()
_MODULES: dict[str, object] = {}


class _MathPrinter(PythonCodePrinter):
    """Prints scalar float64 code for numba using the math module, stably."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})

    def _print_log(self, expr):
        arg = expr.args[0]
        # log(1 + exp(u)) -> softplus(u), which neither overflows nor loses the small tail.
        if isinstance(arg, sp.Add) and len(arg.args) == 2 and sp.S.One in arg.args:
            other = arg.args[0] if arg.args[1] == 1 else arg.args[1]
            if isinstance(other, sp.exp):
                return f"_softplus({self._print(other.args[0])})"
            return f"math.log1p({self._print(other)})"
        return f"math.log({self._print(arg)})"

    def _print__Select(self, expr):
        u, low, high = (self._print(a) for a in expr.args)
        return f"(({low})*({u} <= 0.0) + ({high})*({u} > 0.0))"

    def _print__Erfc(self, expr):
        return f"math.erfc({self._print(expr.args[0])})"

    def _print__OnePlusTanh(self, expr):
        return f"_one_plus_tanh({self._print(expr.args[0])})"

    def _print_Float(self, expr):
        return _finite(expr)

    def _print_Rational(self, expr):
        return _finite(expr)

    def _print_Integer(self, expr):
        return f"{int(expr)}.0" if abs(int(expr)) < 2**53 else _finite(expr)

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and abs(int(exp)) <= 8:
            b = self.parenthesize(base, 100)
            n = abs(int(exp))
            body = "*".join([b] * n) if n else "1.0"
            return f"(1.0/({body}))" if exp < 0 else f"({body})"
        if exp == sp.S.Half:
            return f"math.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"(1.0/math.sqrt({self._print(base)}))"
        return super()._print_Pow(expr, rational=rational)


def _finite(number) -> str:
    """A float64 literal; a constant beyond float64's range is an error, not ``inf``."""
    value = float(number)
    if not math.isfinite(value):
        from .errors import MagnitudeError
        raise MagnitudeError(
            f"the constant {sp.Float(number, 5)} (in phi or a derivative of it) is beyond "
            "float64's range; float64 evaluation and maps need smaller constants")
    return repr(value)


class _Erfc(sp.Function):
    """erfc(u) that stays as written: sympy would turn ``erfc(-u)`` into ``2 - erfc(u)``
    (cancelling for u >> 0) whenever the tree is rebuilt (``subs``, ``cse``)."""

    def _eval_evalf(self, prec):
        return sp.erfc(self.args[0])._eval_evalf(prec)


class _OnePlusTanh(sp.Function):
    """1 + tanh(u), printed as a cancellation-free helper."""

    def _eval_evalf(self, prec):
        return (1 + sp.tanh(self.args[0]))._eval_evalf(prec)


@functools.lru_cache(maxsize=256)
def stabilize(expr: sp.Expr) -> sp.Expr:
    """Rewrite ``expr`` so float64 evaluation neither overflows nor cancels needlessly.

    * Ratios of exponentials (``exp(x) / (1 + exp(x))``, the derivatives of softplus,
      sigmoid, swish, mish): see :func:`_balance_exponentials`.
    * Sums of rational functions of x whose leading terms cancel (``1 - x^2 / (x^2 + 1)``)
      are combined into one reduced fraction.
    * Sums that cancel near a point: exp(u) - 1, 1 +- erf(u), 1 + tanh(u), 1 - tanh(u)^2,
      sqrt(A) - 1 (each only with the exact matching constant).

    Example:
        >>> _MathPrinter().doprint(stabilize(sp.exp(X) - 1))
        'math.expm1(x)'
    """
    return _stable_sums(_balance_exponentials(expr))


class _Select(sp.Function):
    """``A`` where ``u <= 0`` else ``B``; printed branch-free as ``A*(u <= 0) + B*(u > 0)``
    (valid for numba scalars and numpy arrays alike; both sides are finite)."""

    nargs = 3

    def _eval_evalf(self, prec):
        u, a, b = self.args
        return (a if u <= 0 else b)._eval_evalf(prec)


_HYPERBOLIC = (sp.tanh, sp.cosh, sp.sinh, sp.coth, sp.sech, sp.csch)


def _balance_exponentials(expr: sp.Expr) -> sp.Expr:
    """Overflow-free form of an expression rational in ``E = exp(u)`` (u unbounded above).

    With hyperbolic functions of ``u`` (or of expressions holding ``exp(u)``, like
    ``tanh(log(1 + exp(x)))``) written as exponentials, the expression is a reduced fraction
    ``P(E) / D(E)``. When D is not a monomial, ``E -> inf`` gives ``inf / inf``; instead it
    is printed as ``P(m) / D(m)`` for ``u <= 0`` and ``P(1/m) / D(1/m)`` (reduced) for
    ``u > 0``, with ``m = exp(-|u|) <= 1``: e.g. ``exp(x) / (exp(x) + 1)`` becomes
    ``m / (m + 1)`` or ``1 / (1 + m)``. Sub-expressions that are not rational in E
    (``log(1 + exp(x))``, printed as a stable softplus) are kept whole. One family of
    commensurate exponents ``exp(n u)`` per pass, at most three passes.
    """
    for _ in range(3):
        new = _balance_once(expr)
        if new is None:
            return expr
        expr = new
    return expr


def _balance_once(expr):
    """The first family of growing exponentials that can be balanced, rewritten; or None."""
    growing = {e.args[0] for e in expr.atoms(sp.exp)
               if e.args[0].has(X) and not e.args[0].is_nonpositive}
    growing = sorted(growing, key=sp.default_sort_key)
    for u0 in growing:
        new = _balance_family(expr, u0)
        if new is not None:
            return new
    return None


def _balance_family(expr, u0):
    """``expr`` with the exponentials ``exp(r u0)`` (r rational) balanced, or None."""

    def ratio(arg):
        r = sp.cancel(arg / u0)
        return r if r.is_Rational and r != 0 else None

    def hyperbolic(f):
        if not isinstance(f, _HYPERBOLIC):
            return False
        arg = f.args[0]
        return ratio(arg) is not None or any(
            ratio(e.args[0]) is not None for e in arg.atoms(sp.exp))

    expr = expr.replace(hyperbolic, lambda f: f.rewrite(sp.exp))
    family = {e: ratio(e.args[0]) for e in expr.atoms(sp.exp) if ratio(e.args[0]) is not None}
    if not family:
        return None
    step = functools.reduce(sp.gcd, family.values())
    u = u0 * step
    sign = -1 if u.could_extract_minus_sign() else 1
    u = sign * u
    E, W = sp.Dummy("E", positive=True), sp.Dummy("W", positive=True)
    rational = expr.xreplace({e: E ** (sign * r / step) for e, r in family.items()})
    held = {}
    rational = _hold_opaque(rational, E, held)
    num, den = _fraction(rational)
    if not den.has(E) or not num.is_polynomial(E) or not den.is_polynomial(E) or len(
            sp.Poly(den, E).terms()) < 2:
        return None
    low = _reduced(num / den, E)
    high = _reduced((num / den).subs(E, 1 / W), W)
    m = sp.exp(-sp.Abs(u))
    restore = {d: v.subs(E, sp.exp(u)) for d, v in held.items()}
    return _Select(u, low.subs(E, m).xreplace(restore), high.subs(W, m).xreplace(restore))


def _hold_opaque(expr, E, held):
    """Replace sub-expressions holding E that are not built rationally from it by symbols."""
    if expr == E or not expr.has(E):
        return expr
    if expr.is_Add or expr.is_Mul:
        return expr.func(*[_hold_opaque(a, E, held) for a in expr.args])
    if expr.is_Pow and expr.exp.is_Integer:
        return _hold_opaque(expr.base, E, held) ** expr.exp
    dummy = sp.Dummy("held")
    held[dummy] = expr
    return dummy


def _fraction(expr):
    """(numerator, denominator) of ``expr`` as one reduced fraction: in sympy's field of
    rational functions of its generators (fast), else ``cancel(together(expr))``."""
    from sympy.polys.fields import sfield
    try:
        _, value = sfield(expr)
        return value.numer.as_expr(), value.denom.as_expr()
    except (sp.PolynomialError, sp.polys.polyerrors.PolificationFailed, ValueError,
            NotImplementedError):
        return sp.fraction(sp.cancel(sp.together(expr)))


def _reduced(expr, var):
    """A reduced fraction in ``var``, factored where that is exact (``m - m^2`` would
    cancel near ``m = 1``; ``m (1 - m)`` becomes ``-m expm1(-|u|)``)."""
    num, den = _fraction(expr)
    if not expr.has(sp.Float):
        num, den = sp.factor(num), sp.factor(den)
    return num / den


def _combine_rational(expr):
    """Combine the rational-in-x terms of a sum when their leading powers cancel."""
    if not any(sp.fraction(t)[1].has(X) for t in expr.args):
        return expr   # no fraction in x: nothing for a common denominator to cancel
    terms = [t for t in expr.args if t.is_rational_function(X)]
    if len(terms) < 2 or not any(t.has(X) for t in terms) or any(t.has(sp.Float)
                                                                 for t in terms):
        return expr
    parts = [sp.fraction(sp.cancel(t)) for t in terms]
    common = functools.reduce(sp.lcm, [d for _, d in parts])

    def degree(p):
        return sp.degree(p, X) if p != 0 else -1

    naive = max(degree(n) + degree(common) - degree(d) for n, d in parts)
    num, den = sp.fraction(sp.cancel(sp.Add(*terms)))
    if degree(num) + degree(common) - degree(den) >= naive:
        return expr
    combined = sp.factor(num) / sp.factor(den)
    return sp.Add(combined, *[t for t in expr.args if t not in terms])


def _stable_sums(expr: sp.Expr) -> sp.Expr:
    if not expr.args:
        return expr
    expr = expr.func(*[_stable_sums(a) for a in expr.args]) if not isinstance(
        expr, sp.Piecewise) else expr
    if not isinstance(expr, sp.Add):
        return expr
    expr = _combine_rational(expr)
    if not isinstance(expr, sp.Add):
        return expr
    const, rest = expr.as_coeff_Add()
    if const == 0:
        return expr
    for term in sp.Add.make_args(rest):
        k, f = term.as_coeff_Mul()
        new = None
        if isinstance(f, sp.exp) and const == -k:
            new = k * expm1(f.args[0])
        elif isinstance(f, sp.erf) and const == k:
            new = k * _Erfc(-f.args[0])
        elif isinstance(f, sp.erf) and const == -k:
            new = -k * _Erfc(f.args[0])
        elif isinstance(f, sp.tanh) and const == k:
            new = k * _OnePlusTanh(f.args[0])
        elif isinstance(f, sp.tanh) and const == -k:
            new = -k * _OnePlusTanh(-f.args[0])
        elif (isinstance(f, sp.Pow) and isinstance(f.base, sp.tanh) and f.exp == 2
              and const == -k):
            new = -k / sp.cosh(f.base.args[0]) ** 2
        elif isinstance(f, sp.Pow) and f.exp == sp.S.Half and const == -k:
            new = k * sp.expand(f.base - 1) / (sp.sqrt(f.base) + 1)
        if new is not None:
            others = [t for t in sp.Add.make_args(rest) if t is not term]
            return sp.Add(new, *others, evaluate=False)
    return expr


def branch_source(branches) -> str:
    """Source of ``_branch(k, d, x)`` for the given analytic branch expressions."""
    printer = _MathPrinter()
    lines = ["@njit(cache=_CACHE)", "def _branch(k, d, x):"]
    for k, expr in enumerate(branches):
        lines.append(f"    if k == {k}:")
        for d in range(3):
            code = printer.doprint(stabilize(sp.diff(expr, X, d)))
            kw = "if" if d == 0 else "elif" if d == 1 else "else"
            lines.append(f"        {kw} d == {d}:" if d < 2 else "        else:")
            lines.append(f"            return float({code})")
    lines.append("    return math.nan")
    return "\n".join(lines) + "\n"


def module_source(branches) -> tuple[str, str]:
    """(module name, module text) for ``branches``: ``_branch`` and the kernel templates.

    The name holds a hash of the kernelshape version and the text, so an upgrade or a
    template change lands in a new module. The text is what runs, whether or not a file of
    that name exists on disk (see :mod:`kernelshape._jitcache`).
    """
    body = branch_source(branches)
    template = "\n\n".join(p.read_text() for p in sorted(_KERNELS.glob("*.py")))
    source = ("# generated by kernelshape; do not edit\n"
              "import math\nimport numpy as np\nfrom numba import njit\n\n"
              "# kernelshape attaches its own checked disk cache to each function after loading\n"
              f"_CACHE = False\n\n{body}\n{template}")
    digest = hashlib.sha256(f"{_version()}\n{source}".encode()).hexdigest()[:24]
    return f"_kernelshape_jit_{digest}", source


def _version():
    from . import __version__
    return __version__


def jit_module(branches):
    """The compiled module for ``branches`` (a tuple of sympy expressions in x)."""
    key, source = module_source(branches)
    with _LOCK:
        if key not in _MODULES:
            _MODULES[key] = load_module(key, source)
        return _MODULES[key]
