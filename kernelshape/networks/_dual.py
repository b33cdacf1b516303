"""Element-wise layers in bulk: ``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` on arrays.

For centred Gaussians ``(u, v)`` of covariance ``[[k11, k12], [k12, k22]]`` (THEORY.md §8):

.. math:: E[\\phi(u)\\phi(v)] = \\sqrt{Q(k_{11}) Q(k_{22})}\\; C(c; k_{11}, k_{22}),
          \\qquad c = k_{12} / \\sqrt{k_{11} k_{22}},

and by Price's theorem ``E[phi'(u) phi'(v)] = d E[phi(u) phi(v)] / d k12``. Every value
comes from the activation's existing float64 maps (:func:`kernelshape.maps.c_map`, the
two-q map for unequal second moments); nothing here integrates. Three routes, fastest
first:

* every second moment equal (``q``): the one-q C map and its derivative, vectorized over
  all entries, ``E' = Q(q) C'(c; q) / q`` (closed forms: one compiled pass, c, the maps
  and the scaling fused);
* a positively homogeneous activation (ReLU, leaky ReLU and their rescalings): the maps at
  ``q = 1`` scaled by ``sqrt(k11 k22)`` (``phi(s x) = s phi(x)`` for ``s > 0``);
* the erf kind (``g (mu erf(k a x) + e)``): the arcsine kernel in closed form;
* otherwise the two-q cross moments in bulk (the derivative through those of ``phi'``):
  Mehler's series with Hermite coefficients computed once per distinct second moment, or
  the two-dimensional rule once per distinct pair ``(k11, k22)`` where there is no series
  (kinks); entries with ``k11 == k22`` through the one-q maps.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from ..errors import DomainError


def expectations(phi, k11, k22, k12, *, derivative: bool):
    """``(E[phi phi], E[phi' phi'] or None)`` at broadcastable arrays ``k11, k22, k12``.

    Raises:
        DomainError: a second moment is not finite and positive.
    """
    k11, k22, k12 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                          for a in (k11, k22, k12)))
    if k12.size == 0:
        return k12.copy(), (k12.copy() if derivative else None)
    low = min(float(k11.min()), float(k22.min()))
    if not (low > 0 and math.isfinite(float(k11.max())) and math.isfinite(float(k22.max()))):
        raise DomainError(
            f"a nonlinear layer met an input of second moment {low!r}: every position of "
            "every input needs a finite second moment > 0 there")
    q = float(k11.flat[0])
    if np.all(k11 == q) and np.all(k22 == q):
        return one_q_cov(phi, q, k12, derivative)
    if _positively_homogeneous(phi):
        scale = np.sqrt(k11 * k22)
        value, slope = _one_q(phi, 1.0, k12 / scale, derivative)
        return value * scale, slope
    closed = _erf_two_q(phi, k11, k22, k12, derivative)
    if closed is not None:
        return closed
    return _grouped(phi, k11, k22, k12, derivative)


def one_q_cov(phi, q, k12, derivative):
    """``(E[phi phi], E[phi' phi'] or None)`` at covariances ``k12`` of inputs of second
    moment ``q``: closed forms in one compiled pass (no temporaries), else the C maps."""
    from ..maps import _closed64, q_map
    found = _closed64.constants(phi, float(q))
    if found is None:
        return _one_q(phi, q, k12 / math.sqrt(q * q), derivative)
    big_q = q_map(phi, q)
    flat = np.ascontiguousarray(k12, dtype=np.float64).reshape(-1)
    value = np.empty_like(flat)
    slope = np.empty_like(flat) if derivative else flat[:0]
    _closed64.compiled(f"dual_{found[0]}")(found[1], float(q), big_q, flat, value, slope)
    shape = np.shape(k12)
    return value.reshape(shape), (slope.reshape(shape) if derivative else None)


def _one_q(phi, q, c, derivative):
    # maps.q_map validates phi and q (fixed parameters, finite moment); c is clipped here,
    # so the float64 kernel is called directly, without a second pass of checks
    from ..maps import fast, q_map
    big_q = q_map(phi, q)
    c = np.clip(np.asarray(c, dtype=np.float64), -1.0, 1.0)
    value = big_q * fast.c_map(phi, c, q, 0)
    if not derivative:
        return value, None
    return value, big_q * fast.c_map(phi, c, q, 1) / q


def _grouped(phi, k11, k22, k12, derivative):
    """Unequal second moments, no closed form: entries with ``k11 == k22`` through the
    one-q maps (one call per distinct q), the rest through the two-q cross moments in bulk
    (:func:`kernelshape.maps.two_q.cross_moments`: Hermite coefficients once per distinct
    q, not per pair)."""
    from ..maps import _check_moment, two_q
    first, second, flat = k11.ravel(), k22.ravel(), k12.ravel()
    value = np.empty_like(flat)
    slope = np.empty_like(flat) if derivative else None
    dphi = _derivative(phi) if derivative else None
    top = max(float(first.max()), float(second.max()))
    phi._require_fixed("the C map")
    _check_moment(phi, top)
    if derivative:
        _check_moment(dphi, top)
    c = np.clip(flat / np.sqrt(first * second), -1.0, 1.0)
    same = np.flatnonzero(first == second)
    keys = first[same]
    order = np.argsort(keys, kind="stable")
    for idx in np.split(same[order], np.flatnonzero(np.diff(keys[order])) + 1):
        if idx.size:
            v, s = _one_q(phi, float(first[idx[0]]), c[idx], derivative)
            value[idx] = v
            if derivative:
                slope[idx] = s
    rest = np.flatnonzero(first != second)
    if rest.size:
        q1, q2 = first[rest], second[rest]
        value[rest] = two_q.cross_moments(phi, c[rest], q1, q2)
        if derivative:
            slope[rest] = two_q.cross_moments(dphi, c[rest], q1, q2)
    return value.reshape(k12.shape), (slope.reshape(k12.shape) if derivative else None)


def _erf_two_q(phi, k11, k22, k12, derivative):
    """``(E[phi phi], E[phi' phi'])`` in closed form for ``phi = g (mu erf(k a x) + e)``
    (the ERF kind of :mod:`kernelshape.maps._closed64`, no input shift), or None:
    ``g^2 (mu^2 (2/pi) asin(2 K^2 k12 / D) + e^2)`` and
    ``g^2 mu^2 (2/pi) 2 K^2 / sqrt(D^2 - 4 K^4 k12^2)``, ``K = k a``,
    ``D^2 = (1 + 2 K^2 k11)(1 + 2 K^2 k22)`` (Williams 1997). The asin is taken as an
    atan2 of ``2 K^2 k12`` and ``sqrt(D^2 - 4 K^4 k12^2) = sqrt(1 + 2 K^2 (k11 + k22) +
    4 K^4 (k11 k22 - k12^2))``, which keeps its digits where the argument nears 1."""
    found = erf_constants(phi)
    if found is None:
        return None
    amp, big, shift = found
    det = np.maximum(k11 * k22 - k12 * k12, 0.0)  # rounding may leave it a hair below 0
    root = np.sqrt(1.0 + big * (k11 + k22) + big * big * det)
    value = amp * np.arctan2(big * k12, root) + shift
    return value, (amp * big / root if derivative else None)


def erf_constants(phi):
    """``(amp, big, shift) = (g^2 mu^2 2/pi, 2 K^2, g^2 e^2)`` of :func:`_erf_two_q`, or
    None when phi is not of the ERF kind (or shifts its input). phi is bounded, so every
    second moment is finite: no moment check is needed."""
    from ..maps._closed64 import closed_spec
    spec = None if phi.free else closed_spec(phi)
    if spec is None or spec[0] != "erf":
        return None
    a, b, d, g = (float(v) for v in phi.affine_params)
    if b != 0.0:
        return None
    _, mu, k, e0 = spec
    return g * g * mu * mu * 2.0 / math.pi, 2.0 * (k * a) ** 2, (g * (e0 + d)) ** 2


def _derivative(phi):
    """``phi'`` as an activation (kept on ``phi``): Heaviside steps where phi has kinks."""
    cached = phi.__dict__.get("_derivative_activation")
    if cached is None:
        from ..activations import activation
        x = _variable(phi)
        cached = phi.__dict__["_derivative_activation"] = activation(sp.diff(phi.expr, x))
    return cached


def _variable(phi):
    (x,) = [s for s in phi.expr.free_symbols if s.name == "x"]
    return x


def _positively_homogeneous(phi):
    """``phi(s x) = s phi(x)`` for every ``s > 0``: linear through 0 on both sides of 0."""
    cached = phi.__dict__.get("_positively_homogeneous")
    if cached is None:
        cached = False
        if tuple(phi.breakpoints) in ((), (0.0,)):
            x = _variable(phi)
            sides = [phi.expr.subs(x, sign * x) for sign in (1, -1)]
            cached = True
            for side in sides:
                pos = sp.Symbol("t", positive=True)
                expr = sp.piecewise_fold(side.subs(x, pos).rewrite(sp.Piecewise))
                expr = sp.simplify(expr)
                if expr.has(sp.Piecewise) or not expr.is_polynomial(pos) or \
                        sp.degree(sp.expand(expr), pos) > 1 or expr.subs(pos, 0) != 0:
                    cached = False
                    break
        phi.__dict__["_positively_homogeneous"] = cached
    return cached
