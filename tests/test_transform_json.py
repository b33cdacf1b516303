"""Transform documents are input like any other (issue 14, point 9; issue 13, point 2).

A catalogue of tampered documents: each must raise :class:`DocumentError` (a
``TransformError``, ``ValueError``) whose ``key`` names the offending entry. Before, the
method ``"evil"`` or ``None`` loaded, a missing ``input_scale`` silently became 1.0, an
extra NaN parameter put ``nan`` into generated code, ``"abc"`` raised a raw ValueError,
stored residuals were believed, and a digits=40 document held 20 digits but still claimed 40.

Then the precision a document carries: every digit kept as strings, ``digits`` no more than
the strings hold, residual differences exact, and ``kernelshape solve --digits 40`` printing
all 40 digits.
"""

import copy
import json
import re

import mpmath
import pytest

import kernelshape as ks
from kernelshape import cli
from kernelshape.errors import DocumentError
from kernelshape.transforms.result import Residual, Transform

BIG = "9" * 4000
X = "Symbol('x', real=True)"


@pytest.fixture(scope="module")
def docs():
    """Documents of real solves (built once, re-serialized through JSON)."""
    solved = {
        "dks": ks.dks(ks.activation("tanh"), network=ks.mlp(10)),
        "tat": ks.tat(ks.activation("softplus"), network=ks.mlp(10), tau=0.3),
        "leaky": ks.tat(ks.activation("leaky_relu"), network=ks.mlp(50), eta=0.9),
        "leaky-dks": ks.dks(ks.activation("leaky_relu"), network=ks.mlp(10)),
        "leaky-digits": ks.tat(ks.activation("leaky_relu"),
                               network=ks.resnet(50, shortcut_weight=0.5), eta=0.9, digits=30),
        "digits": ks.dks(ks.activation("tanh"), network=ks.mlp(10), digits=40),
    }
    return {k: json.loads(json.dumps(t.to_dict())) for k, t in solved.items()}, solved


def _set(path, value):
    def edit(doc):
        *head, last = path
        node = doc
        for key in head:
            node = node[key]
        node[last] = value
    return edit


def _drop(path):
    def edit(doc):
        *head, last = path
        node = doc
        for key in head:
            node = node[key]
        del node[last]
    return edit


def _scale_param(key, factor):
    def edit(doc):
        doc["params"][key] = doc["params"][key] * factor
    return edit


# (id, base document, edit, the key the error must name)
CATALOGUE = [
    # the top level
    ("method-evil", "dks", _set(["method"], "evil"), "method"),
    ("method-none", "dks", _set(["method"], None), "method"),
    ("method-number", "dks", _set(["method"], 3), "method"),
    ("method-upper", "dks", _set(["method"], "DKS"), "method"),
    ("unknown-top-key", "dks", _set(["code"], "import os"), "code"),
    *[(f"missing-{k}", "dks", _drop([k]), k)
      for k in ("method", "base", "params", "targets", "network", "residuals", "digits")],
    ("digits-text", "dks", _set(["digits"], "40"), "digits"),
    ("digits-bool", "dks", _set(["digits"], True), "digits"),
    ("digits-float", "dks", _set(["digits"], 40.0), "digits"),
    ("digits-too-few", "dks", _set(["digits"], 15), "digits"),
    ("digits-huge", "dks", _set(["digits"], 10**9), "digits"),
    ("digits-above-the-solve-limit", "dks", _set(["digits"], 201), "digits"),
    # the base activation
    ("base-list", "dks", _set(["base"], ["tanh"]), "base"),
    ("base-unknown-key", "dks", _set(["base", "code"], "x"), "base.code"),
    ("base-missing-expr", "dks", _drop(["base", "expr"]), "base.expr"),
    ("base-name-number", "dks", _set(["base", "name"], 5), "base.name"),
    ("base-name-huge", "dks", _set(["base", "name"], "n" * 10_000), "base.name"),
    ("base-parameters-text", "dks", _set(["base", "parameters"], "a"), "base.parameters"),
    ("base-parameter-x", "dks", _set(["base", "parameters"], ["x"]), "base.parameters"),
    ("base-parameter-code", "dks", _set(["base", "parameters"], ["__import__('os')"]),
     "base.parameters"),
    ("base-values-unknown", "dks", _set(["base", "values"], {"beta": 1.0}), "base.values.beta"),
    ("base-expr-unreadable", "dks", lambda d: (d["base"].update(srepr=None, expr="tanh(")),
     "base.expr"),
    ("base-expr-code", "dks",
     lambda d: d["base"].update(srepr=None, expr="__import__('os').system('true')"),
     "base.expr"),
    ("base-expr-huge", "dks", lambda d: d["base"].update(srepr=None, expr="x+" * 30_000),
     "base.expr"),
    ("srepr-4000-digit-integer", "dks",
     _set(["base", "srepr"], f"Add(tanh({X}), Integer({BIG}))"), "base.srepr"),
    ("srepr-4000-digit-rational", "dks",
     _set(["base", "srepr"], f"Mul(Rational(1, {BIG}), tanh({X}))"), "base.srepr"),
    ("srepr-float-beyond-float64", "dks",
     _set(["base", "srepr"], f"Mul(Float('1.0e400', precision=53), tanh({X}))"), "base.srepr"),
    ("srepr-not-an-activation", "dks", _set(["base", "srepr"], "Integer(3)"), "base.srepr"),
    # parameters
    ("params-list", "dks", _set(["params"], [1.0, 2.0]), "params"),
    ("params-missing-input-scale", "dks", _drop(["params", "input_scale"]),
     "params.input_scale"),
    ("params-extra-nan", "dks", _set(["params", "extra"], float("nan")), "params.extra"),
    ("params-text", "dks", _set(["params", "input_scale"], "abc"), "params.input_scale"),
    ("params-none", "dks", _set(["params", "output_scale"], None), "params.output_scale"),
    ("params-bool", "dks", _set(["params", "output_scale"], True), "params.output_scale"),
    ("params-nan", "dks", _set(["params", "input_shift"], float("nan")), "params.input_shift"),
    ("params-inf", "dks", _set(["params", "input_shift"], float("inf")), "params.input_shift"),
    ("params-huge-int", "dks", _set(["params", "input_shift"], 10**400), "params.input_shift"),
    ("params-string-in-float64-document", "dks", _set(["params", "input_scale"], "0.3"),
     "params.input_scale"),
    ("params-leaky-missing-slope", "leaky", _drop(["params", "negative_slope"]),
     "params.negative_slope"),
    ("params-leaky-extra-scale", "leaky", _set(["params", "input_scale"], 1.0),
     "params.input_scale"),
    # targets
    ("targets-missing-xi", "dks", _drop(["targets", "xi"]), "targets.xi"),
    ("targets-foreign-eta", "dks", _set(["targets", "eta"], 0.9), "targets.eta"),
    ("targets-tat-missing-tau-local", "tat", _drop(["targets", "tau_local"]),
     "targets.tau_local"),
    ("targets-nan", "dks", _set(["targets", "zeta"], float("nan")), "targets.zeta"),
    # network
    ("network-number", "dks", _set(["network"], 10), "network"),
    ("network-huge", "dks", _set(["network"], "m" * 100_000), "network"),
    ("network-leaky-unrebuildable", "leaky", _set(["network"], "chain(linear, nonlinear)"),
     "network"),
    ("network-leaky-code", "leaky", _set(["network"], "mlp(depth=__import__('os'))"),
     "network"),
    ("network-leaky-bad-argument", "leaky", _set(["network"], "mlp(depth=50, width=3)"),
     "network"),
    ("network-leaky-bad-depth", "leaky", _set(["network"], "mlp(depth=-4)"), "network"),
    # residuals: structure, then claims the re-evaluation contradicts
    ("residuals-dict", "dks", _set(["residuals"], {}), "residuals"),
    ("residuals-too-many", "dks", lambda d: d["residuals"].extend(d["residuals"]),
     "residuals"),
    ("residuals-item-text", "dks", _set(["residuals", 0], "Q(1)"), "residuals[0]"),
    ("residuals-unknown-condition", "dks", _set(["residuals", 0, "condition"], "Z(1)"),
     "residuals[0].condition"),
    ("residuals-duplicate", "dks", _set(["residuals", 1, "condition"], "Q(1)"),
     "residuals[1].condition"),
    ("residuals-partial", "dks", lambda d: d["residuals"].pop(), "residuals"),
    ("residuals-target-changed", "dks", _set(["residuals", 3, "target"], 1.2),
     "residuals[3].target"),
    ("residuals-achieved-text", "dks", _set(["residuals", 0, "achieved"], "abc"),
     "residuals[0].achieved"),
    ("residuals-achieved-claimed", "dks", _set(["residuals", 1, "achieved"], 1.5),
     "residuals[1].achieved"),
    ("tampered-params-same-claims", "dks", _scale_param("output_scale", 1.01),
     "residuals[0].achieved"),
    ("tampered-input-scale", "tat", _scale_param("input_scale", 1.001),
     "residuals[0].achieved"),
    ("tampered-leaky-network", "leaky", _set(["network"], "mlp(depth=5)"),
     "residuals[2].achieved"),
    # digits documents: decimal strings
    ("digits-param-not-decimal", "digits", _set(["params", "input_scale"], "0x1p-2"),
     "params.input_scale"),
    ("digits-param-nan-text", "digits", _set(["params", "input_scale"], "nan"),
     "params.input_scale"),
    ("digits-param-spaces", "digits", _set(["params", "input_scale"], " 0.3"),
     "params.input_scale"),
    ("digits-param-beyond-float64", "digits", _set(["params", "input_scale"], "1e99999"),
     "params.input_scale"),
    ("digits-param-huge-text", "digits", _set(["params", "input_scale"], "0." + "3" * 9000),
     "params.input_scale"),
    ("digits-params-too-short", "digits", _set(["params", "input_scale"], "0.2966"),
     "params"),
    ("digits-tampered-claim", "digits", _set(["residuals", 2, "achieved"], "1e-3"),
     "residuals[2].achieved"),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_tampered_document_is_refused_naming_the_key(case, docs):
    _, kind, edit, key = case
    doc = copy.deepcopy(docs[0][kind])
    edit(doc)
    with pytest.raises(DocumentError) as info:
        Transform.from_dict(doc)
    assert isinstance(info.value, ks.errors.TransformError) and isinstance(info.value,
                                                                            ValueError)
    assert info.value.key.startswith(key), (info.value.key, str(info.value))
    assert info.value.key in str(info.value)


@pytest.mark.parametrize("data", [None, [], "{}", 3])
def test_not_a_mapping(data):
    with pytest.raises(DocumentError, match="mapping"):
        Transform.from_dict(data)


def test_srepr_payload_never_runs(tmp_path, docs):
    marker = tmp_path / "ran"
    doc = copy.deepcopy(docs[0]["dks"])
    doc["base"]["srepr"] = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    assert Transform.from_dict(doc).base == ks.activation("tanh")   # the printed form reads
    doc["base"]["expr"] = doc["base"]["srepr"]
    with pytest.raises(DocumentError, match="base.expr"):
        Transform.from_dict(doc)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["dks", "tat", "leaky", "leaky-dks", "leaky-digits",
                                  "digits"])
def test_real_documents_load_with_residuals_re_evaluated(kind, docs):
    doc, solved = docs[0][kind], docs[1][kind]
    back = Transform.from_dict(copy.deepcopy(doc))
    if solved.digits is None:
        assert back.params == solved.params
        assert back.targets == solved.targets
    else:   # decimal strings of digits + 10 or more significant digits (targets such as
        # xi = zeta**(1/L) are mpmath numbers at the solve's working precision too)
        assert set(back.targets) == set(solved.targets)
        for got, want in ((back.params, solved.params), (back.targets, solved.targets)):
            for key, value in want.items():
                assert abs(got[key] - value) <= 10.0 ** -(solved.digits + 9) * abs(value), key
    assert [r.condition for r in back.residuals] == [r.condition for r in solved.residuals]
    assert back.digits == solved.digits
    bound = 1e-13 if solved.digits is None else 10.0 ** (5 - solved.digits)
    assert back.max_residual <= bound


def test_stored_residuals_are_not_needed_and_not_believed(docs):
    doc = copy.deepcopy(docs[0]["dks"])
    doc["residuals"] = []
    doc["params"]["output_scale"] *= 1.01     # no claim left to contradict...
    back = Transform.from_dict(doc)
    # ...the loaded transform states what the parameters achieve: Q(1) = 1.01^2
    q1 = next(r for r in back.residuals if r.condition == "Q(1)")
    assert q1.achieved == pytest.approx(1.0201, rel=1e-12)
    assert back.max_residual == pytest.approx(0.0201, rel=1e-9)


def test_relu_document_round_trip():
    with pytest.warns(ks.ReluWarning):
        t = ks.dks(ks.activation("relu"), network=ks.mlp(10))
    back = Transform.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back.params == t.params and back.residuals == t.residuals


# -- precision (issue 13, point 2) -----------------------------------------------------------
def _significant(text):
    mantissa = re.sub(r"[eE].*$", "", text).lstrip("+-").replace(".", "")
    return len(mantissa.lstrip("0")) or len(mantissa)


def test_to_dict_keeps_every_digit_as_strings(docs):
    doc, t = docs[0]["digits"], docs[1]["digits"]
    for key, value in t.params.items():
        text = doc["params"][key]
        assert isinstance(text, str) and _significant(text) >= t.digits + 10, text
        with mpmath.workprec(value._mpf_[3]):   # at the value's own precision...
            assert mpmath.mpf(text) == value     # ...the same binary number, not 20 digits
    for r in doc["residuals"]:
        assert isinstance(r["achieved"], str) and _significant(r["achieved"]) >= t.digits


def test_from_dict_claims_no_more_digits_than_the_strings_hold(docs):
    doc = copy.deepcopy(docs[0]["digits"])
    assert doc["digits"] == 40
    with mpmath.workdps(60):   # what an older kernelshape wrote: 20 digits, digits=40 claimed
        doc["params"] = {k: mpmath.nstr(mpmath.mpf(v), 20, strip_zeros=False)
                         for k, v in doc["params"].items()}
    back = Transform.from_dict(doc)
    assert back.digits == 20
    assert "20 digits" in repr(back)
    # the residuals are those of the 20-digit parameters, not the stored 1e-45 claims
    assert 1e-24 < back.max_residual < 1e-16


def test_residual_difference_is_exact_for_mpmath_values():
    # before: abs(float(achieved) - float(target)) gave 0.0 for a 1e-45 difference
    with mpmath.workdps(60):
        r = Residual("Q'(1)", 1.0, mpmath.mpf(1) - mpmath.mpf("9.7e-45"))
    assert r.difference == pytest.approx(9.7e-45, rel=1e-12)


def test_repr_shows_the_digits_it_carries(docs):
    t = docs[1]["digits"]
    text = repr(t)
    assert "40 digits" in text
    for value in t.params.values():
        assert mpmath.nstr(value, 40, strip_zeros=False) in text


def _run(capsys, *argv):
    status = cli.main(list(argv))
    out = capsys.readouterr().out
    assert status in (0, None), out
    return out


def test_cli_solve_prints_every_digit(capsys):
    text = _run(capsys, "solve", "tanh", "--mlp", "10", "--digits", "40")
    row = next(line for line in text.splitlines() if line.startswith("input_scale"))
    assert _significant(row.split()[-1]) == 40, row     # before: 15 digits
    data = json.loads(_run(capsys, "solve", "tanh", "--mlp", "10", "--digits", "40",
                           "--json"))
    assert data["digits"] == 40
    assert all(_significant(v) >= 50 for v in data["params"].values())   # before: 20
    back = Transform.from_dict(data)
    assert back.digits == 40 and back.max_residual <= 1e-35


def test_generated_header_states_every_digit(docs):
    import ast

    from kernelshape import codegen
    t = docs[1]["digits"]
    doc = ast.get_docstring(ast.parse(codegen.emit(t, "numpy")))
    assert "Precision of the solve: 40 digits" in doc
    for key, value in t.params.items():   # before: 17 digits of each
        assert f"{key} = {mpmath.nstr(value, 40, strip_zeros=False)}" in doc
