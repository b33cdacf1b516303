"""The one emitter: a solved transform plus a :class:`Target` table -> module source text.

Every target shares the same plan; only the data in its :class:`Target` differs:

1. a header docstring stating method, targets, network, activation, parameters, achieved
   residuals and the kernelshape version. No text from the transform (activation name,
   expression, network, condition and key names: anything a JSON document can carry)
   reaches the source except inside a string literal built by :func:`docstring_literal`,
   which escapes it and checks that the literal reads back as exactly that text; identifiers
   come from :func:`safe_identifier` or are validated by :func:`check_name`;
2. the transformed activation, ``phi_hat(x) = output_scale * (phi(u) + output_shift)`` with
   ``u = input_scale * x + input_shift`` on its own line (so sympy's canonical ordering can
   never reshuffle the affine input), and ``phi`` printed piece by piece: each analytic
   branch of the base activation (``Activation.pieces``, which folds Piecewise, Max, Min,
   Abs and Heaviside) is evaluated at ``where(in_piece, u, safe_point)`` and the branches
   are selected with ``where`` ("double where"). The untaken branch therefore never sees an
   input that overflows, and gradients are finite everywhere;
3. the target's support code: SUO / Delta initializer and per-location normalization.

The output is a pure function of its inputs: same transform, target and name, same bytes.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import keyword
import math
import re
from collections.abc import Callable, Mapping

import sympy as sp

from ..errors import CodegenError
from ..parsing import X
from .printer import TargetPrinter, stable_form
from .tails import with_tails

__all__ = [
    "Target",
    "check_name",
    "class_name",
    "display_name",
    "docstring_literal",
    "docstring_text",
    "emit_module",
    "safe_identifier",
]

_AFFINE_KEYS = ("input_scale", "input_shift", "output_shift", "output_scale")


@dataclasses.dataclass(frozen=True)
class Target:
    """Everything that is specific to one framework.

    Attributes:
        name: the target's name (``"numpy"``, ...).
        framework: the framework's display name for docs.
        printer: a :class:`~kernelshape.codegen.printer.TargetPrinter` subclass.
        imports: import lines every emitted module has.
        extra_imports: text -> an import line needed when the text occurs in the printed
            activation (e.g. ``"scipy.special."``).
        helpers: private helper name -> its source, included when the activation calls it.
        where: template ``where(cond, a, b)`` with ``{0}``, ``{1}``, ``{2}``.
        full_like: template ``full_like(u, c)``: a constant branch shaped and typed like
            ``u`` (used when no branch depends on ``u``, e.g. derivatives of ReLU).
        support: source of the initializer and normalization functions (standalone).
        support_names: the public names ``support`` defines.
        layout: one line describing the weight layout of the initializer.
        wrapper: optional callable ``(function_name, class_name, doc_literal) -> source``
            for a framework object around the activation (the torch ``nn.Module``);
            ``doc_literal`` is a complete, escaped string literal (:func:`docstring_literal`)
            to paste as the class docstring.
        gradient: also emit ``<name>_grad`` printed from the symbolic derivative (for
            targets without automatic differentiation).
    """

    name: str
    framework: str
    printer: type[TargetPrinter]
    imports: tuple[str, ...]
    extra_imports: Mapping[str, str]
    helpers: Mapping[str, str]
    where: str
    full_like: str
    support: str
    support_names: tuple[str, ...]
    layout: str
    wrapper: Callable[[str, str, str], str] | None = None
    gradient: bool = False

    def reserved(self) -> frozenset[str]:
        """Names an activation may not take in this target's modules."""
        module_names = {line.split()[-1].split(".")[0] for line in self.imports}
        module_names |= {line.split()[-1].split(".")[0] for line in self.extra_imports.values()}
        return frozenset(self.support_names) | module_names | {"PARAMS", "u", "x", "y"}


def check_name(name, target: Target) -> str:
    """``name`` if it is a usable function name in ``target``'s module, else CodegenError."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise CodegenError(f"name must be an ASCII Python identifier, got {name!r}")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise CodegenError(f"name must not be a Python keyword, got {name!r}")
    if name.startswith("_") or name in target.reserved() or name in dir(builtins):
        raise CodegenError(
            f"name {name!r} would shadow a name the {target.name} module needs; "
            f"avoid leading underscores, builtins and {sorted(target.reserved())}")
    return name


def docstring_text(text) -> str:
    r"""``text`` made safe inside a triple-quoted docstring.

    Backslashes and quotes are escaped (so no text can close the docstring or form an
    escape), and non-printable characters other than newlines become ``\uXXXX`` escapes.

    Example:
        >>> print(docstring_text('say "hi" \\'))
        say \"hi\" \\
    """
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def docstring_literal(text, indent: str = "") -> str:
    """A triple-quoted string literal whose value is exactly ``text``.

    Lines after the first are indented by ``indent`` (the indentation is part of the
    docstring, as Python's ``inspect.cleandoc`` expects), and so are the closing quotes
    after a final newline. The literal is read back with
    :func:`ast.literal_eval` before it is returned: should escaping ever miss a case, code
    generation stops instead of emitting text that could end the string.

    Raises:
        CodegenError: the literal does not read back as the text (never expected).

    Example:
        >>> text = "a " + '"' * 3 + " b"      # would end a naively pasted docstring
        >>> ast.literal_eval(docstring_literal(text)) == text
        True
    """
    text = str(text)
    lines = text.split("\n")
    body = "\n".join([lines[0], *((indent + line) if line else "" for line in lines[1:])])
    if len(lines) > 1 and not lines[-1]:
        body += indent   # the closing quotes line up with the code
    literal = f'"""{docstring_text(body)}"""'
    try:
        ok = ast.literal_eval(literal) == body
    except (SyntaxError, ValueError) as err:   # pragma: no cover - guarded above
        raise CodegenError(f"could not quote text {text[:60]!r} as a docstring") from err
    if not ok:   # pragma: no cover - a failed escape is a bug, never emitted
        raise CodegenError(f"could not quote text {text[:60]!r} as a docstring")
    return literal


def display_name(text) -> str:
    """How a user-given name appears in generated docs: as is when it is a plain word
    (letters, digits, ``_ - . +``), else as its Python ``repr`` (one line, quotes shown).

    Example:
        >>> display_name("tanh"), display_name("my act")
        ('tanh', "'my act'")
    """
    text = str(text)
    return text if re.fullmatch(r"[A-Za-z0-9_.+\-]{1,80}", text) else repr(text)


def safe_identifier(text, default: str = "activation") -> str:
    """A lowercase ASCII identifier made from ``text``: runs of other characters become one
    underscore; ``default`` when nothing usable is left (or ``text`` is not a string).

    Example:
        >>> safe_identifier("tanh; import os"), safe_identifier("42"), safe_identifier(None)
        ('tanh_import_os', 'activation_42', 'activation')
    """
    if not isinstance(text, str):
        return default
    word = re.sub(r"[^a-z0-9]+", "_", text.lower())[:40].strip("_")
    return word if word and not word[0].isdigit() else (f"{default}_{word}" if word else default)


def _num(v) -> str:
    """A number as code: the shortest round-trip float; NaN and infinities cannot be code
    (``nan`` is not a name in the emitted module)."""
    value = float(v)
    if not math.isfinite(value):
        raise CodegenError(f"cannot emit the non-finite number {value!r} as code")
    return repr(value)


def class_name(name: str) -> str:
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    return camel if camel.isidentifier() and not keyword.iskeyword(camel) else camel + "Module"


# -- the activation body --------------------------------------------------------------------
def _safe_point(lo: float, hi: float) -> float:
    """A point inside the piece ``(lo, hi)`` where its branch is certainly finite."""
    if lo == hi or (math.isinf(lo) and math.isinf(hi)):   # a tail only at u = +-inf, or
        return 0.0                                          # the line between two of them
    if math.isinf(lo):
        return hi - 1.0
    if math.isinf(hi):
        return lo + 1.0
    mid = 0.5 * (lo + hi)
    short = float(f"{mid:.2g}")      # -1.8, not -1.7999999999999998, in the emitted text
    return short if lo < short < hi else mid


def _bound(value: float) -> str:
    # inf has no literal; float("inf") needs no import and compares in every dtype.
    return _num(value) if math.isfinite(value) else f'float("{value}")'


def _mask(piece, pieces) -> str:
    """``u`` in ``piece``; the pieces' masks are disjoint and miss NaN."""
    if piece.lo == piece.hi:
        return f"u == {_bound(piece.lo)}"
    at_inf = {p.lo for p in pieces if p.lo == p.hi}
    cond = []
    if math.isfinite(piece.lo) or piece.lo in at_inf:
        cond.append(f"u > {_bound(piece.lo)}")
    if math.isfinite(piece.hi) or piece.hi in at_inf:
        cond.append(f"u {'<=' if math.isfinite(piece.hi) else '<'} {_bound(piece.hi)}")
    return " & ".join(f"({c})" for c in cond) if len(cond) > 1 else cond[0]


def _print_expr(printer: TargetPrinter, expr: sp.Expr, var: str) -> str:
    if expr.free_symbols != {X}:
        raise CodegenError(f"branch {expr} has symbols other than x: {expr.free_symbols}")
    return printer.doprint(expr.subs(X, sp.Symbol(var, real=True)))


def _body_lines(target: Target, branches, pieces) -> list[str]:
    """Lines computing ``y = phi(u)`` from ``u``, piece by piece (double where).

    Every piece but one gets a mask; the remaining piece takes everything else, NaN
    included, so it is a piece whose branch varies (a NaN input then gives NaN).
    """
    printer = target.printer()
    where = target.where.format
    exprs = [stable_form(branches[p.branch]) for p in pieces]
    varies = [bool(e.free_symbols) for e in exprs]

    def text(k, var):
        if varies[k]:
            return _print_expr(printer, exprs[k], var)
        if any(varies):
            return _num(sp.Float(exprs[k]))
        # Keep u's shape and dtype: a bare float would turn float32 into float64.
        return target.full_like.format("u", _num(sp.Float(exprs[k])))

    if len(pieces) == 1:
        return [f"y = {text(0, 'u')}"]
    rest = max((k for k in range(len(pieces)) if varies[k]), default=len(pieces) - 1)
    masked = [k for k in range(len(pieces)) if k != rest]
    lines = []
    for k in masked:
        lines.append(f"m{k} = {_mask(pieces[k], pieces)}")
        if varies[k]:
            safe = _num(_safe_point(pieces[k].lo, pieces[k].hi))
            lines.append(f"u{k} = {where(f'm{k}', 'u', safe)}")
    if varies[rest]:
        safe = _num(_safe_point(pieces[rest].lo, pieces[rest].hi))
        lines.append(f"u{rest} = {where(' | '.join(f'm{k}' for k in masked), safe, 'u')}")
    out = text(rest, f"u{rest}")
    for k in reversed(masked):
        out = where(f"m{k}", text(k, f"u{k}"), out)
    lines.append(f"y = {out}")
    return lines


def _affine_text(a: float, b: float, var: str = "x") -> str:
    text = var if a == 1.0 else f"{_num(a)} * {var}"
    if b:
        text += f" - {_num(-b)}" if b < 0 else f" + {_num(b)}"
    return text


def _output_text(d: float, g: float) -> str:
    text = "y"
    if d:
        text = f"y - {_num(-d)}" if d < 0 else f"y + {_num(d)}"
    if g == 1.0:
        return text
    return f"{_num(g)} * ({text})" if d else f"{_num(g)} * y"


def _function_source(target: Target, name: str, act, *, order: int, what: str) -> str:
    base = act.base
    a, b, d, g = (float(v) for v in act.affine_params)
    # Far out, outer branches become their exact asymptotes (finite forms, right limits).
    branches, pieces = with_tails(base.branches, base.pieces)
    if order:
        branches = tuple(sp.diff(stable_form(br), X) for br in branches)
    lines = [f"u = {_affine_text(a, b)}", *_body_lines(target, branches, pieces)]
    lines.append(f"return {_affine_text(g * a, 0.0, 'y')}" if order
                 else f"return {_output_text(d, g)}")
    doc = docstring_literal(
        f"{what}\n\nphi(x) = {sp.sstr(base.expr)}\n\n"
        "Args:\n    x: an array; float32 input stays float32.\n\n"
        "Returns:\n    An array of the same shape and dtype.\n", indent="    ")
    body = "".join(f"    {line}\n" for line in lines)
    return f"def {name}(x):\n    {doc}\n{body}"


# -- the header -----------------------------------------------------------------------------
def _header(transform, target: Target, name: str, version: str, needs: str,
            public: list[str]) -> str:
    act = transform.activation
    base = act.base
    a, b, d, g = (float(v) for v in act.affine_params)
    digits = transform.digits
    label = display_name(base.name) if base.name else "custom activation"
    rows = [
        (f"{_method_label(transform)}-transformed {label} for {target.framework}, "
         f"generated by kernelshape {version}."),
        "",
        f"Standalone: needs only {needs} at run time. Do not edit by hand;",
        "regenerate with kernelshape.codegen.write(transform, target, path).",
        "",
        f"    {name}(x) = output_scale * (phi(u) + output_shift),",
        "    u = input_scale * x + input_shift,",
        f"    phi(x) = {sp.sstr(base.expr)}",
        "",
        f"Method: {display_name(transform.method)}",
        f"Network: {transform.network}",
        "Targets:",
        *(f"    {k} = {_fmt(v, digits)}" for k, v in transform.targets.items()),
        "Parameters (dks names; the affine ones as applied):",
        *(f"    {k} = {_num(v)}" for k, v in zip(_AFFINE_KEYS, (a, b, d, g))),
        *(f"    {k} = {_fmt(v, digits)}" for k, v in transform.params.items()
          if k not in _AFFINE_KEYS),
        *([f"Solved to {digits} digits (the code applies them rounded to float64):",
           *(f"    {k} = {_fmt(v, digits)}" for k, v in transform.params.items())]
          if digits else []),
        "Conditions (target -> achieved, |difference|):",
        *(f"    {r.condition}: {_fmt(r.target, digits)} -> {_fmt(r.achieved, digits)}, "
          f"{r.difference:.3e}"
          for r in transform.residuals),
        "Precision of the solve: "
        + (f"{transform.digits} digits" if transform.digits else "float64"),
        "",
        f"Contents: {', '.join(public)} (the activation), "
        + ", ".join(target.support_names) + " (initializers, normalization).",
        f"Weight layout of the initializer: {target.layout}.",
        "SUO: Haar-orthogonal weights times max(sqrt(fan_out / fan_in), 1), zero biases;",
        "Delta: convolutions get an SUO matrix at the centre tap and zeros elsewhere",
        "(Martens et al. 2021, arXiv 2110.01765, 'Parameter distributions').",
    ]
    return docstring_literal("\n".join(row.rstrip() for row in rows) + "\n") + "\n"


def _fmt(v, digits=None) -> str:
    """A value for the header text (never code): an mpmath number with the ``digits`` the
    solve carries, a float as its shortest repr, anything else as its repr."""
    if digits and hasattr(v, "_mpf_"):
        import mpmath
        return mpmath.nstr(v, digits, strip_zeros=False)
    try:
        return repr(float(v))
    except (TypeError, ValueError, OverflowError):
        return repr(v)


def _method_label(transform) -> str:
    method = transform.method
    return method.upper() if method in ("dks", "tat") else display_name(method)


# -- assembly -------------------------------------------------------------------------------
def emit_module(transform, target: Target, name: str, version: str) -> str:
    """The full module source for ``transform`` in ``target`` (see the module docstring)."""
    act = transform.activation
    if act.free:
        raise CodegenError(f"the transformed activation still has free parameters {act.free}")
    base = act.base
    a, b, d, g = (float(v) for v in act.affine_params)
    label = (f"{_method_label(transform)}-transformed "
             f"{display_name(base.name) if base.name else 'activation'}")
    what = f"{label}: {_output_text(d, g).replace('y', 'phi(u)')}, u = {_affine_text(a, b)}."
    functions = [_function_source(target, name, act, order=0, what=what)]
    public = [name]
    if target.gradient:
        functions.append(_function_source(
            target, f"{name}_grad", act, order=1,
            what=f"Derivative of {name} (the symbolic derivative, printed stably)."))
        public.append(f"{name}_grad")
    if target.wrapper is not None:
        cls = class_name(name)
        functions.append(target.wrapper(
            name, cls, docstring_literal(f"{label} as a module (see {name}).", indent="    ")))
        public.append(cls)
    code = "".join(functions)
    imports = list(target.imports) + sorted(
        {line for text, line in target.extra_imports.items() if text in code})
    helpers = [src.strip("\n") for helper, src in sorted(target.helpers.items())
               if f"{helper}(" in code]
    params = {k: v for k, v in zip(_AFFINE_KEYS, (a, b, d, g))}
    params.update({k: float(v) for k, v in transform.params.items() if k not in params})
    params_src = ",\n".join(f"    {k!r}: {_num(v)}" for k, v in params.items())
    exported = sorted([*public, *target.support_names, "PARAMS"], key=_isort_key)
    preamble = (
        "\n".join(imports) + "\n\n"
        + f"__all__ = [{', '.join(repr(n) for n in exported)}]\n\n"
        + "#: The transform's parameters (dks names), as used below.\n"
        + f"PARAMS = {{\n{params_src},\n}}\n")
    parts = [preamble, *functions, *helpers, target.support]
    needs = " and ".join([target.framework] + (["SciPy"] if "import scipy" in preamble else []))
    return (_header(transform, target, name, version, needs, public) + "\n"
            + "\n\n\n".join(p.strip("\n") for p in parts) + "\n")


def _isort_key(name: str):
    """isort's order for ``__all__``: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)
