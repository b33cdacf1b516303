"""The safe expression parser: what it accepts, and that hostile text never executes."""

import sympy as sp
import pytest

from kernelshape.errors import (
    ExpressionError,
    KernelShapeError,
    UnknownNameError,
    UnsafeExpressionError,
)
from kernelshape.parsing import X, parse_expression

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
