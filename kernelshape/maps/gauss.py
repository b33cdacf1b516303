"""One-dimensional Gaussian expectations of an activation, in float64, split at kinks.

:class:`Moments` computes ``E[(phi(x)+s)^e0 phi'(x)^e1 phi''(x)^e2 z^ez]``, ``x = a z + b``,
``z ~ N(0, 1)``, with composite Gauss-Legendre rules on each interval where phi is analytic
(so kinks cost nothing in accuracy), on a z-range wide enough for the activation's growth,
refining the panel width until a coarser embedded rule agrees; the output shift ``s`` is
applied at every node, so centred moments carry no cancellation. It is the engine under
the DKS/TAT/EOC solvers (their conditions are all such expectations at q = 1);
:func:`expect` is its convenience form for products of two derivatives.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import ConvergenceError

__all__ = ["Moments", "expect", "gauss_legendre", "terms_array"]


@functools.lru_cache(maxsize=None)
def gauss_legendre(n: int):
    """Nodes and weights of the n-point Gauss-Legendre rule on [-1, 1] (cached)."""
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


class Moments:
    """Float64 expectations ``E[(phi(x)+s)^e0 phi'(x)^e1 phi''(x)^e2 z^ez]``, ``x = a z + b``.

    Composite Gauss-Legendre (24 points per panel, a 16-point rule alongside as an error
    estimate) on z-intervals where phi is one analytic branch, over ``|z| <= 12 + 2.2 |a|
    growth``; branches evaluated with numpy (:mod:`kernelshape.maps._vector`). The
    output shift ``s`` is applied at every node, so centred moments carry no cancellation.
    ``act`` may itself be a transformed activation ``G (phi0(A x + B) + D)``: the branches of
    ``phi0`` are used and the factors folded in.
    """

    _FINE, _COARSE = 24, 16

    def __init__(self, act):
        from ._vector import branch_functions
        self.act = act
        self.A, self.B, self.D, self.G = (float(v) for v in act.affine_params)
        base = act.base
        self.pieces = [(p.lo, p.hi, p.branch) for p in base.pieces]
        self.fns = branch_functions(act)
        self.growth = base.growth
        self.rules = (gauss_legendre(self._FINE), gauss_legendre(self._COARSE))
        self.H = 3.0

    def _integrate(self, terms, a0, b0, s0, rule):
        gx, gw = rule
        t_max = 12.0 + 2.2 * abs(a0) * self.growth
        h = min(self.H, self.H / max(abs(a0), 1e-300))
        zs, ws, f0, f1, f2 = [], [], [], [], []
        need2 = bool(np.any(terms[:, 2]))
        for lo, hi, k in self.pieces:
            z_lo, z_hi = sorted(((lo - b0) / a0, (hi - b0) / a0))
            z_lo, z_hi = max(z_lo, -t_max), min(z_hi, t_max)
            if not z_hi > z_lo:
                continue
            n = max(1, math.ceil((z_hi - z_lo) / h))
            width = (z_hi - z_lo) / n
            mids = z_lo + width * (np.arange(n) + 0.5)
            z = (mids[:, None] + (0.5 * width) * gx[None, :]).ravel()
            w = np.tile(gw * (0.5 * width), n) * np.exp(-0.5 * z * z) * _INV_SQRT_2PI
            x = a0 * z + b0
            fk = self.fns[k]
            zs.append(z)
            ws.append(w)
            f0.append(fk[0](x) + s0)
            f1.append(fk[1](x))
            if need2:
                f2.append(fk[2](x))
        z, w = np.concatenate(zs), np.concatenate(ws)
        p0 = _powers(np.concatenate(f0), terms[:, 0].max())
        p1 = _powers(np.concatenate(f1), terms[:, 1].max())
        p2 = _powers(np.concatenate(f2) if need2 else np.ones_like(z), terms[:, 2].max())
        pz = _powers(z, terms[:, 3].max())
        v = p0[terms[:, 0]] * p1[terms[:, 1]] * p2[terms[:, 2]] * pz[terms[:, 3]]
        return v @ w, np.abs(v) @ w

    def __call__(self, terms, a, b, s=0.0, *, check=True, rtol=1e-10):
        """Values for ``terms`` (an int64 array of rows ``(e0, e1, e2, ez)``).

        Panels are ``H / |input scale|`` wide (at most ``H``). With ``check``, ``H`` (from
        3) is halved until the 16-point rule agrees with the 24-point one to ``rtol`` times
        the integral of the absolute integrand (ConvergenceError after ten halvings); the
        accepted ``H`` is kept for later calls on this object.
        """
        A, B, D, G = self.A, self.B, self.D, self.G
        a0, b0 = A * a, A * b + B
        s0 = D + s / G
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for _ in range(10):
                out, absout = self._integrate(terms, a0, b0, s0, self.rules[0])
                if not check or not np.all(np.isfinite(out)):
                    break
                coarse, _ = self._integrate(terms, a0, b0, s0, self.rules[1])
                if np.all(np.abs(out - coarse) <= rtol * absout + 1e-300):
                    break
                self.H /= 2
            else:
                raise ConvergenceError(
                    f"Gaussian quadrature for {self.act.expr} at input_scale={a!r}, "
                    f"input_shift={b!r} did not converge")
        if (A, G) != (1.0, 1.0):
            factor = (G ** (terms[:, 0] + terms[:, 1] + terms[:, 2])
                      * A ** (terms[:, 1] + 2 * terms[:, 2]))
            out = out * factor
        return out


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _powers(v, emax):
    """Rows ``v^0, v^1, ..., v^emax`` as a 2-D array."""
    out = np.empty((int(emax) + 1, v.shape[0]))
    out[0] = 1.0
    for e in range(1, int(emax) + 1):
        out[e] = out[e - 1] * v
    return out


def terms_array(rows):
    """Rows ``(e0, e1, e2, ez)`` as an int64 array, plus a row -> index map."""
    arr = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).reshape(-1, 4))
    return arr, {tuple(int(v) for v in row): i for i, row in enumerate(arr)}



def expect(act, terms, a: float = 1.0, b: float = 0.0):
    """Gaussian expectations of products of derivatives of ``phi(a z + b)``.

    Args:
        act: a fixed :class:`~kernelshape.activations.Activation` (transformed ones are
            reduced to their base, output shift applied at every node).
        terms: sequence of ``(d1, d2, p)``: ``E[phi^(d1)(x) phi^(d2)(x) z^p]`` with
            ``x = a z + b``; ``d = -1`` stands for the factor 1. Derivatives are in x and
            exclude Dirac masses at kinks (callers add those).
        a, b: input scale and shift.

    Returns:
        float64 array, about 1e-15 relative to ``E[|integrand|]`` (the embedded 16-point
        rule agrees with the 24-point one to 1e-10 of it; ConvergenceError otherwise).

    Example:
        >>> from kernelshape import activation
        >>> round(float(expect(activation("relu"), [(0, 0, 0)])[0]), 15)   # E[relu(z)^2]
        0.5
    """
    rows = []
    for d1, d2, p in np.asarray(terms, dtype=np.int64).reshape(-1, 3):
        counts = [0, 0, 0]
        for d in (d1, d2):
            if d >= 0:
                counts[int(d)] += 1
        rows.append((*counts, int(p)))
    moments = act.__dict__.get("_moments")
    if moments is None:
        moments = act.__dict__["_moments"] = Moments(act)
    return moments(terms_array(rows)[0], float(a), float(b))
