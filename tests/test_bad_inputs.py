"""A catalogue of named bad inputs across the public API (issue 7; issues 2, 3, 4, 6 "Bad input").

Every case states the call, the exception type the API contract promises (a
:class:`~kernelshape.errors.KernelShapeError` subclass, also the matching built-in error) and
fragments of the message that name the offending value, so a user can see what was wrong
without reading a traceback. Command-line cases check exit status 2, no traceback and one
stderr line naming the value (issue 6).

Only cheap calls live here (argument checks happen before any quadrature or compilation),
except the few solver cases whose whole point is the solver's verdict.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import pytest
import sympy as sp

import kernelshape as ks
from kernelshape import errors as E
from kernelshape.cli import main
from kernelshape.networks import (
    as_network,
    chain,
    linear,
    mlp,
    nonlinear,
    normalized_sum,
    parallel,
    residual,
    resnet,
)
from kernelshape.transforms.dks import dks
from kernelshape.transforms.result import Transform
from kernelshape.transforms.tat import tat


@dataclasses.dataclass(frozen=True)
class Bad:
    """One bad input: ``call()`` must raise ``error`` with every ``names`` fragment in its message."""

    id: str
    call: Callable[[], object]
    error: type[BaseException]
    names: tuple[str, ...]
    bug: str | None = None   # a known library bug: the case is xfail(strict=True) until fixed


def _tanh():
    return ks.activation("tanh")


def _transform():
    # A hand-made record (no solve needed): codegen only reads params and the base.
    return Transform("dks", ks.activation("tanh"), {"input_scale": 0.5, "input_shift": 0.25,
                     "output_shift": -0.2, "output_scale": 2.0}, {"zeta": 1.5}, "mlp(depth=5)", ())


ACTIVATIONS = [
    Bad("unknown-function-name", lambda: ks.activation("tanhh(x)"), E.UnknownNameError,
        ("tanhh",)),
    Bad("unknown-bare-name", lambda: ks.activation("tanhh"), E.UnknownNameError, ("tanhh",)),
    Bad("two-unknown-symbols-text", lambda: ks.activation("a*x + b"), E.UnknownNameError,
        ("'a'",)),
    Bad("two-free-symbols-sympy", lambda: ks.activation(sp.Symbol("u") * sp.Symbol("v")),
        E.ExpressionError, ("u", "v")),
    Bad("log-complex-on-negatives", lambda: ks.activation("log(x)"), E.NotRealError,
        ("log(x)",)),
    Bad("sqrt-complex-on-negatives", lambda: ks.activation("sqrt(x)"), E.NotRealError,
        ("sqrt(x)",)),
    Bad("pole-at-zero", lambda: ks.activation("1/x"), E.NotRealError, ("1/x", "0")),
    Bad("tan-poles", lambda: ks.activation("tan(x)"), E.NotRealError, ("tan(x)",)),
    Bad("constant-expression", lambda: ks.activation("3"), E.ExpressionError, ("3", "x")),
    Bad("empty-text", lambda: ks.activation(""), E.ExpressionError, ("''",)),
    Bad("syntax-error", lambda: ks.activation("x +* 2"), E.ExpressionError, ("x +* 2",)),
    Bad("spec-of-wrong-type", lambda: ks.activation(3.5), E.ExpressionError, ("float",)),
    Bad("negative-slope-nan", lambda: ks.activation("leaky_relu", negative_slope=math.nan),
        E.ActivationError, ("negative_slope", "nan")),
    Bad("negative-slope-text", lambda: ks.activation("leaky_relu", negative_slope="0.2"),
        E.ActivationError, ("negative_slope", "'0.2'")),
    Bad("unknown-builtin-parameter", lambda: ks.activation("leaky_relu", foo=1.0),
        E.ActivationError, ("foo",)),
    Bad("parameter-not-in-text", lambda: ks.activation("tanh(x)", beta=2.0),
        E.ActivationError, ("beta",)),
    Bad("affine-zero-scale", lambda: _tanh().affine(0.0), E.ActivationError,
        ("input_scale", "0.0")),
    Bad("affine-infinite-shift", lambda: _tanh().affine(1.0, math.inf), E.ActivationError,
        ("input_shift", "inf")),
    Bad("evaluate-order-5", lambda: _tanh()(0.5, order=5), E.DomainError, ("5",)),
]

MAPS = [
    Bad("infinite-second-moment", lambda: ks.activation("exp(x**2)").q_map(1.0),
        E.InfiniteMomentError, ("exp(x**2)",)),
    Bad("c-above-one", lambda: _tanh().c_map(1.5), E.DomainError, ("1.5",)),
    Bad("c-below-minus-one", lambda: _tanh().c_map(-1.0 - 1e-6), E.DomainError,
        ("-1.000001",)),
    Bad("c-nan", lambda: _tanh().c_map(math.nan), E.DomainError, ("nan",)),
    Bad("c-array-with-nan", lambda: _tanh().c_map(np.array([0.1, 0.2, np.nan])),
        E.DomainError, ("nan", "[2]")),
    Bad("c-complex", lambda: _tanh().c_map(0.5 + 1j), E.DomainError, ("0.5+1j",)),
    Bad("c-text", lambda: _tanh().c_map("abc"), E.DomainError, ("'abc'",)),
    Bad("c-none", lambda: _tanh().c_map(None), E.DomainError, ("None",)),
    Bad("q-zero", lambda: _tanh().q_map(0.0), E.DomainError, ("q", "0.0")),
    Bad("q-negative", lambda: _tanh().q_map(-1.0), E.DomainError, ("q", "-1.0")),
    Bad("q-infinite", lambda: _tanh().q_map(math.inf), E.DomainError, ("q", "inf")),
    Bad("q-array-for-c-map", lambda: _tanh().c_map(0.5, q=[1.0, 2.0]), E.DomainError,
        ("q", "(2,)")),
    Bad("order-3", lambda: _tanh().q_map(1.0, order=3), E.DomainError, ("order", "3")),
    Bad("order-float", lambda: _tanh().c_map(0.5, order=1.0), E.DomainError,
        ("order", "1.0")),
    Bad("digits-zero", lambda: _tanh().q_map(1.0, digits=0), E.PrecisionError,
        ("digits", "0")),
    Bad("digits-fractional", lambda: _tanh().c_map(0.5, digits=2.5), E.PrecisionError,
        ("digits", "2.5")),
    Bad("free-parameter-in-map", lambda: ks.activation("leaky_relu").q_map(1.0),
        E.FreeParameterError, ("negative_slope",)),
]

NETWORKS = [
    Bad("mlp-depth-zero", lambda: mlp(0), E.NetworkError, ("depth", "0")),
    Bad("mlp-depth-fractional", lambda: mlp(2.5), E.NetworkError, ("2.5",)),
    Bad("mlp-depth-bool", lambda: mlp(True), E.NetworkError, ("True",)),
    Bad("resnet-unknown-depth", lambda: resnet(19), E.NetworkError, ("19",)),
    Bad("resnet-shortcut-above-one", lambda: resnet(50, shortcut_weight=1.5), E.NetworkError,
        ("shortcut_weight", "1.5")),
    Bad("resnet-shortcut-nan", lambda: resnet(50, shortcut_weight=math.nan), E.NetworkError,
        ("shortcut_weight", "nan")),
    Bad("resnet-unknown-version", lambda: resnet(50, version="v3"), E.NetworkError,
        ("'v3'",)),
    Bad("weights-not-normalized", lambda: normalized_sum([linear(), nonlinear()], [0.5, 0.5]),
        E.NetworkError, ("0.5",)),
    Bad("weight-nan", lambda: normalized_sum([linear(), nonlinear()], [math.nan, 1.0]),
        E.NetworkError, ("nan",)),
    Bad("weights-count-mismatch", lambda: normalized_sum([linear(), nonlinear()], [1.0]),
        E.NetworkError, ("2", "1")),
    Bad("negative-channel-fraction", lambda: parallel([linear(), nonlinear()], [-0.5, 1.5]),
        E.NetworkError, ("-0.5",)),
    Bad("residual-shortcut-negative", lambda: residual(nonlinear(), -0.1), E.NetworkError,
        ("-0.1",)),
    Bad("chain-of-text", lambda: chain("relu"), E.NetworkError, ("'relu'",)),
    Bad("network-of-int", lambda: as_network(42), E.NetworkError, ("int",)),
]

TRANSFORMS = [
    Bad("dks-zeta-one", lambda: dks(_tanh(), network=mlp(5), zeta=1.0), E.TransformError,
        ("zeta", "1.0")),
    Bad("dks-zeta-nan", lambda: dks(_tanh(), network=mlp(5), zeta=math.nan), E.TransformError,
        ("zeta", "nan")),
    Bad("dks-q-slope-negative", lambda: dks(_tanh(), network=mlp(5), q_slope=-1.0),
        E.TransformError, ("q_slope", "-1.0")),
    Bad("dks-identity", lambda: dks("identity", network=mlp(5)), E.UnreachableTargetError,
        ("linear",)),
    Bad("dks-affine-linear", lambda: dks("2*x + 1", network=mlp(5)),
        E.UnreachableTargetError, ("2*x + 1",)),
    Bad("dks-no-network", lambda: dks(_tanh(), network=None), E.TransformError, ("network",)),
    Bad("dks-network-of-int", lambda: dks(_tanh(), network=42), E.NetworkError, ("int",)),
    Bad("dks-free-elu-alpha", lambda: dks(ks.activation("elu", alpha=None), network=mlp(5)),
        E.FreeParameterError, ("alpha",)),
    Bad("dks-digits-too-few", lambda: dks(_tanh(), network=mlp(5), digits=5),
        E.PrecisionError, ("digits", "5")),
    Bad("dks-jump-sign", lambda: dks("sign(x)", network=mlp(5)), E.TransformError,
        ("sign(x)",)),
    Bad("dks-leaky-slope-fixed", lambda: dks(ks.activation("leaky_relu", negative_slope=0.2),
                                             network=mlp(5)), E.TransformError, ("0.2",)),
    Bad("dks-start-zero-scale", lambda: dks(_tanh(), network=mlp(5), start=(0.0, 1.0)),
        E.TransformError, ("start", "nonzero")),
    Bad("dks-start-not-a-pair", lambda: dks(_tanh(), network=mlp(5), start=(1.0,)),
        E.TransformError, ("start", "(1.0,)")),
    Bad("dks-start-nan-shift", lambda: dks(_tanh(), network=mlp(5), start=(1.0, math.nan)),
        E.TransformError, ("start input_shift", "nan")),
    Bad("dks-start-relu", lambda: dks("relu", network=mlp(5), start=(1.0, 1.0)),
        E.TransformError, ("start", "ReLU")),
    Bad("tat-start-not-a-triple", lambda: tat(_tanh(), network=mlp(5), start=(1.0, 0.0)),
        E.TransformError, ("start", "triple")),
    Bad("tat-start-zero-scale", lambda: tat(_tanh(), network=mlp(5), start=(0, 1, 0)),
        E.TransformError, ("start", "nonzero")),
    Bad("tat-start-leaky", lambda: tat("leaky_relu", network=mlp(5), start=(1, 0, 0)),
        E.TransformError, ("start", "leaky ReLU")),
    Bad("dks-linear-network", lambda: dks(_tanh(), network=chain(linear(), linear())),
        E.UnreachableTargetError, ("zeta", "1.5")),
    Bad("tat-tau-zero", lambda: tat(_tanh(), network=mlp(5), tau=0.0), E.TransformError,
        ("tau", "0.0")),
    Bad("tat-tau-negative", lambda: tat(_tanh(), network=mlp(5), tau=-0.3), E.TransformError,
        ("tau", "-0.3")),
    Bad("tat-eta-one", lambda: tat("leaky_relu", network=mlp(5), eta=1.0), E.TransformError,
        ("eta", "1.0")),
    Bad("tat-eta-unreachable-depth-10", lambda: tat("leaky_relu", network=mlp(10), eta=0.9),
        E.UnreachableTargetError, ("eta", "0.9")),
    Bad("tat-relu", lambda: tat("relu", network=mlp(5)), E.TransformError, ("leaky",)),
    Bad("tat-kinked-abs", lambda: tat("abs(x)", network=mlp(5)), E.UnsupportedError,
        ("Abs(x)",)),
    Bad("transform-from-empty-dict", lambda: Transform.from_dict({}), E.TransformError,
        ("base",)),
]

CODEGEN = [
    Bad("emit-unknown-target", lambda: ks_codegen().emit(_transform(), "cuda"),
        E.CodegenError, ("'cuda'", "numpy")),
    Bad("emit-name-with-space", lambda: ks_codegen().emit(_transform(), "numpy",
                                                           name="my act"),
        E.CodegenError, ("'my act'",)),
    Bad("emit-name-keyword", lambda: ks_codegen().emit(_transform(), "numpy", name="import"),
        E.CodegenError, ("'import'",)),
    Bad("emit-name-reserved", lambda: ks_codegen().emit(_transform(), "numpy", name="np"),
        E.CodegenError, ("'np'",)),
    Bad("emit-name-not-text", lambda: ks_codegen().emit(_transform(), "torch", name=3),
        E.CodegenError, ("3",)),
    Bad("emit-an-activation", lambda: ks_codegen().emit(_tanh(), "jax"), E.CodegenError,
        ("Activation",)),
]


def ks_codegen():
    from kernelshape import codegen
    return codegen


CATALOGUE = ACTIVATIONS + MAPS + NETWORKS + TRANSFORMS + CODEGEN


def test_catalogue_is_large_and_names_are_unique():
    ids = [case.id for case in CATALOGUE] + [case[0] for case in CLI]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 30


def _params(cases):
    return [pytest.param(case, id=case.id, marks=[pytest.mark.xfail(strict=True, reason=case.bug)]
                         if case.bug else []) for case in cases]


@pytest.mark.parametrize("case", _params(CATALOGUE))
def test_bad_input_raises_named_error(case):
    with pytest.raises(case.error) as info:
        case.call()
    assert isinstance(info.value, E.KernelShapeError)
    message = str(info.value)
    for fragment in case.names:
        assert fragment in message, f"{fragment!r} not named in: {message}"


# -- command line: exit 2, no traceback, one stderr line that names the value -----------------
CLI = [
    ("cli-maps-c-outside", ["maps", "tanh", "--c", "2"], ("2.0",)),
    ("cli-maps-q-negative", ["maps", "tanh", "--q", "-1"], ("-1.0",)),
    ("cli-maps-unknown-function", ["maps", "foo(x)"], ("foo",)),
    ("cli-maps-unsafe-text", ["maps", "__import__('os').getcwd()"], ("__import__",)),
    ("cli-maps-complex-activation", ["maps", "log(x)"], ("log(x)",)),
    ("cli-maps-digits-zero", ["maps", "tanh", "--digits", "0"], ("digits", "0")),
    ("cli-maps-param-not-number", ["maps", "leaky_relu", "--param", "negative_slope=abc"],
     ("'abc'",)),
    ("cli-maps-param-without-value", ["maps", "leaky_relu", "--param", "negative_slope"],
     ("'negative_slope'",)),
    ("cli-maps-free-parameter", ["maps", "leaky_relu"], ("negative_slope",)),
    ("cli-solve-zeta-below-one", ["solve", "tanh", "--method", "dks", "--zeta", "0.5"],
     ("zeta", "0.5")),
    ("cli-solve-mlp-depth-zero", ["solve", "tanh", "--mlp", "0"], ("depth", "0")),
    ("cli-solve-identity", ["solve", "identity", "--method", "dks", "--mlp", "5"],
     ("linear",)),
    ("cli-solve-tat-relu", ["solve", "relu", "--method", "tat", "--mlp", "5"], ("leaky",)),
]


@pytest.mark.parametrize("argv, names", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_user_error_is_one_line_exit_2(argv, names, capsys):
    try:
        status = main(argv)
    except SystemExit as exc:   # argparse-level errors
        status = exc.code
    _, err = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in names:
        assert fragment in lines[0], f"{fragment!r} not named in: {lines[0]}"


@pytest.mark.parametrize("argv, fragment", [
    (["maps", "tanh", "--order", "5"], "5"),        # argparse choices
    (["maps", "tanh", "--c", "half"], "half"),     # argparse type=float
    (["solve", "tanh", "--method", "magic"], "magic"),
], ids=["cli-order-choice", "cli-c-not-number", "cli-unknown-method"])
def test_cli_argument_errors_exit_2_naming_the_value(argv, fragment, capsys):
    # argparse prints its usage line before the error line; the error line names the value.
    with pytest.raises(SystemExit) as info:
        main(argv)
    _, err = capsys.readouterr()
    assert info.value.code == 2
    assert "Traceback" not in err
    assert fragment in err.strip().splitlines()[-1]
