"""numba modules generated from an activation's analytic branches, cached on disk.

For each distinct tuple of branch expressions kernelshape writes one Python module holding

* ``_branch(k, d, x)``: the ``d``-th derivative (d = 0, 1, 2) of branch ``k`` at ``x``,
  printed from sympy for the ``math`` module (with numerically stable rewrites), and
* the quadrature kernels in ``kernelshape/_kernels/*.py`` (concatenated in file-name order),
  which call ``_branch``. Those files are templates, never imported themselves.

The module's file name is a hash of the kernelshape version, the template and the branch
source, so a stale cache after an upgrade or a template change is never picked up: the new
source lands in a new file. Every jitted function uses ``cache=True``, so a fresh process
loads machine code from disk instead of compiling. If the cache directory cannot be written,
kernelshape falls back to a private temporary directory and says so once
(:class:`CacheWarning`); if nothing can be written, it compiles in memory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import sympy as sp
from sympy.codegen.cfunctions import expm1
from sympy.printing.pycode import PythonCodePrinter

from .parsing import X

__all__ = ["jit_module", "cache_dir", "CacheWarning"]

_KERNELS = Path(__file__).with_name("_kernels")
_LOCK = threading.Lock()
_MODULES: dict[str, object] = {}
_WARNED = []


class CacheWarning(UserWarning):
    """The on-disk numba cache could not be used where configured."""


class _MathPrinter(PythonCodePrinter):
    """Prints scalar float64 code for numba using the math module, stably."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})

    def _print_log(self, expr):
        arg = expr.args[0]
        # log(1 + exp(u)) -> softplus(u), which neither overflows nor loses the small tail.
        if isinstance(arg, sp.Add) and len(arg.args) == 2 and sp.S.One in arg.args:
            other = arg.args[0] if arg.args[1] == 1 else arg.args[1]
            if isinstance(other, sp.exp):
                return f"_softplus({self._print(other.args[0])})"
            return f"math.log1p({self._print(other)})"
        return f"math.log({self._print(arg)})"

    def _print__OnePlusTanh(self, expr):
        return f"_one_plus_tanh({self._print(expr.args[0])})"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Integer(self, expr):
        return f"{int(expr)}.0" if abs(int(expr)) < 2**53 else repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and abs(int(exp)) <= 8:
            b = self.parenthesize(base, 100)
            n = abs(int(exp))
            body = "*".join([b] * n) if n else "1.0"
            return f"(1.0/({body}))" if exp < 0 else f"({body})"
        if exp == sp.S.Half:
            return f"math.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"(1.0/math.sqrt({self._print(base)}))"
        return super()._print_Pow(expr, rational=rational)


class _OnePlusTanh(sp.Function):
    """1 + tanh(u), printed as a cancellation-free helper."""

    def _eval_evalf(self, prec):
        return (1 + sp.tanh(self.args[0]))._eval_evalf(prec)


def stabilize(expr: sp.Expr) -> sp.Expr:
    """Rewrite sums that cancel in float64: exp(u) - 1, 1 +- erf(u), 1 + tanh(u),
    1 - tanh(u)^2, sqrt(A) - 1 (each only with the exact matching constant)."""
    if not expr.args:
        return expr
    expr = expr.func(*[stabilize(a) for a in expr.args]) if not isinstance(
        expr, sp.Piecewise) else expr
    if not isinstance(expr, sp.Add):
        return expr
    const, rest = expr.as_coeff_Add()
    if const == 0:
        return expr
    for term in sp.Add.make_args(rest):
        k, f = term.as_coeff_Mul()
        new = None
        if isinstance(f, sp.exp) and const == -k:
            new = k * expm1(f.args[0])
        elif isinstance(f, sp.erf) and const == k:
            new = k * sp.erfc(-f.args[0], evaluate=False)
        elif isinstance(f, sp.erf) and const == -k:
            new = -k * sp.erfc(f.args[0])
        elif isinstance(f, sp.tanh) and const == k:
            new = k * _OnePlusTanh(f.args[0])
        elif isinstance(f, sp.tanh) and const == -k:
            new = -k * _OnePlusTanh(-f.args[0])
        elif (isinstance(f, sp.Pow) and isinstance(f.base, sp.tanh) and f.exp == 2
              and const == -k):
            new = -k / sp.cosh(f.base.args[0]) ** 2
        elif isinstance(f, sp.Pow) and f.exp == sp.S.Half and const == -k:
            new = k * sp.expand(f.base - 1) / (sp.sqrt(f.base) + 1)
        if new is not None:
            others = [t for t in sp.Add.make_args(rest) if t is not term]
            return sp.Add(new, *others, evaluate=False)
    return expr


def branch_source(branches) -> str:
    """Source of ``_branch(k, d, x)`` for the given analytic branch expressions."""
    printer = _MathPrinter()
    lines = ["@njit(cache=_CACHE)", "def _branch(k, d, x):"]
    for k, expr in enumerate(branches):
        lines.append(f"    if k == {k}:")
        for d in range(3):
            code = printer.doprint(stabilize(sp.diff(expr, X, d)))
            kw = "if" if d == 0 else "elif" if d == 1 else "else"
            lines.append(f"        {kw} d == {d}:" if d < 2 else "        else:")
            lines.append(f"            return float({code})")
    lines.append("    return math.nan")
    return "\n".join(lines) + "\n"


def cache_dir() -> Path | None:
    """Directory of generated modules: $KERNELSHAPE_CACHE_DIR or ~/.cache/kernelshape."""
    configured = os.environ.get("KERNELSHAPE_CACHE_DIR")
    base = Path(configured) if configured else Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kernelshape"
    for candidate in (base, Path(tempfile.gettempdir()) / f"kernelshape-{os.getuid()}"):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            probe = candidate / f".probe-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            _warn_once(f"kernelshape cannot write its numba cache to {candidate} ({err}); "
                       "falling back")
            continue
        if candidate != base:
            _warn_once(f"kernelshape caches compiled kernels in {candidate} instead of {base}")
        return candidate
    return None


def _warn_once(message):
    if message not in _WARNED:
        _WARNED.append(message)
        warnings.warn(message, CacheWarning, stacklevel=4)


def _version():
    from . import __version__
    return __version__


def jit_module(branches):
    """The compiled module for ``branches`` (a tuple of sympy expressions in x)."""
    body = branch_source(branches)
    template = "\n\n".join(p.read_text() for p in sorted(_KERNELS.glob("*.py")))
    source = ("# generated by kernelshape; do not edit\n"
              "import math\nimport numpy as np\nfrom numba import njit\n\n"
              f"_CACHE = {{cache}}\n\n{body}\n{template}")
    digest = hashlib.sha256(f"{_version()}\n{source}".encode()).hexdigest()[:24]
    key = f"_kernelshape_jit_{digest}"
    with _LOCK:
        if key in _MODULES:
            return _MODULES[key]
        directory = cache_dir()
        if directory is None:
            module = _from_string(key, source.replace("{cache}", "False"))
        else:
            path = directory / f"{key}.py"
            if not path.exists():
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(source.replace("{cache}", "True"))
                os.replace(tmp, path)
            spec = importlib.util.spec_from_file_location(key, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            spec.loader.exec_module(module)
        _MODULES[key] = module
        return module


def _from_string(key, source):
    import types
    module = types.ModuleType(key)
    sys.modules[key] = module
    exec(compile(source, f"<{key}>", "exec"), module.__dict__)  # noqa: S102 - our own source
    return module
