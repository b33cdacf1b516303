"""Vectorized numpy evaluation of an activation's branches and their first two derivatives.

The solvers evaluate phi, phi', phi'' at a few hundred quadrature nodes per step. Doing it
with numpy on arrays (from the same stabilized sympy printing as the numba kernels, see
:mod:`kernelshape._jit`) keeps numba out of the solve path: a fresh process solves in a
fraction of a second instead of paying numba's start-up, and warm solves stay at a few
hundred microseconds per Newton step. The printed source is kernelshape's own (from the
activation's sympy expression), never user text.
"""

from __future__ import annotations

import math
import types

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)
_gamma = np.frompyfunc(math.gamma, 1, 1)


def _float_ufunc(f):
    def call(x):
        return np.asarray(f(x), dtype=np.float64)
    return call


_MATH = types.SimpleNamespace(
    pi=math.pi, e=math.e, tanh=np.tanh, cosh=np.cosh, sinh=np.sinh, exp=np.exp,
    expm1=np.expm1, log=np.log, log1p=np.log1p, sqrt=np.sqrt, sin=np.sin, cos=np.cos,
    tan=np.tan, atan=np.arctan, asin=np.arcsin, acos=np.arccos, asinh=np.arcsinh,
    acosh=np.arccosh, atanh=np.arctanh, fabs=np.abs, floor=np.floor, ceil=np.ceil,
    erf=_float_ufunc(_erf), erfc=_float_ufunc(_erfc), gamma=_float_ufunc(_gamma),
    atan2=np.arctan2, copysign=np.copysign, pow=np.power,
)


def _softplus(u):
    return np.logaddexp(0.0, u)


def _one_plus_tanh(u):
    # 2 / (1 + exp(-2u)) without overflow warnings turning into NaN for u << 0
    return 2.0 / (1.0 + np.exp(-2.0 * u))


_NAMESPACE = {"math": _MATH, "np": np, "_softplus": _softplus,
              "_one_plus_tanh": _one_plus_tanh, "abs": np.abs, "float": float}


def branch_functions(act):
    """``fns[k][d](x)``: the d-th derivative (d = 0, 1, 2) of base branch k on an array."""
    return tuple(tuple(_single(f, d) for d in range(3)) for f in fused_branches(act))


def _single(f, d):
    return lambda x: f(x)[d]


def fused_branches(act):
    """``fns[k](x) -> (phi, phi', phi'')`` of base branch k on a float64 array, in one pass.

    The three derivatives share their sub-expressions (``sympy.cse`` over the stabilized
    forms), so e.g. gelu's ``tanh`` and ``cosh`` of the same argument are computed once.
    Built once per base activation (a few ms of sympy work, up to ~0.5 s for long
    expressions such as mish) and kept on it.
    """
    base = act.base
    cached = base.__dict__.get("_vector_fused")
    if cached is None:
        import sympy as sp

        from .._jit import _MathPrinter, stabilize
        from ..parsing import X
        printer = _MathPrinter()
        cached = []
        for expr in base.branches:
            derivs = [stabilize(sp.diff(expr, X, d)) for d in range(3)]
            replacements, reduced = sp.cse(derivs, optimizations=None)
            lines = ["def _fused(x):"]
            lines += [f"    {sym} = {printer.doprint(value)}" for sym, value in replacements]
            outs = []
            for i, e in enumerate(reduced):
                # constants (and expressions free of x) broadcast to the node array
                lines.append(f"    _d{i} = {printer.doprint(e)}")
                outs.append(f"_d{i}" if derivs[i].has(X) else f"np.full_like(x, _d{i})")
            lines.append(f"    return ({', '.join(outs)},)")
            namespace = dict(_NAMESPACE)
            # kernelshape's own printing of the sympy expression, never user text
            exec(compile("\n".join(lines), "<kernelshape branch>", "exec"), namespace)  # noqa: S102
            cached.append(namespace["_fused"])
        cached = tuple(cached)
        base.__dict__["_vector_fused"] = cached
    return cached
