"""No text a transform carries ever becomes code in a generated module (issue 14, point 1).

Before the fix, ``ks.dks(ks.activation("tanh", name=n), ...).as_torch()`` with a name ``n``
holding three double quotes, a newline and ``import os; os.system("touch pwned")`` created
the file: the PyTorch class docstring pasted the name unescaped. The same document shared
as JSON fired through ``Transform.from_dict`` and when a file from ``codegen.write`` was
imported.

Every case here puts a payload that would create a marker file into one field a transform
carries (activation name, method, network, condition and key names), then emits, loads,
writes and imports the module in every target. The module must parse, define only what the
emitter defines, leave the marker absent, and still compute the transformed activation.
"""

import ast
import importlib.util
import json
import math

import numpy as np
import pytest

import kernelshape as ks
from kernelshape import codegen
from kernelshape.errors import CodegenError
from kernelshape.transforms.result import Residual, Transform

PARAMS = {"input_scale": 0.75, "input_shift": 0.25, "output_shift": -0.125,
          "output_scale": 1.5}
X = np.array([-2.0, -0.3, 0.0, 0.4, 3.0])


def _payloads(marker):
    touch = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    return {
        "issue-14": 'tanh"""\n    ' + touch + '\n    """',
        "single-triple": "tanh'''\n    " + touch + "\n    '''",
        "newline-statement": "tanh\n" + touch + "\n#",
        "backslash-quote": 'tanh\\"""\n' + touch + '\n"""',
        "trailing-backslash": "tanh\\",
        "quote-run": '""""""' + touch,
        "carriage-return": "tanh\r" + touch + "\r",
        "line-separator": "tanh\u2028" + touch + "\u2029",
        "nul-and-escapes": "tanh\x00\\x41\\u0041\\N{BULLET}",
        "plain-quotes": "it's \"quoted\"",
    }


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "generated code ran a payload"


def _transform(name=None, *, method="dks", network="mlp(depth=3)", residuals=(),
               params=PARAMS, targets=None):
    base = ks.activation("tanh", name=name) if name is not None else ks.activation("tanh")
    return Transform(method, base, dict(params), dict(targets or {"zeta": 1.5}), network,
                     tuple(residuals))


def _expected(x):
    a, b, d, g = (PARAMS[k] for k in ("input_scale", "input_shift", "output_shift",
                                      "output_scale"))
    return g * (np.tanh(a * x + b) + d)


def _check_structure(source):
    """The module parses and holds only a docstring, imports, assignments, defs and classes;
    no name from a payload (``pathlib``) is ever a name in code."""
    tree = ast.parse(source)
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    for node in body[1:]:
        assert isinstance(node, (ast.Import, ast.Assign, ast.FunctionDef, ast.ClassDef)), \
            ast.dump(node)[:200]
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "pathlib" not in names
    return tree


CASES = sorted(_payloads("m"))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("target", codegen.TARGETS)
def test_hostile_activation_name_stays_text(case, target, marker):
    name = _payloads(marker)[case]
    t = _transform(name)
    source = codegen.emit(t, target)
    tree = _check_structure(source)
    # the name is shown, escaped, in the module docstring: its repr reads back exactly
    assert repr(name) in ast.get_docstring(tree, clean=False)
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    default = codegen._default_name(t)
    assert default in functions and all(c.isalnum() or c == "_" for c in default)
    assert default.isascii() and default.startswith("dks_")
    module = codegen.load(t, target)
    assert "pwned" not in vars(module)


@pytest.mark.parametrize("case", CASES)
def test_as_numpy_as_jax_as_torch_with_hostile_names(case, marker):
    import jax.numpy as jnp
    import torch
    t = _transform(_payloads(marker)[case])
    np.testing.assert_allclose(codegen.as_numpy(t)(X), _expected(X), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(codegen.as_jax(t)(jnp.asarray(X))), _expected(X),
                               rtol=1e-6)
    layer = codegen.as_torch(t)
    assert isinstance(layer, torch.nn.Module)
    assert repr(t.base.name) in type(layer).__doc__   # the name, escaped, as text
    np.testing.assert_allclose(layer(torch.tensor(X, dtype=torch.float64)).numpy(),
                               _expected(X), rtol=1e-14)


@pytest.mark.parametrize("case", ["issue-14", "newline-statement", "quote-run"])
@pytest.mark.parametrize("target", codegen.TARGETS)
def test_written_file_imports_without_running_text(case, target, marker, tmp_path):
    t = _transform(_payloads(marker)[case])
    path = codegen.write(t, target, tmp_path / f"act_{target}.py")
    spec = importlib.util.spec_from_file_location(f"act_{target}_{case}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, codegen._default_name(t))
    if target == "numpy":
        np.testing.assert_allclose(fn(X), _expected(X), rtol=1e-14)


@pytest.mark.parametrize("case", CASES)
def test_from_dict_document_with_hostile_name(case, marker):
    import torch
    name = _payloads(marker)[case]
    t = ks.dks(ks.activation("tanh", name=name), network=ks.mlp(10))
    back = Transform.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back.base.name == name
    for target in codegen.TARGETS:
        _check_structure(codegen.emit(back, target))
    layer = codegen.as_torch(back)
    want = codegen.as_numpy(t)(X)
    np.testing.assert_allclose(layer(torch.tensor(X, dtype=torch.float64)).numpy(), want,
                               rtol=1e-14)


@pytest.mark.parametrize("field", ["network", "condition", "param-key", "target-key"])
@pytest.mark.parametrize("target", codegen.TARGETS)
def test_other_transform_text_stays_text(field, target, marker):
    text = _payloads(marker)["issue-14"]
    if field == "network":
        t = _transform(network=text)
    elif field == "condition":
        t = _transform(residuals=[Residual(text, 1.0, 1.0)])
    elif field == "param-key":
        t = _transform(params={**PARAMS, text: 0.5})
    else:
        t = _transform(targets={text: 1.0})
    source = codegen.emit(t, target)
    tree = _check_structure(source)
    if field == "param-key":   # PARAMS holds the key as a string literal, nothing more
        params = next(n for n in tree.body if isinstance(n, ast.Assign)
                      and n.targets[0].id == "PARAMS")
        assert ast.literal_eval(params.value)[text] == 0.5
    module = codegen.load(t, target)
    if target == "numpy":
        np.testing.assert_allclose(module.dks_tanh(X), _expected(X), rtol=1e-14)


@pytest.mark.parametrize("method", ['dks"""\nimport os\n"""', "evil", None, "eoc"])
def test_unknown_method_is_refused(method):
    with pytest.raises(CodegenError, match="method"):
        codegen.emit(_transform(method=method), "numpy")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("key", ["output_scale", "negative_slope", "extra"])
def test_non_finite_parameters_are_refused_not_printed(key, value):
    # before: PARAMS = {..., 'extra': nan} -> NameError: name 'nan' is not defined at import
    t = _transform(params={**PARAMS, key: value})
    error = ks.KernelShapeError if key == "output_scale" else CodegenError
    with pytest.raises(error, match="finite"):
        codegen.emit(t, "numpy")


def test_hostile_name_given_explicitly_is_refused():
    with pytest.raises(CodegenError, match="identifier"):
        codegen.emit(_transform(), "torch", name='act"""\nimport os\n"""')
