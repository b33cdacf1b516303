"""One-dimensional Gaussian expectations of an activation, in float64, split at kinks.

:func:`expect` computes ``E[phi^(d1)(a z + b) phi^(d2)(a z + b) z^p]`` for ``z ~ N(0, 1)``
with composite Gauss-Legendre rules on each interval where phi is analytic (so kinks cost
nothing in accuracy), on a z-range wide enough for the activation's growth, refining the
panel width until a coarser embedded rule agrees. This is the engine under the Q map and
under the DKS/TAT/EOC solvers (their conditions are all such expectations at q = 1).
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import ConvergenceError

__all__ = ["expect", "z_range", "gauss_legendre"]

_FINE, _COARSE = 24, 16
#: Accept when the coarse rule is within this relative distance of the fine one: the fine
#: rule's error is then ~1e-15 relative for integrands analytic on each panel.
_ACCEPT = 1e-10
_MAX_HALVINGS = 9


@functools.lru_cache(maxsize=None)
def gauss_legendre(n: int):
    """Nodes and weights of the n-point Gauss-Legendre rule on [-1, 1] (cached)."""
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


def z_range(act, a: float) -> float:
    """Half-width T of the z-range [-T, T] outside which phi(a z + b)^2 N(z) is negligible."""
    return 12.0 + 2.2 * abs(a) * act.growth


def expect(act, terms, a: float = 1.0, b: float = 0.0, *, rtol: float = _ACCEPT):
    """Gaussian expectations of products of derivatives of ``phi(a z + b)``.

    Args:
        act: a fixed :class:`~kernelshape.activations.Activation` (transformed ones are
            reduced to their base, so no new kernel is compiled per transform).
        terms: sequence of ``(d1, d2, p)``: ``E[phi^(d1)(x) phi^(d2)(x) z^p]`` with
            ``x = a z + b``; ``d = -1`` stands for the factor 1. Derivatives are in x and
            exclude Dirac masses at kinks (callers add those).
        a, b: input scale and shift.
        rtol: acceptance threshold of the embedded error estimate (see module docs).

    Returns:
        ``(values, errors)``: float64 arrays; ``errors`` is the distance to the coarse
        rule, a (pessimistic) bound on the error of ``values``.

    Raises:
        ConvergenceError: when refining the panels does not meet the tolerance.

    Example:
        >>> from kernelshape import activation
        >>> values, errors = expect(activation("relu"), [(0, 0, 0)])   # E[relu(z)^2]
        >>> round(float(values[0]), 15)
        0.5
    """
    terms = [tuple(int(v) for v in t) for t in np.asarray(terms, dtype=np.int64).reshape(-1, 3)]
    if not act.is_affine:
        return _expect_base(act, terms, float(a), float(b), rtol)
    # phi_hat^(d)(x) = g A^d phi^(d)(A x + B) (+ g D when d = 0): expand into base terms.
    A, B, D, G = (float(v) for v in act.affine_params)
    factors = []
    for d1, d2, p in terms:
        parts = [[]]
        for d in (d1, d2):
            if d < 0:
                continue
            options = [(G * A**d, d)] + ([(G * D, -1)] if d == 0 and D != 0.0 else [])
            parts = [prev + [opt] for prev in parts for opt in options]
        combo = []
        for choice in parts:
            coef = 1.0
            ds = []
            for c, d in choice:
                coef *= c
                if d >= 0:
                    ds.append(d)
            ds += [-1] * (2 - len(ds))
            combo.append((coef, (ds[0], ds[1], p)))
        factors.append(combo)
    needed = sorted({key for combo in factors for _, key in combo})
    values, errors = _expect_base(act.base, needed, A * a, A * b + B, rtol)
    index = {key: i for i, key in enumerate(needed)}
    out = np.array([sum(c * values[index[k]] for c, k in combo) for combo in factors])
    err = np.array([sum(abs(c) * errors[index[k]] for c, k in combo) for combo in factors])
    return out, err


def _expect_base(act, terms, a, b, rtol):
    terms = np.ascontiguousarray(np.asarray(terms, dtype=np.int64).reshape(-1, 3))
    lo, hi, br = act._piece_arrays
    mod = act.jit
    gx, gw = gauss_legendre(_FINE)
    kx, kw = gauss_legendre(_COARSE)
    t_max = z_range(act, a)
    h = min(1.0, 1.0 / max(abs(a), 1e-300))
    out = np.empty(terms.shape[0])
    err = np.empty(terms.shape[0])
    absout = np.empty(terms.shape[0])
    for _ in range(_MAX_HALVINGS + 1):
        mod.expect_1d(float(a), float(b), lo, hi, br, terms, -t_max, t_max, h,
                      gx, gw, kx, kw, out, err, absout)
        if np.all(np.isfinite(out)) and np.all(err <= rtol * absout):
            return out.copy(), err.copy()
        if not np.all(np.isfinite(out)):
            break
        h /= 2
    raise ConvergenceError(
        f"Gaussian quadrature of {act.expr} at input scale {a:g}, shift {b:g} did not "
        f"converge (values {out}, error estimates {err})")
