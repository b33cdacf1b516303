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
    """``C_f^(order)`` at the (checked) array ``c`` through closed forms, or None."""
    plan = _plan(net, phi, q)
    if plan is None:
        return None
    ops, kinds, rows, scale, shift, norm = plan
    flat = np.ascontiguousarray(c, dtype=np.float64).reshape(-1)
    outs = [np.empty_like(flat) if k <= order else np.empty(0) for k in range(3)]
    _closed64.kernels().net_map(ops, kinds, rows, scale, shift, norm, order, flat, *outs)
    return outs[order].reshape(np.shape(c))


def _plan(net, phi, q):
    plans = net.__dict__.setdefault("_closed_plans", {})
    key = (phi, q)
    if key in plans:
        return plans[key]
    if len(plans) >= _PLANS:
        plans.clear()
    plans[key] = plan = _build(net, phi, q)
    return plan


def _build(net, phi, q):
    from ._scalar import _is_identity, _phi_of
    ops, kinds, rows, scale, shift, norm = [], [], [], [], [], []
    for op, node in _program(net):
        if op != _LAYER:
            return None   # sums: the general walk
        role = node._scalar_role
        if role == "affine":
            if _is_identity(node):
                continue
            w2, b2 = node.sigma_w ** 2, node.sigma_b ** 2
            q_out = w2 * q + b2
            row = np.zeros(_closed64.WIDTH)
            ops.append(0)
            kinds.append(0)
            rows.append(row)
            scale.append(w2 * q)
            shift.append(b2)
            norm.append(q_out)
            q = q_out
        elif role == "normalize":
            q = 1.0
        elif role == "nonlinear":
            found = _closed64.constants(_phi_of(node, phi), float(q))
            if found is None:
                return None
            kind, row, q_out = found
            ops.append(1)
            kinds.append(kind)
            rows.append(row)
            scale.append(0.0)
            shift.append(0.0)
            norm.append(1.0)
            q = q_out
        elif role != "average":
            return None
        if not (q > 0.0 and math.isfinite(q)):
            return None   # the general walk reports it
    if not ops:
        rows.append(np.zeros(_closed64.WIDTH))
    return (np.array(ops, dtype=np.int64), np.array(kinds, dtype=np.int64),
            np.array(rows, dtype=np.float64).reshape(-1, _closed64.WIDTH),
            np.array(scale, dtype=np.float64), np.array(shift, dtype=np.float64),
            np.array(norm, dtype=np.float64))
