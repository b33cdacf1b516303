"""Transform records: the JSON round trip gives back the same activation, bit for bit."""

import json

import pytest
import sympy as sp

import kernelshape as ks
from kernelshape.parsing import X
from kernelshape.transforms.result import Transform

PARAMS = {"input_scale": 1.25, "input_shift": -0.5, "output_shift": 0.125, "output_scale": 2.0}


def _record(base):
    # a complete DKS document (every target the method states); from_dict evaluates its
    # conditions afresh, so no residuals need to be stored
    targets = {"zeta": 1.5, "q_slope": 1.0, "xi": 1.5 ** (1 / 3)}
    return Transform("dks", base, dict(PARAMS), targets, "mlp(depth=3)", ())


def _through_json(t):
    return Transform.from_dict(json.loads(json.dumps(t.to_dict())))


@pytest.mark.parametrize("name", ks.builtins())
def test_builtins_come_back_equal(name):
    # selu's 136-bit Float constants print 32 digits: only the stored srepr keeps them
    base = ks.activation(name, **({"negative_slope": 0.2} if name == "leaky_relu" else {}))
    back = _through_json(_record(base))
    assert back.base == base and back.base.values == base.values
    assert back.params == PARAMS


@pytest.mark.parametrize("spec", [
    "0.5/(1 + x**2)",                       # the fuzz find: 1/(2*(x**2 + 1)) re-distributed
    "max(x, max(0.5*x, 0.1))",
    sp.Float(0.5) * sp.tanh(X) + sp.Float("0.1", 40) * X,   # floats a text form cannot keep
    sp.Piecewise((X / 3, X < sp.Rational(-1, 7)), (sp.erf(X), True)),
])
def test_expressions_come_back_as_the_same_tree(spec):
    base = ks.activation(spec)
    back = _through_json(_record(base))
    assert sp.srepr(back.base.expr) == sp.srepr(base.expr)
    assert back.base == base and hash(back.base) == hash(base)   # same numba module key


def test_free_parameters_and_values_survive():
    base = ks.activation("x*tanh(beta*x)/(2*(1 + x**2))", beta=1.5)
    back = _through_json(_record(base))
    assert back.base == base and back.base.values == {"beta": 1.5}


def test_dicts_without_srepr_still_read():
    # records written before the srepr field: the printed text is read
    data = _record(ks.activation("tanh")).to_dict()
    del data["base"]["srepr"]
    assert Transform.from_dict(data).base == ks.activation("tanh")


def test_unreadable_or_hostile_srepr_falls_back_to_the_text(tmp_path):
    marker = tmp_path / "ran"
    data = _record(ks.activation("softsign")).to_dict()
    data["base"]["srepr"] = f"__import__('os').system('touch {marker}')"
    assert Transform.from_dict(data).base == ks.activation("softsign")
    assert not marker.exists()
