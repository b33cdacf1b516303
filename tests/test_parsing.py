"""The safe expression parser: what it accepts, and that hostile text never executes."""

import pytest
import sympy as sp

from kernelshape.errors import (
    ExpressionError,
    KernelShapeError,
    UnknownNameError,
    UnsafeExpressionError,
)
from kernelshape.parsing import X, parse_expression, parse_srepr

A = sp.Symbol("a", real=True)


@pytest.mark.parametrize("text, expected", [
    ("x", X),
    ("tanh(x)", sp.tanh(X)),
    ("x*tanh(log(1 + exp(x)))", X * sp.tanh(sp.log(1 + sp.exp(X)))),
    ("x*tanh(softplus(x))", X * sp.tanh(sp.log(1 + sp.exp(X)))),
    ("relu(x) - 0.5", sp.Max(0, X) - sp.Rational(1, 2)),
    ("max(x, 0.2*x)", sp.Max(X, X / 5)),
    ("sigmoid(x)", 1 / (1 + sp.exp(-X))),
    ("-x**2 + 3/4", -X**2 + sp.Rational(3, 4)),
    ("where(x > 0, x, exp(x) - 1)", sp.Piecewise((X, X > 0), (sp.exp(X) - 1, True))),
    ("erf(x/sqrt(2))*pi + E", sp.erf(X / sp.sqrt(2)) * sp.pi + sp.E),
    ("Piecewise((x/5, x < 0), (x, True))", sp.Piecewise((X / 5, X < 0), (X, True))),
    ("0.044715*x", sp.Rational(44715, 10**6) * X),
])
def test_accepts_the_vocabulary(text, expected):
    assert sp.simplify(parse_expression(text) - expected) == 0


def test_declared_parameters_become_real_symbols():
    expr = parse_expression("x*tanh(a*x)", ["a"])
    assert expr == X * sp.tanh(A * X)


@pytest.mark.parametrize("text, exc, fragment", [
    ("__import__('os').system('true')", UnsafeExpressionError, "__import__"),
    ("__import__('os')", UnknownNameError, "__import__"),
    ("x.__class__", UnsafeExpressionError, "Attribute"),
    ("(lambda: 1)()", UnsafeExpressionError, "lambda"),
    ("lambda: 1", UnsafeExpressionError, "Lambda"),
    ("tanh(x)[0]", UnsafeExpressionError, "Subscript"),
    ("open('f')", UnknownNameError, "open"),
    ("exec('1')", UnknownNameError, "exec"),
    ("tanh(x, y=1)", UnsafeExpressionError, "keyword"),
    ("'x'", UnsafeExpressionError, "number"),
    ("x if x > 0 else 0", UnsafeExpressionError, "IfExp"),
    ("[x for x in ()]", UnsafeExpressionError, "ListComp"),
    ("y*x", UnknownNameError, "'y'"),
    ("foo(x)", UnknownNameError, "foo"),
    ("x ^ 2", UnsafeExpressionError, "BitXor"),
    ("import os", ExpressionError, "cannot parse"),
    ("x; 1", ExpressionError, "cannot parse"),
    ("tanh(x", ExpressionError, "cannot parse"),
    ("\uff58", UnsafeExpressionError, "ASCII"),  # fullwidth x, NFKC-normalises to x
    ("tanh", ExpressionError, "without calling"),
    ("x > 0", UnsafeExpressionError, "Compare"),
    ("tanh(x, x)", ExpressionError, "argument"),
    ("x**100000", ExpressionError, "exponent"),
])
def test_rejects_hostile_or_unknown_text(text, exc, fragment):
    with pytest.raises(exc) as info:
        parse_expression(text)
    assert isinstance(info.value, KernelShapeError)
    assert fragment in str(info.value)


def test_rejects_deep_nesting_quickly():
    with pytest.raises(ExpressionError, match="deeper"):
        parse_expression("(" * 500 + "x" + ")" * 500)
    with pytest.raises(ExpressionError, match="deeper"):
        parse_expression("tanh(" * 100 + "x" + ")" * 100)


def test_rejects_very_long_text():
    with pytest.raises(ExpressionError, match="too long"):
        parse_expression("+".join(["x"] * 5000))


def test_rejects_non_string():
    with pytest.raises(ExpressionError, match="str"):
        parse_expression(42)


# -- printed text reads back to the same tree (Transform JSON stores sstr and srepr) ----------
# Each expression below is what the parser builds from some activation text; sympy prints
# them with a number multiplying a sum in a denominator or numerator (``1/(2*(x**2 + 1))``),
# which read pair by pair would distribute (``1/(2*x**2 + 2)``): same function, new tree.
ROUND_TRIP_TEXTS = [
    "0.5/(1 + x**2)",              # found by test_fuzz (long profile): Mul(1/2, 1/(x**2+1))
    "x*0.5/(1 + x**2)",
    "1.5/(1 + erf(x)**2) - heaviside(x)",
    "(x + 2)*2/(x + 1)",           # Mul(2, x + 2, 1/(x + 1)): number and sum in the numerator
    "where(x < 1.5, x/(1 + x**2), 1.5/(1 + x**2))",
    "x/5/(1 + (x/(1 + x**2))**2)",
    "-(0.5)/(1 + a**2)*tanh(x)",
]


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_printed_text_reads_back_to_the_same_tree(text):
    expr = parse_expression(text, ["a"])
    assert sp.srepr(parse_expression(sp.sstr(expr), ["a"])) == sp.srepr(expr)


@pytest.mark.parametrize("text, expected", [
    ("2*(x + 1)", 2 * X + 2),                          # sympy's own product: distributed
    ("3*(x + 1)/2", sp.Rational(3, 2) * X + sp.Rational(3, 2)),
    ("x/2/3", X / 6),
    ("x/(2/x)", X**2 / 2),
    # the tree sympy prints as this text (Python's 1/(2*(X + 1)) would give 1/(2*X + 2))
    ("1/(2*(x + 1))", sp.Mul(sp.Rational(1, 2), sp.Pow(X + 1, -1))),
])
def test_products_are_sympy_products(text, expected):
    # a chain of * and / is one sympy Mul of its factors: srepr equal, not just equivalent
    assert sp.srepr(parse_expression(text)) == sp.srepr(expected)


def test_long_products_are_still_bounded():
    with pytest.raises(ExpressionError, match="deeper"):
        parse_expression("*".join(["x"] * 400))


@pytest.mark.parametrize("expr", [
    sp.Float("1.0507009873554804934193349852946", 32) * sp.Piecewise(
        (sp.Float(1.6732632423543772848170429916717, 32) * (sp.exp(X) - 1), X < 0), (X, True)),
    sp.Float(0.5) * sp.tanh(X) + sp.Rational(1, 3) * sp.sqrt(2) * X,
    sp.Rational(1, 2) / (1 + X**2),
    sp.Piecewise((A * X, (X > 0) & (X < 1)), (sp.Heaviside(X, 0), True)),
    sp.Max(0, X) - sp.Min(X, sp.pi * A) + sp.erfc(X) * sp.E + sp.sign(X) + sp.Abs(X),
])
def test_srepr_reads_back_exactly(expr):
    # sstr loses float precision (a 136-bit Float prints 32 digits and reads back rational);
    # srepr spells every node
    assert sp.srepr(parse_srepr(sp.srepr(expr), ["a"])) == sp.srepr(expr)


@pytest.mark.parametrize("text, exc, fragment", [
    ("__import__('os')", UnsafeExpressionError, "__import__"),
    ("Add(Symbol('x').func, Integer(1))", UnsafeExpressionError, "Attribute"),
    ("Function('f')(Symbol('x'))", UnsafeExpressionError, "Call"),
    ("Symbol('y')", UnknownNameError, "'y'"),
    ("Symbol('x', __class__=True)", UnsafeExpressionError, "__class__"),
    ("Float('1e5; import os', precision=53)", ExpressionError, "decimal"),
    ("Integer(1.5)", UnsafeExpressionError, "Constant"),
    ("Rational(1, 0)", ExpressionError, "zero"),
    ("Pow(Integer(10), Integer(10000000))", ExpressionError, "exponent"),
    ("sympify('x')", UnsafeExpressionError, "sympify"),
    ("oo", UnsafeExpressionError, "'oo'"),
    ("Add(" * 300 + "Symbol('x')" + ")" * 300, ExpressionError, ""),
])
def test_srepr_reader_rejects_everything_else(text, exc, fragment):
    with pytest.raises(exc) as info:
        parse_srepr(text)
    assert isinstance(info.value, KernelShapeError)
    assert fragment in str(info.value)
