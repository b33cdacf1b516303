"""Expression text to sympy, without executing Python.

The text is parsed with :func:`ast.parse` (which only builds a syntax tree) and the tree is
walked against a whitelist: numbers, the operators ``+ - * / **``, unary minus, calls to the
functions in :data:`FUNCTIONS`, the constants in :data:`CONSTANTS`, comparisons inside
``where(cond, a, b)``, the variable ``x`` and declared parameter names. Anything else
(attribute access, subscripts, lambdas, keyword arguments, strings, unknown names, ...) is
rejected with an :class:`~kernelshape.errors.ExpressionError` naming the offending piece.

The built-in activations (:data:`BUILTIN_ACTIVATIONS`: ``swish``, ``gelu``, ``leaky_relu``,
...) are functions too: ``x*softplus(x)``, ``swish(2*x) - 1``. A built-in's parameters come
from extra arguments (``leaky_relu(x, 0.2)``), else from a declared parameter of the same
name (a symbol), else from the built-in's default, else they stay free symbols.

Every constant the text builds (``exp(exp(10))``, ``1e200*1e200``) must lie within float64's
range (at most ``10^300`` in size, :data:`MAX_MAGNITUDE`); it is checked as soon as it is
built, so a tower like ``exp(exp(exp(10)))`` is refused before sympy tries to evaluate it.
"""

from __future__ import annotations

import ast
import math
import re
import sys
from collections.abc import Iterable

import sympy as sp

from ._builtins import BUILTIN_ACTIVATIONS, relu, sigmoid, softplus, suggest
from .errors import (
    ExpressionError,
    MagnitudeError,
    UnknownNameError,
    UnsafeExpressionError,
)

__all__ = ["BUILTIN_ACTIVATIONS", "CONSTANTS", "FUNCTIONS", "MAX_MAGNITUDE", "X",
           "as_sympy", "check_constants", "parse_expression", "parse_srepr"]

#: The activation's variable. Real, so that sympy simplifies ``Abs``/``sign`` correctly.
X = sp.Symbol("x", real=True)

MAX_LENGTH = 2000
MAX_DEPTH = 60
#: Largest size of a constant in an expression: float64's largest finite value.
MAX_MAGNITUDE = sys.float_info.max


def _where(cond, a, b):
    return sp.Piecewise((a, cond), (b, True))


#: Function names accepted in expression text, with their arity and sympy meaning.
FUNCTIONS = {
    "exp": (1, sp.exp), "log": (1, sp.log), "sqrt": (1, sp.sqrt), "cbrt": (1, sp.cbrt),
    "sin": (1, sp.sin), "cos": (1, sp.cos), "tan": (1, sp.tan),
    "sinh": (1, sp.sinh), "cosh": (1, sp.cosh), "tanh": (1, sp.tanh),
    "atan": (1, sp.atan), "arctan": (1, sp.atan), "asinh": (1, sp.asinh),
    "arcsinh": (1, sp.asinh), "erf": (1, sp.erf), "erfc": (1, sp.erfc),
    "abs": (1, sp.Abs), "Abs": (1, sp.Abs), "sign": (1, sp.sign),
    "heaviside": ((1, 2), lambda u, h0=sp.S.Half: sp.Heaviside(u, h0)),
    "Heaviside": ((1, 2), lambda u, h0=sp.S.Half: sp.Heaviside(u, h0)),
    "max": ((2, None), sp.Max), "Max": ((2, None), sp.Max),
    "min": ((2, None), sp.Min), "Min": ((2, None), sp.Min),  # (2, None): two or more
    "relu": (1, relu), "sigmoid": (1, sigmoid), "softplus": (1, softplus),
    "where": (3, _where),
    "Piecewise": (None, None),  # sympy's printed form: Piecewise((expr, cond), ..., (expr, True))
}

#: Constant names accepted in expression text.
CONSTANTS = {"pi": sp.pi, "E": sp.E, "e": sp.E}

def _did_you_mean(suggestions) -> str:
    return f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""


def check_constants(expr: sp.Basic) -> None:
    """Refuse constant sub-expressions larger than :data:`MAX_MAGNITUDE` in size.

    Sub-expressions are visited innermost first, so each one is evaluated only once its
    parts are known to be of reasonable size (evaluating ``exp(exp(exp(10)))`` itself would
    need more memory than exists).

    Raises:
        MagnitudeError: naming the first constant that is too large.
    """
    for node in sp.postorder_traversal(expr):
        if isinstance(node, sp.Expr) and node.is_number:
            _check_constant(node)


def _check_constant(value) -> None:
    if value.is_Rational:
        size = abs(value)
    elif value.is_Atom and not value.is_Float:
        return  # pi, E, zoo, nan: infinities are reported as "not finite" elsewhere
    else:
        try:
            size = abs(sp.N(value, 15))
        except (ValueError, TypeError, ArithmeticError, MemoryError) as err:
            raise MagnitudeError(
                f"cannot evaluate the constant {_short(value)}: {type(err).__name__}") from err
        if not size.is_finite or not size.is_comparable:
            return
    if size > MAX_MAGNITUDE:
        raise MagnitudeError(
            f"the constant {_short(value)} is too large"
            f"{'' if value.is_Rational else f' (about {sp.Float(size, 3)})'}: beyond float64's "
            f"largest value {MAX_MAGNITUDE:.4g}")

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_CMPOPS = {
    ast.Lt: sp.StrictLessThan, ast.LtE: sp.LessThan,
    ast.Gt: sp.StrictGreaterThan, ast.GtE: sp.GreaterThan,
}


def as_sympy(value, what: str = "value") -> sp.Basic:
    """A sympy object for ``value`` without ever evaluating text.

    sympy's own ``sympify`` runs strings through ``eval``; here strings are refused (use
    :func:`parse_expression` for text) and only sympy objects and real numbers pass.

    Example:
        >>> as_sympy(0.5)
        0.500000000000000
    """
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, (bool, str, bytes)):
        raise ExpressionError(
            f"{what} must be a number or a sympy expression, got {type(value).__name__} "
            f"{str(value)[:60]!r} (text is only read by the safe parser)")
    try:
        import numbers
        if isinstance(value, numbers.Integral):
            return sp.Integer(int(value))
        if isinstance(value, numbers.Real) or hasattr(value, "_mpf_"):
            return sp.Float(value)
    except (TypeError, ValueError) as err:
        raise ExpressionError(f"{what}: cannot use {value!r}: {err}") from err
    raise ExpressionError(
        f"{what} must be a number or a sympy expression, got {type(value).__name__}")


def parse_expression(text: str, parameters: Iterable[str] = ()) -> sp.Expr:
    """Parse activation text into a sympy expression in :data:`X`.

    Args:
        text: e.g. ``"x*tanh(softplus(x))"``. ASCII only, at most 2000 characters.
        parameters: names allowed besides ``x`` (they become real sympy symbols).

    Returns:
        The sympy expression.

    Raises:
        UnsafeExpressionError: syntax outside the whitelist.
        UnknownNameError: a name that is neither ``x``, a parameter, a function nor a constant.
        ExpressionError: text that is not an expression at all, too long or too deep.

    Example:
        >>> parse_expression("x*tanh(softplus(x))")
        x*tanh(log(exp(x) + 1))
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected expression text (str), got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression text too long: {len(text)} characters, at most {MAX_LENGTH} allowed")
    if not text.isascii():
        bad = next(ch for ch in text if not ch.isascii())
        raise UnsafeExpressionError(
            f"expression text must be ASCII; got the character {bad!r} (U+{ord(bad):04X}); "
            "look-alike characters are rejected")
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} parentheses")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise ExpressionError(f"cannot parse expression {text!r}: {err}") from err
    params = {name: sp.Symbol(name, real=True) for name in parameters}
    expr = _Walker(params, text).visit(tree.body, 0)
    check_constants(expr)  # constants formed inside products and sums (x*1e308*10)
    return expr


def _short(value) -> str:
    text = sp.sstr(sp.Float(value, 5) if value.is_Rational and abs(value) > 10**20 else value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _check_power(base, exponent):
    """Refuse powers whose exponent or numeric result is out of all proportion.

    Checked before sympy computes anything, so ``((9**99)**99)**99`` costs nothing.
    """
    if exponent.is_number:
        if not exponent.is_real:
            raise ExpressionError(f"exponent {_short(exponent)} is not real")
        if abs(exponent) > 1000:
            raise ExpressionError(
                f"exponent {_short(exponent)} too large (at most 1000 in size)")
        if base.is_number and base.is_real and base != 0:
            magnitude = abs(float(exponent)) * abs(math.log10(abs(float(sp.N(base, 5)))))
            if magnitude > 300:
                raise ExpressionError(
                    f"the number {_short(base)}**{_short(exponent)} is too large or too small "
                    f"(about 10^{magnitude:.0f}; at most 10^300 allowed)")


class _Walker:
    def __init__(self, params, text):
        self.params = params
        self.text = text

    def visit(self, node, depth):
        if depth > 4 * MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {4 * MAX_DEPTH} operations")
        method = getattr(self, "_" + type(node).__name__, None)
        if method is not None:
            value = method(node, depth + 1)
            if isinstance(value, sp.Expr) and value.is_number:
                _check_constant(value)  # before anything is built on top of it
            return value
        if method is None:
            snippet = ast.get_source_segment(self.text, node) or type(node).__name__
            raise UnsafeExpressionError(
                f"{type(node).__name__} is not allowed in an activation expression "
                f"(at {snippet!r}); allowed: numbers, x, parameters, + - * / **, "
                f"and the functions {', '.join(sorted(FUNCTIONS))}")

    def _Constant(self, node, depth):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UnsafeExpressionError(
                f"only real number literals are allowed, got {value!r}")
        if isinstance(value, int):
            if abs(value) > 10**100:
                raise ExpressionError(f"integer literal too large: {value}")
            return sp.Integer(value)
        # Keep the decimal text exactly (0.044715 stays 44715/10^6, not its binary float).
        segment = ast.get_source_segment(self.text, node)
        return sp.Rational(segment) if segment else sp.Float(value)

    def _Name(self, node, depth):
        name = node.id
        if name == "x":
            return X
        if name in self.params:
            return self.params[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS or name in BUILTIN_ACTIVATIONS:
            raise ExpressionError(f"function {name!r} used without calling it (write "
                                  f"{name}(x))")
        suggestions = suggest(name, [*BUILTIN_ACTIVATIONS, *FUNCTIONS, *CONSTANTS,
                                     *self.params, "x"])
        raise UnknownNameError(
            f"unknown name {name!r} in expression{_did_you_mean(suggestions)}; the variable "
            f"is 'x', declared parameters are {sorted(self.params) or 'none'}, constants are "
            f"{sorted(CONSTANTS)}", name=name, suggestions=suggestions,
            python_hint=" (declare parameters with parameters=... or fix them by keyword)")

    def _BinOp(self, node, depth):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise UnsafeExpressionError(
                f"operator {type(node.op).__name__} is not allowed; use + - * / **")
        if isinstance(node.op, (ast.Mult, ast.Div)):
            return self._product(node, depth)
        left, right = self.visit(node.left, depth), self.visit(node.right, depth)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return op(left, right)

    def _product(self, node, depth):
        """A chain of ``*`` and ``/`` as ONE sympy product of its factors (powers -1 for divisors).

        Multiplying pair by pair would let sympy distribute a number over a sum as soon as
        the two meet (``2*(x**2 + 1)`` becomes ``2*x**2 + 2``), yet that is exactly how
        sympy prints ``Rational(1, 2) * (x**2 + 1)**-1``: ``1/(2*(x**2 + 1))``. Building the
        whole product at once gives sympy's own tree back, so printed text re-parses to the
        expression it came from; a product that ends as ``number * sum`` is still
        distributed, as sympy does.
        """
        factors = []
        stack = [(node, 1, depth)]
        while stack:
            item, sign, level = stack.pop()
            if isinstance(item, ast.BinOp) and isinstance(item.op, (ast.Mult, ast.Div)):
                if level > 4 * MAX_DEPTH:
                    raise ExpressionError(
                        f"expression nested deeper than {4 * MAX_DEPTH} operations")
                flip = -sign if isinstance(item.op, ast.Div) else sign
                stack.append((item.right, flip, level + 1))  # popped after the left side
                stack.append((item.left, sign, level + 1))
            else:
                factor = self.visit(item, level)
                factors.append(factor if sign > 0 else sp.Pow(factor, -1))
        return sp.Mul(*factors)

    def _UnaryOp(self, node, depth):
        operand = self.visit(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise UnsafeExpressionError(f"unary operator {type(node.op).__name__} is not allowed")

    def _compare(self, node, depth):
        if len(node.ops) != 1 or type(node.ops[0]) not in _CMPOPS:
            raise UnsafeExpressionError("only single comparisons < <= > >= are allowed")
        return _CMPOPS[type(node.ops[0])](
            self.visit(node.left, depth), self.visit(node.comparators[0], depth))

    def _Call(self, node, depth):
        if not isinstance(node.func, ast.Name):
            raise UnsafeExpressionError(
                "only calls of whitelisted functions by plain name are allowed, got "
                f"{ast.get_source_segment(self.text, node.func)!r}")
        name = node.func.id
        if name not in FUNCTIONS and name not in BUILTIN_ACTIVATIONS:
            suggestions = suggest(name, [*FUNCTIONS, *BUILTIN_ACTIVATIONS])
            raise UnknownNameError(
                f"unknown function {name!r}{_did_you_mean(suggestions)}; known functions: "
                f"{', '.join(sorted({*FUNCTIONS, *BUILTIN_ACTIVATIONS}))}", name=name,
                suggestions=suggestions)
        if node.keywords:
            raise UnsafeExpressionError(f"keyword arguments are not allowed (in {name}(...))")
        if name not in FUNCTIONS:
            return self._builtin(name, node, depth)
        arity, fn = FUNCTIONS[name]
        if name == "Piecewise":
            return self._piecewise(node, depth)
        if arity == (2, None):
            if len(node.args) < 2:
                raise ExpressionError(f"{name} takes 2 or more arguments, got {len(node.args)}")
        elif isinstance(arity, tuple) and len(node.args) in arity:
            pass
        elif len(node.args) != arity:
            raise ExpressionError(
                f"{name} takes {arity} argument(s), got {len(node.args)}")
        if name == "where" and not isinstance(node.args[0], ast.Compare):
            raise ExpressionError("the first argument of where(...) must be a comparison")
        args = [self._compare(arg, depth) if name == "where" and i == 0
                else self.visit(arg, depth) for i, arg in enumerate(node.args)]
        return fn(*args)

    def _builtin(self, name, node, depth):
        """A built-in activation applied to its first argument; more arguments give its
        parameters in order (see the module docstring for the rest)."""
        build, defaults = BUILTIN_ACTIVATIONS[name]
        if not 1 <= len(node.args) <= 1 + len(defaults):
            names = "".join(f", {p}" for p in defaults)
            raise ExpressionError(
                f"{name} takes 1 to {1 + len(defaults)} argument(s) ({name}(u{names})), "
                f"got {len(node.args)}")
        args = [self.visit(arg, depth) for arg in node.args]
        params = []
        for i, (param, default) in enumerate(defaults.items()):
            if i + 1 < len(args):
                params.append(args[i + 1])
            elif param in self.params:
                params.append(self.params[param])
            elif default is not None:
                params.append(sp.sympify(default))
            else:
                params.append(sp.Symbol(param, real=True))
        return build(args[0], *params)

    def _piecewise(self, node, depth):
        pairs = []
        for arg in node.args:
            if not (isinstance(arg, ast.Tuple) and len(arg.elts) == 2):
                raise ExpressionError("Piecewise takes (expression, condition) pairs")
            value = self.visit(arg.elts[0], depth)
            cond_node = arg.elts[1]
            if isinstance(cond_node, ast.Constant) and cond_node.value is True:
                cond = sp.true
            elif isinstance(cond_node, ast.Compare):
                cond = self._compare(cond_node, depth)
            else:
                raise UnsafeExpressionError(
                    "Piecewise conditions must be single comparisons or True")
            pairs.append((value, cond))
        if not pairs:
            raise ExpressionError("Piecewise needs at least one (expression, condition) pair")
        return sp.Piecewise(*pairs)


# -- sympy's srepr, read back exactly ------------------------------------------------------
#: Longest srepr text read by :func:`parse_srepr`.
MAX_SREPR_LENGTH = 100_000

#: Constructors :func:`parse_srepr` accepts: the tree of every expression the parser builds.
SREPR_CLASSES = {cls.__name__: cls for cls in (
    sp.Add, sp.Mul, sp.Pow, sp.Piecewise, sp.Max, sp.Min, sp.Abs, sp.sign, sp.Heaviside,
    sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh, sp.atan, sp.asinh,
    sp.erf, sp.erfc, sp.And, sp.Or, sp.Not, sp.StrictLessThan, sp.LessThan,
    sp.StrictGreaterThan, sp.GreaterThan, sp.functions.elementary.piecewise.ExprCondPair)}
_SREPR_NAMES = {"pi": sp.pi, "E": sp.E, "true": sp.true, "false": sp.false}
_ASSUMPTIONS = {"real", "positive", "negative", "nonnegative", "nonpositive", "nonzero",
                "finite", "integer", "commutative", "extended_real"}
_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_srepr(text: str, parameters: Iterable[str] = ()) -> sp.Expr:
    """Read sympy's ``srepr`` text of an activation back into the same expression.

    :func:`parse_expression` reads the printed (``sstr``) form, which is lossy for floats
    (``Float`` with 136 bits prints 32 digits and reads back as a rational). ``srepr``
    spells every node, and this reader rebuilds it node by node, like sympy's own
    ``eval(srepr(e))`` but without ``eval``: the syntax tree is walked against
    :data:`SREPR_CLASSES`, the constants ``pi, E, true, false``, ``Symbol`` (``x`` and the
    declared parameters), ``Integer``, ``Rational`` and ``Float`` (decimal text and
    precision). Anything else raises, so a caller can fall back to the printed form.

    Args:
        text: ``sympy.srepr(expr)`` of an expression in ``x`` and the parameters.
        parameters: names allowed besides ``x``.

    Raises:
        UnsafeExpressionError: syntax or a constructor outside the whitelist.
        UnknownNameError: a symbol that is neither ``x`` nor a declared parameter.
        ExpressionError: not srepr text, too long or too deep.

    Example:
        >>> e = parse_expression("x/(2*(x**2 + 1))")
        >>> parse_srepr(sp.srepr(e)) == e
        True
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected srepr text (str), got {type(text).__name__}")
    if len(text) > MAX_SREPR_LENGTH:
        raise ExpressionError(f"srepr text too long: {len(text)} characters, at most "
                              f"{MAX_SREPR_LENGTH} allowed")
    if not text.isascii():
        raise UnsafeExpressionError("srepr text must be ASCII")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise ExpressionError(f"cannot read srepr text {_clip(text)!r}: {err}") from err
    names = {X.name, *parameters}
    expr = _SreprReader(names).visit(tree.body, 0)
    check_constants(expr)
    return expr


def _clip(text):
    return text if len(text) <= 60 else text[:57] + "..."


class _SreprReader:
    def __init__(self, names):
        self.names = names

    def visit(self, node, depth):
        if depth > 8 * MAX_DEPTH:
            raise ExpressionError(f"srepr nested deeper than {8 * MAX_DEPTH} levels")
        if isinstance(node, ast.Name):
            if node.id in _SREPR_NAMES:
                return _SREPR_NAMES[node.id]
            raise UnsafeExpressionError(f"name {node.id!r} is not allowed in srepr text")
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            raise UnsafeExpressionError(
                f"{type(node).__name__} is not allowed in srepr text; only calls of "
                f"{', '.join(sorted(SREPR_CLASSES))} and number/symbol constructors")
        name = node.func.id
        if name in ("Symbol", "Integer", "Rational", "Float"):
            return self._leaf(name, node)
        if name not in SREPR_CLASSES:
            raise UnsafeExpressionError(f"constructor {name!r} is not allowed in srepr text")
        if node.keywords:
            raise UnsafeExpressionError(f"keyword arguments are not allowed (in {name}(...))")
        args = [self.visit(arg, depth + 1) for arg in node.args]
        if name == "Pow" and len(args) == 2:
            _check_power(*args)
        try:
            return SREPR_CLASSES[name](*args)
        except (TypeError, ValueError) as err:
            raise ExpressionError(f"cannot build {name} from srepr text: {err}") from err

    def _leaf(self, name, node):
        args = [_literal(arg) for arg in node.args]
        keywords = {kw.arg: _literal(kw.value) for kw in node.keywords}
        if name == "Symbol":
            if len(args) != 1 or not isinstance(args[0], str):
                raise ExpressionError("Symbol takes one name")
            if args[0] not in self.names:
                raise UnknownNameError(
                    f"unknown symbol {args[0]!r} in srepr text; expected x or one of the "
                    f"parameters {sorted(self.names - {X.name}) or 'none'}")
            if any(k not in _ASSUMPTIONS or not isinstance(v, bool) for k, v in keywords.items()):
                raise UnsafeExpressionError(f"Symbol assumptions {keywords} are not allowed")
            return sp.Symbol(args[0], **keywords)
        if name == "Float":
            precision = keywords.pop("precision", 53)
            if (keywords or len(args) != 1 or not isinstance(args[0], str)
                    or not _DECIMAL.fullmatch(args[0]) or isinstance(precision, bool)
                    or not isinstance(precision, int) or not 1 <= precision <= 10_000):
                raise ExpressionError("Float takes decimal text and an integer precision")
            return sp.Float(args[0], precision=precision)
        if keywords or not args or len(args) > (1 if name == "Integer" else 2) or any(
                isinstance(a, bool) or not isinstance(a, int) for a in args):
            raise ExpressionError(f"{name} takes integer arguments")
        if name == "Rational" and len(args) == 2 and args[1] == 0:
            raise ExpressionError("Rational with a zero denominator")
        return sp.Integer(args[0]) if name == "Integer" else sp.Rational(*args)


def _literal(node):
    """An int, str or bool constant, with an optional leading minus on ints."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnsafeExpressionError("only integers may be negated in srepr text")
        return -value
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, str, bool)):
        return node.value
    raise UnsafeExpressionError(f"{type(node).__name__} is not allowed as a constructor "
                                "argument in srepr text")
