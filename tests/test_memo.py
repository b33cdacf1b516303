"""Shared, read-only activations and networks (issue 17): ``activation()``, ``mlp()`` and
``resnet()`` return one object per canonical input, which nothing can change."""

import pickle

import pytest
import sympy as sp

import kernelshape as ks
from kernelshape import activations
from kernelshape._memo import Memo
from kernelshape.errors import ActivationError, ImmutableError, UnknownNameError


@pytest.mark.parametrize("spec, kwargs", [
    ("tanh", {}),
    ("x*sigmoid(x)", {}),
    ("leaky_relu", {"negative_slope": 0.2}),
    ("a*tanh(x)", {"parameters": ("a",), "a": 2.0}),
    ("elu", {"name": "my elu"}),
])
def test_same_input_gives_the_same_object(spec, kwargs):
    assert ks.activation(spec, **kwargs) is ks.activation(spec, **kwargs)


def test_sympy_input_is_keyed_by_structure_with_assumptions():
    x = sp.Symbol("x", real=True)
    assert ks.activation(sp.tanh(x)) is ks.activation(sp.tanh(sp.Symbol("x", real=True)))
    # the same printed text with another symbol (no assumptions) is another input
    other = ks.activation(sp.tanh(sp.Symbol("x")))
    assert other is not ks.activation(sp.tanh(x))
    assert other == ks.activation(sp.tanh(x))   # ... for the same function


@pytest.mark.parametrize("first, second", [
    ({"negative_slope": 0.2}, {"negative_slope": 0.3}),
    ({"negative_slope": 0.0}, {"negative_slope": -0.0}),   # equal under ==, not the input
    ({"negative_slope": 1}, {"negative_slope": 1.0}),      # int and float kept apart
    ({"negative_slope": 0.2}, {"negative_slope": 0.2, "name": "x"}),
])
def test_different_inputs_give_different_objects(first, second):
    a, b = ks.activation("leaky_relu", **first), ks.activation("leaky_relu", **second)
    assert a is not b
    assert a.values == {"negative_slope": first["negative_slope"]}
    assert b.values == {"negative_slope": second["negative_slope"]}
    assert repr(b.values["negative_slope"]) == repr(second["negative_slope"])


def test_a_bool_is_refused_even_when_its_int_is_memoized():
    ks.activation("leaky_relu", negative_slope=1)
    with pytest.raises(ActivationError, match="real number"):
        ks.activation("leaky_relu", negative_slope=True)


def test_errors_are_not_memoized():
    for _ in range(2):
        with pytest.raises(UnknownNameError):
            ks.activation("tahn")


def test_activations_are_read_only():
    phi = ks.activation("tanh")
    expr = phi.expr
    for name, value in [("expr", sp.Integer(0)), ("name", "other"), ("values", {}),
                        ("brand_new", 1)]:
        with pytest.raises(ImmutableError, match="read-only"):
            setattr(phi, name, value)
    with pytest.raises(AttributeError):   # ImmutableError is an AttributeError too
        phi.name = "other"
    with pytest.raises(ImmutableError):
        del phi.name
    assert phi.expr is expr and phi.name == "tanh"


def test_parameter_values_are_read_only():
    phi = ks.activation("leaky_relu", negative_slope=0.2)
    for mutate in (lambda v: v.__setitem__("negative_slope", 0.5),
                   lambda v: v.update(negative_slope=0.5), lambda v: v.pop("negative_slope"),
                   lambda v: v.clear(), lambda v: v.setdefault("b", 1.0),
                   lambda v: v.__delitem__("negative_slope")):
        with pytest.raises(ImmutableError):
            mutate(phi.values)
    assert phi.values == {"negative_slope": 0.2}
    assert pickle.loads(pickle.dumps(phi.values)) == {"negative_slope": 0.2}


def test_changed_copies_leave_the_shared_object_alone():
    leaky = ks.activation("leaky_relu")
    fixed = leaky.fix(negative_slope=0.1)
    shifted = ks.activation("tanh").affine(2.0, 0.5, -0.1, 3.0)
    assert leaky.free == ("negative_slope",) and fixed.free == ()
    assert ks.activation("tanh").expr == sp.tanh(activations.X)
    with pytest.raises(ImmutableError):
        shifted.affine_params = (1.0, 0.0, 0.0, 1.0)


def test_solves_do_not_change_the_shared_activation():
    phi = ks.activation("tanh")
    before = (sp.srepr(phi.expr), dict(phi.values), phi.name, phi.kinks)
    ks.dks(phi, network=ks.mlp(5))
    ks.tat(phi, network=ks.mlp(5))
    assert (sp.srepr(phi.expr), dict(phi.values), phi.name, phi.kinks) == before


def test_the_memo_is_bounded_and_drops_the_least_recently_used(monkeypatch):
    assert activations._MEMO.maxsize == 512
    monkeypatch.setattr(activations, "_MEMO", Memo(2))
    tanh, relu = ks.activation("tanh"), ks.activation("relu")
    assert ks.activation("tanh") is tanh          # tanh is now the most recent
    ks.activation("softsign")                     # drops relu
    assert len(activations._MEMO) == 2
    assert ks.activation("tanh") is tanh
    assert ks.activation("relu") is not relu      # built again
    assert ks.activation("relu") == relu


def test_memo_table():
    memo = Memo(3)
    built = []

    def build(key):
        built.append(key)
        return [key]

    first = memo.get("a", lambda: build("a"))
    assert memo.get("a", lambda: build("a")) is first and built == ["a"]
    for key in "bcd":
        memo.get(key, lambda key=key: build(key))
    assert len(memo) == 3
    assert memo.get("a", lambda: build("a")) is not first   # dropped, rebuilt
    assert memo.get(None, lambda: 5) == 5 and len(memo) == 3
    memo.clear()
    assert len(memo) == 0


def test_networks_are_shared_per_arguments():
    assert ks.resnet(101, 0.6) is ks.resnet(101, 0.6)
    assert ks.resnet(101, 0.6) is not ks.resnet(101, 0.5)
    assert ks.resnet(50, 0.6) is not ks.resnet(50, 0.6, version="v1")
    assert repr(ks.resnet(18, -0.0)) != repr(ks.resnet(18, 0.0))   # the weight as given
    assert ks.mlp(10) is ks.mlp(10) and ks.mlp(10) is not ks.mlp(11)
    assert ks.dks("tanh", network=ks.resnet(101, 0.6)).params == \
        ks.dks("tanh", network=ks.resnet(101, 0.6)).params
