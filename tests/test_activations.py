"""Activations: built-ins match dks's definitions, parameters, kinks, evaluation, bad input."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

import kernelshape as ks
from kernelshape.activations import DKS_NAMES
from kernelshape.errors import (
    ActivationError,
    DomainError,
    ExpressionError,
    FreeParameterError,
    KernelShapeError,
    NotRealError,
    UnknownNameError,
)
from kernelshape.parsing import X

XS = np.array([-7.5, -2.0, -0.6, -1e-3, 0.0, 1e-3, 0.4, 1.3, 3.0, 8.25])


def test_builtins_cover_dks_and_extras():
    names = ks.builtins()
    assert set(DKS_NAMES) <= set(names)
    assert len(DKS_NAMES) == 16
    assert {"mish", "sin", "cos", "gaussian", "identity"} <= set(names)


@pytest.mark.parametrize("name", DKS_NAMES)
def test_builtins_match_dks_definitions(name):
    # Reference: dks 0.1.2, dks.base.activation_getter (autograd numpy), float64. Same
    # functions; dks's own float64 rounding (e.g. log(1 + exp(-|x|)) without log1p) differs
    # from ours by up to ~1e-13 relative, so that is the tolerance.
    getter = pytest.importorskip("dks.base.activation_getter")
    ref = getter.get_activation_function(name)
    kwargs = {"negative_slope": 0.01} if name == "leaky_relu" else {}
    phi = ks.activation(name, **kwargs)
    np.testing.assert_allclose(phi(XS), np.asarray(ref(XS), dtype=float), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ks.builtins())
def test_float64_evaluation_matches_mpmath(name):
    kwargs = {"negative_slope": 0.2} if name == "leaky_relu" else {}
    phi = ks.activation(name, **kwargs)
    with mpmath.workdps(30):
        ref = np.array([float(phi.mp(x)) for x in XS])
    # Far tails (gelu at x = -7.5 is ~4e-18) are limited by float64 conditioning of the
    # argument (|u| ~ 21 for gelu), hence 5e-14 rather than a few ulps.
    np.testing.assert_allclose(phi(XS), ref, rtol=5e-14, atol=1e-300)


def test_leaky_relu_slope_free_until_fixed():
    phi = ks.activation("leaky_relu")
    assert phi.free == ("negative_slope",)
    with pytest.raises(FreeParameterError, match="negative_slope"):
        phi(1.0)
    fixed = phi.fix(negative_slope=0.2)
    assert fixed.free == ()
    assert fixed(-1.0) == pytest.approx(-0.2, rel=1e-15)
    assert ks.activation("leaky_relu", negative_slope=0.2) == fixed


def test_elu_alpha_defaults_to_one_and_can_be_set_or_freed():
    assert ks.activation("elu").values == {"alpha": 1}
    assert ks.activation("elu", alpha=2.0)(-1.0) == pytest.approx(2 * (math.exp(-1) - 1))
    assert ks.activation("elu", alpha=None).free == ("alpha",)


def test_text_parameters_by_keyword():
    phi = ks.activation("x*tanh(a*x)", a=0.5)
    assert phi(2.0) == pytest.approx(2 * math.tanh(1.0), rel=1e-15)
    free = ks.activation("x*tanh(a*x)", parameters=["a"])
    assert free.free == ("a",)


def test_sympy_expression_in_any_single_symbol():
    t = sp.Symbol("t")
    phi = ks.activation(sp.tanh(t) + t / 2)
    assert phi.expr == sp.tanh(X) + X / 2


@pytest.mark.parametrize("name, kinks", [
    ("relu", [(0.0, 1)]),
    ("leaky_relu", [(0.0, 1)]),
    ("elu", [(0.0, 2)]),
    ("selu", [(0.0, 1)]),
    ("softsign", [(0.0, 2)]),
    ("tanh", []),
    ("gelu", []),
])
def test_kinks_are_located_symbolically(name, kinks):
    kwargs = {"negative_slope": 0.2} if name == "leaky_relu" else {}
    phi = ks.activation(name, **kwargs)
    assert [(k.location, k.order) for k in phi.kinks] == kinks


def test_kinks_of_user_expressions():
    phi = ks.activation("max(x - 1, 0) + abs(x + 2)")
    assert [(k.location, k.order) for k in phi.kinks] == [(-2.0, 1), (1.0, 1)]
    jump = ks.activation("heaviside(x - 0.5)")
    assert [(k.location, k.order) for k in jump.kinks] == [(0.5, 0)]
    assert jump.kinks[0].jumps[0] == pytest.approx(1.0)


def test_affine_transform_shares_kernels_and_maps_kinks():
    relu = ks.activation("relu")
    t = relu.affine(2.0, -0.5, 0.1, 3.0)
    assert t.jit is relu.jit
    assert [(k.location, k.order) for k in t.kinks] == [(0.25, 1)]
    assert t.kinks[0].jumps[1] == pytest.approx(6.0)
    np.testing.assert_allclose(t(np.array([0.0, 1.0])), [0.3, 4.8], rtol=1e-15)
    assert t(1.0, order=1) == pytest.approx(6.0)
    flipped = relu.affine(-1.0)
    assert flipped(-2.0) == 2.0 and flipped(2.0) == 0.0
    composed = ks.activation("tanh").affine(2.0, 0.5).affine(3.0, 1.0, 0.2, 4.0)
    assert composed(0.3) == pytest.approx(4 * (math.tanh(2 * (3 * 0.3 + 1) + 0.5) + 0.2))


@pytest.mark.parametrize("spec, exc, fragment", [
    ("log(x)", NotRealError, "complex"),
    ("sqrt(x)", NotRealError, "complex"),
    ("a*b*x", UnknownNameError, "'a'"),
    ("nope", ActivationError, "unknown") if False else ("nope(x)", UnknownNameError, "nope"),
    ("1/x", NotRealError, "singular"),
    ("tan(x)", NotRealError, "singular"),
    ("3", ExpressionError, "does not depend on x"),
])
def test_bad_activation_text(spec, exc, fragment):
    with pytest.raises(exc, match=fragment):
        ks.activation(spec)


def test_two_unknown_symbols_in_a_sympy_expression():
    a, b = sp.symbols("a b")
    with pytest.raises(ExpressionError, match="cannot tell the variable"):
        ks.activation(a * sp.tanh(b))


def test_bad_parameters():
    with pytest.raises(ActivationError, match="negative_slop"):
        ks.activation("leaky_relu", negative_slop=0.1)
    with pytest.raises(ActivationError, match="finite"):
        ks.activation("leaky_relu", negative_slope=float("nan"))
    with pytest.raises(ActivationError, match="real number"):
        ks.activation("leaky_relu", negative_slope="0.1")
    with pytest.raises(ActivationError, match="nonzero"):
        ks.activation("tanh").affine(0.0)


def test_bad_order_and_spec_type():
    with pytest.raises(DomainError, match="order"):
        ks.activation("tanh")(1.0, order=3)
    with pytest.raises(KernelShapeError, match="expected"):
        ks.activation(3.5)


def test_repr_and_latex():
    phi = ks.activation("tanh")
    assert "tanh" in repr(phi)
    assert phi._repr_latex_().startswith("$\\phi(x) = ")
