"""Reading a Transform document (``Transform.from_dict``): JSON is input like any other.

A document is checked against a schema before anything is built from it: required and
known keys at every level, types, finite numbers of bounded size, a known method, the
parameter and target keys that method and activation produce, numbers inside the
expression of bounded size. Any failure raises :class:`~kernelshape.errors.DocumentError`
naming the key. Nothing in a document is evaluated as Python: the expression is re-read
with the whitelisted readers of :mod:`kernelshape.parsing`.

The stored residuals are claims, not facts. Every condition of the method is evaluated
again from the stored parameters (float64 quadrature, or mpmath at the precision the
document holds); a stored ``achieved`` value that the re-evaluation contradicts is an
error, and the loaded transform carries the re-evaluated values.

Precision: in a ``digits`` document the numbers are decimal strings. The precision the
loaded transform reports is the smaller of the stored ``digits`` and the significant digits
its parameter strings actually hold, so a document never claims more than it carries.
"""

from __future__ import annotations

import ast
import math
import numbers
import re
from collections.abc import Mapping

import mpmath
import sympy as sp

from .. import networks
from ..activations import Activation
from ..errors import DocumentError, ExpressionError, KernelShapeError, MagnitudeError
from ..parsing import parse_expression, parse_srepr
from ._leaky import leaky_residuals
from ._precise import MAX_DIGITS, residuals_mp
from .dks import residuals_float
from .result import PARAM_KEYS

__all__ = ["MAX_DOCUMENT_DIGITS", "read_document"]

#: Largest ``digits`` a document may state: what a solve may ask for, since loading re-evaluates
#: every residual at the stated precision (a larger claim would make loading the long work).
MAX_DOCUMENT_DIGITS = MAX_DIGITS
#: Longest text field (expression, srepr, network description).
MAX_TEXT = 50_000
#: Longest activation name and parameter name.
MAX_NAME = 200
#: Integers and rationals inside the expression: at most this many bits (about 120 digits).
MAX_INTEGER_BITS = 400
#: Floats inside the expression: at most 2**this in magnitude (float64 reaches 2**1024).
MAX_FLOAT_MAG = 1024

_TOP = ("method", "base", "params", "targets", "network", "residuals", "digits")
_BASE = ("expr", "name", "parameters", "values")
_BASE_OPTIONAL = ("srepr",)
_LEAKY_PARAMS = {"dks": ("negative_slope", "input_shift", "output_shift", "output_scale"),
                 "tat": ("negative_slope", "output_scale")}
#: method, leaky -> (required target keys, optional target keys)
_TARGETS = {("dks", False): (("zeta", "xi"), ("q_slope",)),
            ("dks", True): (("zeta", "q_slope", "xi"), ()),
            ("tat", False): (("tau", "tau_local"), ()),
            ("tat", True): (("eta",), ())}
_DECIMAL = re.compile(r"[+-]?(?:(\d+)(?:\.(\d*))?|\.(\d+))(?:[eE]([+-]?\d{1,6}))?")


def read_document(cls, data):
    """A :class:`~kernelshape.transforms.result.Transform` from a validated document.

    Raises:
        DocumentError: naming the first key that breaks the schema, an expression that
            cannot be read, or a stored residual the re-evaluation contradicts.
    """
    _mapping("document", data, required=_TOP)
    method = data["method"]
    if method not in ("dks", "tat"):
        raise DocumentError("method", f"expected 'dks' or 'tat', got {_show(method)}")
    claimed = _digits(data["digits"])
    base = _base(data["base"])
    leaky = "negative_slope" in base.free
    required = _LEAKY_PARAMS[method] if leaky else PARAM_KEYS
    params_in = _mapping("params", data["params"], required=required)
    carried = []
    params = {k: _number(f"params.{k}", params_in[k], claimed, carried, mp=bool(claimed))
              for k in required}
    digits = min([claimed, *carried]) if claimed else None
    if digits is not None and digits < 16:
        raise DocumentError("params", f"the numbers hold {digits} significant digits, fewer "
                            f"than float64; a digits={claimed} document stores every digit")
    need, optional = _TARGETS[method, leaky]
    targets_in = _mapping("targets", data["targets"], required=need, optional=optional)
    targets = {k: _number(f"targets.{k}", v, claimed, []) for k, v in targets_in.items()}
    network = _text("network", data["network"], MAX_TEXT)
    conditions = _conditions(method, leaky, targets)
    stored = _stored_residuals(data["residuals"], conditions, claimed)
    residuals = _reevaluate(base, params, conditions, digits, network)
    _confirm(stored, residuals, digits)
    return cls(method=method, base=base, params=params, targets=targets, network=network,
               residuals=residuals, digits=digits)


# -- structure ---------------------------------------------------------------------------
def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _mapping(key, value, *, required, optional=()):
    if not isinstance(value, Mapping):
        raise DocumentError(key, f"expected a mapping (JSON object), got "
                                 f"{type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise DocumentError(key, f"keys must be text, got {_show(k)}")
        if k not in required and k not in optional:
            raise DocumentError(f"{key}.{k}" if key != "document" else k,
                                f"unknown key; expected {sorted([*required, *optional])}")
    missing = [k for k in required if k not in value]
    if missing:
        first = f"{key}.{missing[0]}" if key != "document" else missing[0]
        raise DocumentError(first, "missing" if len(missing) == 1 else
                            f"missing, as are {missing[1:]} (required: {list(required)})")
    return value


def _text(key, value, limit, *, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise DocumentError(key, f"expected text, got {type(value).__name__}")
    if len(value) > limit:
        raise DocumentError(key, f"{len(value)} characters, at most {limit} allowed")
    return value


def _digits(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 16 <= value <= MAX_DOCUMENT_DIGITS:
        raise DocumentError("digits", f"expected null (float64) or an integer from 16 to "
                                      f"{MAX_DOCUMENT_DIGITS}, got {_show(value)}")
    return value


def _number(key, value, digits, carried, *, mp=False):
    """A finite number from a JSON number or (digits documents) a decimal string, which
    becomes an mpmath number (a JSON number too with ``mp``); appends the significant digits
    it holds to ``carried``."""
    if isinstance(value, str) and digits:
        match = _DECIMAL.fullmatch(value)
        if match is None or len(value) > MAX_DOCUMENT_DIGITS + 20:
            raise DocumentError(key, f"expected a decimal number, got {_show(value)}")
        mantissa = (match[1] or "") + (match[2] or "") + (match[3] or "")
        significant = len(mantissa.lstrip("0")) or len(mantissa)
        with mpmath.workdps(significant + 5):
            number = mpmath.mpf(value)
        if not _fits_float(number):
            raise DocumentError(key, f"{_show(value)} is beyond float64's range")
        carried.append(significant)
        return number
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "a decimal string or a number" if digits else "a number"
        raise DocumentError(key, f"expected {kind}, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise DocumentError(key, f"expected a finite number, got {_show(value)}")
    carried.append(17)   # a JSON number is read as a float64
    return mpmath.mpf(number) if mp else number


def _fits_float(number) -> bool:
    return mpmath.isfinite(number) and (number == 0 or mpmath.mag(number) <= MAX_FLOAT_MAG)


# -- the base activation -------------------------------------------------------------------
def _base(data):
    _mapping("base", data, required=_BASE, optional=_BASE_OPTIONAL)
    name = _text("base.name", data["name"], MAX_NAME, optional=True)
    parameters = data["parameters"]
    if not isinstance(parameters, list) or len(parameters) > 16:
        raise DocumentError("base.parameters", f"expected a list of at most 16 names, got "
                                               f"{_show(parameters)}")
    for p in parameters:
        if not (isinstance(p, str) and p.isascii() and p.isidentifier()
                and len(p) <= MAX_NAME and p != "x"):
            raise DocumentError("base.parameters", f"expected ASCII identifiers other than "
                                                   f"'x', got {_show(p)}")
    values = _mapping("base.values", data["values"], required=(), optional=parameters)
    values = {k: _number(f"base.values.{k}", v, None, []) for k, v in values.items()}
    expr, key = _expression(data, parameters)
    _check_numbers(expr, key)
    try:
        return Activation(expr, name=name, values=values)
    except (KernelShapeError, ArithmeticError, RecursionError) as err:
        raise DocumentError(key, f"not an activation: {err}") from err


def _expression(data, parameters):
    """The base expression and the key it came from: the exact ``srepr`` when stored and
    readable, else the printed text."""
    srepr = _text("base.srepr", data.get("srepr"), MAX_TEXT, optional=True)
    if srepr is not None:
        try:
            return parse_srepr(srepr, parameters), "base.srepr"
        except MagnitudeError as err:
            # a constant the printed form would round away: refuse, never read a different
            # expression than the one stored
            raise DocumentError("base.srepr", f"cannot read the expression: {err}") from err
        except ExpressionError:
            pass   # e.g. a function outside the srepr whitelist: the printed form still reads
    text = _text("base.expr", data["expr"], MAX_TEXT)
    try:
        return parse_expression(text, tuple(parameters)), "base.expr"
    except (KernelShapeError, ArithmeticError, RecursionError) as err:
        raise DocumentError("base.expr", f"cannot read the expression: {err}") from err


def _check_numbers(expr, key):
    """Numbers in the expression are of bounded size (a 4000-digit integer overflowed
    float conversion later on)."""
    for atom in expr.atoms(sp.Number):
        if isinstance(atom, sp.Rational):
            bits = max(int(atom.p).bit_length(), int(atom.q).bit_length())
            if bits > MAX_INTEGER_BITS:
                raise DocumentError(key, f"a number with {bits} bits in the expression; at "
                                         f"most {MAX_INTEGER_BITS} bits allowed")
        elif isinstance(atom, sp.Float):
            if not _fits_float(mpmath.mpf(atom._mpf_)):
                raise DocumentError(key, f"the constant {_show(str(atom))} in the expression "
                                         "is beyond float64's range")
        else:
            raise DocumentError(key, f"the constant {_show(str(atom))} is not a finite "
                                     "real number")


# -- residuals -------------------------------------------------------------------------------
def _conditions(method, leaky, targets):
    """The conditions the method imposes, each with its target (THEORY.md §4-5)."""
    if method == "dks":
        out = {"Q(1)": 1.0}
        if "q_slope" in targets:   # ReLU drops the Q'(1) condition
            out["Q'(1)"] = targets["q_slope"]
        return {**out, "C(0)": 0.0, "C'(1)": targets["xi"]}
    if leaky:
        return {"Q(1)": 1.0, "C'(1)": 1.0, "M(0)": targets["eta"]}
    return {"Q(1)": 1.0, "Q'(1)": 1.0, "C'(1)": 1.0, "C''(1)": targets["tau_local"]}


def _stored_residuals(value, conditions, digits):
    """The stored claims, ``{condition: achieved}``: none at all, or every condition of the
    method once, each with the target the document's targets give."""
    if not isinstance(value, list) or len(value) > len(conditions):
        raise DocumentError("residuals", f"expected a list of at most {len(conditions)} "
                                         f"conditions, got {_show(value)}")
    stored = {}
    for i, item in enumerate(value):
        key = f"residuals[{i}]"
        _mapping(key, item, required=("condition", "target", "achieved"))
        name = item["condition"]
        if name not in conditions or name in stored:
            raise DocumentError(f"{key}.condition", f"expected one of {list(conditions)} "
                                                    f"once each, got {_show(name)}")
        target = _number(f"{key}.target", item["target"], digits, [])
        if target != conditions[name]:
            raise DocumentError(f"{key}.target", f"{_show(item['target'])} is not the target "
                                                 f"{conditions[name]} the targets give")
        stored[name] = (key, _number(f"{key}.achieved", item["achieved"], digits, []))
    if stored and set(stored) != set(conditions):
        missing = [c for c in conditions if c not in stored]
        raise DocumentError("residuals", f"conditions {missing} are missing")
    return stored


def _reevaluate(base, params, conditions, digits, network):
    """Every condition evaluated afresh from the parameters (never read from the document)."""
    try:
        if "negative_slope" in base.free:
            net = _network(network) if "M(0)" in conditions else None
            return leaky_residuals(params, conditions, digits, net=net)
        if digits:
            return residuals_mp(base, params, conditions, digits)
        return residuals_float(base, params, conditions)
    except DocumentError:
        raise
    except (KernelShapeError, ArithmeticError, ValueError) as err:
        raise DocumentError("params", f"the conditions cannot be evaluated: {err}") from err


def _confirm(stored, residuals, digits):
    """A stored ``achieved`` must agree with the re-evaluated one (to 1e-12 in float64, to
    10^-(digits - 8) in a digits document, relative to the target's size)."""
    tol = 1e-12 if not digits else mpmath.mpf(10) ** (8 - digits)
    for r in residuals:
        if r.condition not in stored:
            continue
        key, claim = stored[r.condition]
        if not abs(claim - r.achieved) <= tol * (1 + abs(r.target)):
            raise DocumentError(f"{key}.achieved", (
                f"the document claims {r.condition} = {_show(str(claim))}, but its parameters "
                f"give {_show(str(r.achieved))}"))


def _network(text):
    """The network a leaky TAT's M(0) condition needs, rebuilt from its description when it
    is a call of :func:`~kernelshape.networks.mlp` or ``resnet`` with literal arguments (read
    with :mod:`ast`, never evaluated)."""
    families = {"mlp": networks.mlp, "resnet": networks.resnet}
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        node = None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in families and not node.args
            and all(k.arg and isinstance(k.value, ast.Constant) for k in node.keywords)):
        raise DocumentError("network", (
            f"the condition M(0) depends on the network, and {_show(text)} cannot be rebuilt "
            "from its text (only mlp(...) and resnet(...) can); re-solve instead of loading"))
    try:
        net = families[node.func.id](**{k.arg: k.value.value for k in node.keywords})
    except (KernelShapeError, TypeError) as err:
        raise DocumentError("network", f"cannot rebuild {_show(text)}: {err}") from err
    if repr(net) != text:
        raise DocumentError("network", f"{_show(text)} rebuilds as {_show(repr(net))}")
    return net
