"""Network C maps through closed forms: every layer in one compiled loop over the values of c.

Along the scalar path (THEORY.md §1-2) the second moments ``q`` of a plain chain do not
depend on ``c``: they are computed once per ``(network, phi, q)`` (from the closed-form Q
maps) and each layer becomes a row of constants. Dense and conv layers map
``c -> (w^2 q c + b^2) / q_out`` (derivatives times ``w^2 q / q_out``), layer norm and pooling
keep ``c``, nonlinear layers apply the closed-form C map (:mod:`kernelshape.maps._closed64`);
C' and C'' follow by the chain rule inside the loop, with no array per layer. Networks with
sums, or a nonlinear layer whose activation has no closed form, take the general walk.
"""

from __future__ import annotations

import math

import numpy as np

from ..maps import _closed64
from ._walk import _LAYER, _program

#: Plans kept per network (keyed by activation and q).
_PLANS = 16


def closed_c_map(net, phi, c, q, order):
    """``C_f^(order)`` at the (checked) array ``c`` through closed forms, or None.

    Example:
        >>> import numpy as np
        >>> from kernelshape import activation, chain, linear, nonlinear
        >>> net = chain(linear(sigma_w=2.0), nonlinear())
        >>> closed_c_map(net, activation("relu"), np.array([1.0]), 1.0, 1)   # C'(1) = 1
        array([1.])
    """
    plan = _plan(net, phi, q)
    if plan is None:
        return None
    flat = np.ascontiguousarray(c, dtype=np.float64).reshape(-1)
    x = np.empty_like(flat)
    d1 = np.empty_like(flat) if order > 0 else x[:0]
    d2 = np.empty_like(flat) if order > 1 else x[:0]
    if _closed64.compiled("start")(flat, order, x, d1, d2):
        return None   # a bad c: the general walk reports it
    affine = _closed64.compiled("affine")
    for step in plan:
        if step[0] is None:
            affine(step[1], step[2], step[3], order, x, d1, d2)
        else:
            step[0](step[1], order, x, d1, d2)
    return (x, d1, d2)[order].reshape(np.shape(c))


def _plan(net, phi, q):
    """Steps ``(None, a, b, m)`` (dense: ``c -> (a c + b) / m``) and ``(layer, row)``
    (nonlinear, a compiled closed form), kept per (activation, q) on the network."""
    plans = net.__dict__.setdefault("_closed_plans", {})
    key = (id(phi), q)
    hit = plans.get(key)
    if hit is not None and hit[0] is phi:
        return hit[1]
    if len(plans) >= _PLANS:
        plans.clear()
    plan = _build(net, phi, q)
    plans[key] = (phi, plan)
    return plan


def _build(net, phi, q):
    from ._scalar import _is_identity, _phi_of
    steps = []
    for op, node in _program(net):
        if op != _LAYER:
            return None   # sums: the general walk
        role = node._scalar_role
        if role == "affine":
            if _is_identity(node):
                continue
            w2, b2 = node.sigma_w ** 2, node.sigma_b ** 2
            q_out = w2 * q + b2
            steps.append((None, w2 * q, b2, q_out))
            q = q_out
        elif role == "normalize":
            q = 1.0
        elif role == "nonlinear":
            found = _closed64.constants(_phi_of(node, phi), float(q))
            if found is None:
                return None
            kind, row, q = found
            steps.append((_closed64.compiled(f"layer_{kind}"), row))
        elif role != "average":
            return None
        if not (q > 0.0 and math.isfinite(q)):
            return None   # the general walk reports it
    return tuple(steps)
