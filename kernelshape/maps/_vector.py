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
    base = act.base
    cached = base.__dict__.get("_vector_branches")
    if cached is None:
        import sympy as sp

        from .._jit import _MathPrinter, stabilize
        from ..parsing import X
        printer = _MathPrinter()
        cached = []
        for expr in base.branches:
            fns = []
            for d in range(3):
                code = printer.doprint(stabilize(sp.diff(expr, X, d)))
                body = compile(f"lambda x: ({code}) + 0.0 * x", "<kernelshape branch>", "eval")
                fns.append(eval(body, dict(_NAMESPACE)))
            cached.append(tuple(fns))
        cached = tuple(cached)
        base.__dict__["_vector_branches"] = cached
    return cached
