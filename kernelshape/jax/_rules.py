"""One rule per structural primitive: dense, convolution, pooling, reshapes, sums, layer
norm statistics. Element-wise primitives go through :func:`elementwise` and the sympy
rules of :mod:`._elementwise`. Each rule takes ``(tracer, instr, records)`` and returns
the records of the results, or raises :class:`~._records.Refuse`."""

from __future__ import annotations

import math

from .. import networks as _nets
from . import _elementwise as ew
from ._records import Const, Data, LNPart, Param, Refuse, Stat

_ROOTS = ("rsqrt", "sqrt", "pow")


def elementwise(tr, instr, ins):
    from ._trace import scalar, sum_weights
    name = instr.name
    if any(isinstance(r, LNPart) for r in ins) and \
            not any(isinstance(r, (Stat, Param)) for r in ins):
        # a complete layer norm meets an activation: the norm is a layer of its own
        ins = [tr.materialize(ref, instr.where) if isinstance(r, LNPart) else r
               for ref, r in zip(instr.ins, ins, strict=True)]
    if any(isinstance(r, (Stat, LNPart)) for r in ins):
        return [_statistics(tr, instr, ins)]
    datas = [(i, r) for i, r in enumerate(ins) if isinstance(r, Data)]
    params = [r for r in ins if isinstance(r, Param)]
    if params:
        if not datas:
            if len(params) == 1 and len(ins) == 1:
                return [params[0]]          # convert_element_type & co.
            return [Param(params[0].leaf, None)]
        if name in ("add", "sub") and len(ins) == 2 and len(datas) == 1:
            rec = tr.materialize(instr.ins[datas[0][0]], instr.where)
            tr.roles[params[0].leaf] = "zeros"
            return [Data(rec.path, ew.X, instr.outs[0], rec.gain, rec.keys)]
        raise Refuse(f"{'multiplication' if name == 'mul' else name} of data by the "
                     f"parameter {tr.name(params[0].leaf)} (only dense and convolution "
                     "weights, biases and layer norm scales are understood; batch norm?)")
    bases = {r.base for _, r in datas}
    if len(bases) > 1:
        if name in ("add", "sub") and len(datas) == 2:
            recs = [tr.materialize(instr.ins[i], instr.where, split=True) for i, _ in datas]
            weights = sum_weights(tr, recs, (1.0, -1.0 if name == "sub" else 1.0), instr.where)
            return [tr.combine(recs, weights, instr.outs[0], instr.where, "sum")]
        if name == "mul":
            raise Refuse("a product of two values computed from the input (gating or "
                         "attention) is outside the theory")
        raise Refuse(f"{name} of two different branches is outside the theory")
    first = datas[0][1]
    args = [r.expr if isinstance(r, Data) else ew.constant(scalar(r, name)) for r in ins]
    fn = ew.rule(name)
    expr = fn(*args, **({"y": instr.params["y"]} if name == "integer_pow" else {}))
    return [Data(first.path, ew.simplify(expr), first.base, first.gain, first.aliases)]


def _statistics(tr, instr, ins):
    """Element-wise ops among feature statistics, the data they normalize and the layer
    norm's scale and bias."""
    from ._trace import scalar
    name = instr.name
    stats = [r for r in ins if isinstance(r, Stat)]
    parts = [r for r in ins if isinstance(r, LNPart)]
    datas = [(i, r) for i, r in enumerate(ins) if isinstance(r, Data)]
    params = [r for r in ins if isinstance(r, Param)]
    role = "ones" if name in ("mul", "div") else "zeros"
    roles = tuple((p.leaf, role) for p in params)
    for r in ins:
        if isinstance(r, Const):
            scalar(r, name)
    if not parts and not datas:
        keys = {s.key for s in stats}
        if len(keys) > 1:
            raise Refuse("statistics of two different values combined")
        return Stat(stats[0].key, any(s.root for s in stats) or name in _ROOTS,
                    sum((s.roles for s in stats), roles))
    if len(parts) + len(datas) != 1:
        raise Refuse("a layer norm pattern mixing two values")
    if name not in ("sub", "mul", "div", "add"):
        raise Refuse(f"{name} on a partly normalized value (not a layer norm)")
    if datas:
        i, rec = datas[0]
        if stats and not (stats[0].key & rec.keys):
            raise Refuse("normalized by the statistics of another value")
        rec = tr.layer_input(instr.ins[i], instr.where)
        part = LNPart(rec)
    else:
        part = parts[0]
    centered = part.centered or (name == "sub" and bool(stats))
    scaled = part.scaled or (name in ("mul", "div") and any(s.root for s in stats))
    if not stats and not params:
        raise Refuse(f"{name} of a partly normalized value with a constant")
    extra = sum((s.roles for s in stats), roles)
    return LNPart(part.inp, centered, scaled, part.roles + extra)


def _weight(tr, rec, kind, kernel_axes, in_axes, out_axes):
    if rec.perm is None:
        raise Refuse(f"the weight {tr.name(rec.leaf)} is reshaped or broadcast before use")
    if rec.leaf in tr.weights:
        raise Refuse(f"the weight {tr.name(rec.leaf)} is used by two layers (weight sharing)")
    orig = [tuple(rec.perm[a] for a in axes) for axes in (kernel_axes, in_axes, out_axes)]
    tr.weights[rec.leaf] = (kind, *orig)


def _dot_general(tr, instr, ins):
    lhs, rhs = ins
    (lc, rc), (lb, rb) = instr.params["dimension_numbers"]
    if isinstance(lhs, Data) and isinstance(rhs, Data):
        raise Refuse("a product of two values computed from the input (attention or "
                     "gating) is outside the theory")
    if not isinstance(lhs, (Data, LNPart)) or not isinstance(rhs, Param):
        what = "a constant matrix" if isinstance(rhs, Const) or isinstance(lhs, Const) \
            else "the weight on the left (features must stay last)"
        raise Refuse(f"dot_general with {what}")
    ndim = len(tr.shapes[instr.ins[0]])
    if lb or rb or tuple(lc) != (ndim - 1,):
        raise Refuse("only a contraction over the last (feature) axis is a dense layer")
    rdim = len(rhs.perm)
    _weight(tr, rhs, "dense", (), tuple(rc), tuple(a for a in range(rdim) if a not in rc))
    rec = tr.layer_input(instr.ins[0], instr.where)
    path = tr.step(rec.path, _nets.linear(), instr.where, "dense", instr.outs[0])
    return [Data(path, ew.X, instr.outs[0])]


def _pads_kind(in_sizes, window, strides, pads):
    from jax import lax
    pads = [tuple(p) for p in pads]
    if all(p == (0, 0) for p in pads):
        return "valid"
    if pads == [tuple(p) for p in lax.padtype_to_pads(in_sizes, window, strides, "SAME")]:
        return "same"
    return None


def _conv(tr, instr, ins):
    lhs, rhs = ins
    p = instr.params
    if not isinstance(lhs, (Data, LNPart)) or not isinstance(rhs, Param):
        raise Refuse("a convolution must take the data and a weight parameter")
    dn = p["dimension_numbers"]
    if p["feature_group_count"] != 1 or p["batch_group_count"] != 1:
        raise Refuse("grouped (depthwise) convolutions are not supported")
    if any(d != 1 for d in (*p["lhs_dilation"], *p["rhs_dilation"])):
        raise Refuse("dilated or transposed convolutions are not supported")
    if dn.lhs_spec[0] != 0:
        raise Refuse("the batch axis must be the first")
    wshape = tr.shapes[instr.ins[1]]
    window = tuple(wshape[a] for a in dn.rhs_spec[2:])
    in_sizes = tuple(tr.shapes[instr.ins[0]][a] for a in dn.lhs_spec[2:])
    padding = _pads_kind(in_sizes, window, p["window_strides"], p["padding"])
    if padding is None:
        raise Refuse(f"padding {p['padding']} is neither 'SAME' nor 'VALID'")
    _weight(tr, rhs, "conv", tuple(dn.rhs_spec[2:]), (dn.rhs_spec[1],), (dn.rhs_spec[0],))
    init = tr.conv_init if all(k % 2 for k in window) else "gaussian"
    node = _nets.conv(window, padding=padding, stride=tuple(p["window_strides"]), init=init)
    rec = tr.layer_input(instr.ins[0], instr.where)
    path = tr.step(rec.path, node, instr.where, "conv", instr.outs[0])
    return [Data(path, ew.X, instr.outs[0])]


def _reduce_window_sum(tr, instr, ins):
    p = instr.params
    dims, strides = p["window_dimensions"], p["window_strides"]
    if not isinstance(ins[0], (Data, LNPart)):
        raise Refuse("pooling of a non-data value")
    if dims[0] != 1 or dims[-1] != 1 or strides[0] != 1 or strides[-1] != 1:
        raise Refuse("pooling over the batch or the feature axis")
    if any(d != 1 for d in (*p["base_dilation"], *p["window_dilation"])):
        raise Refuse("dilated pooling is not supported")
    window, stride = tuple(dims[1:-1]), tuple(strides[1:-1])
    shape = tr.shapes[instr.ins[0]]
    padding = _pads_kind(shape[1:-1], window, stride, p["padding"][1:-1])
    if padding is None or any(tuple(q) != (0, 0) for q in (p["padding"][0], p["padding"][-1])):
        raise Refuse(f"padding {p['padding']} is neither 'SAME' nor 'VALID'")
    rec = tr.layer_input(instr.ins[0], instr.where)
    path = tr.step(rec.path, _nets.avg_pool(window, stride=stride, padding=padding),
                   instr.where, "avg_pool", instr.outs[0])
    return [Data(path, ew.X, instr.outs[0], float(math.prod(window)))]


def _reduce_sum(tr, instr, ins):
    rec = ins[0]
    axes = tuple(sorted(instr.params["axes"]))
    ndim = len(tr.shapes[instr.ins[0]])
    if 0 in axes:
        raise Refuse("a reduction over the batch axis (batch statistics, as in batch norm) "
                     "is outside the theory")
    if isinstance(rec, Stat):
        return [rec]
    if not isinstance(rec, (Data, LNPart)):
        raise Refuse("a reduction of a non-data value")
    if axes == (ndim - 1,) and isinstance(rec, Data):
        return [Stat(rec.keys)]
    if ndim > 2 and axes == tuple(range(1, ndim - 1)):
        data = tr.layer_input(instr.ins[0], instr.where)
        path = tr.step(data.path, _nets.global_avg_pool(), instr.where, "global_avg_pool",
                       instr.outs[0])
        count = math.prod(tr.shapes[instr.ins[0]][a] for a in axes)
        return [Data(path, ew.X, instr.outs[0], float(count))]
    raise Refuse(f"a sum over axes {axes} (neither the features of a layer norm nor all "
                 "positions of a global average pool)")


def _reshape(tr, instr, ins):
    rec = ins[0]
    old, new = tr.shapes[instr.ins[0]], tr.shapes[instr.outs[0]]
    if isinstance(rec, Param):
        return [Param(rec.leaf, None)]
    if isinstance(rec, Stat):
        return [rec]
    if not isinstance(rec, (Data, LNPart)):
        raise Refuse("a reshape of a non-data value")
    if not new or not old or new[0] != old[0]:
        raise Refuse(f"a reshape from {old} to {new} mixes the batch axis")
    data = tr.layer_input(instr.ins[0], instr.where)
    if len(new) == 2 and len(old) > 2:
        path = tr.step(data.path, _nets.flatten(), instr.where, "flatten", instr.outs[0])
        return [Data(path, ew.X, instr.outs[0])]
    if new[-1] == old[-1]:
        return [Data(data.path, ew.X, instr.outs[0], data.gain, data.keys)]
    raise Refuse(f"a reshape from {old} to {new} that is not a flatten")


def _broadcast(tr, instr, ins):
    rec = ins[0]
    if isinstance(rec, Param):
        return [Param(rec.leaf, None)]
    if isinstance(rec, Stat):
        return [rec]
    raise Refuse("a broadcast of data (expand its features or positions) is not supported")


def _transpose(tr, instr, ins):
    rec, perm = ins[0], tuple(instr.params["permutation"])
    if isinstance(rec, Param):
        return [Param(rec.leaf, None if rec.perm is None else tuple(rec.perm[a] for a in perm))]
    if isinstance(rec, (Data, LNPart)) and perm[0] == 0 and perm[-1] == len(perm) - 1:
        data = tr.layer_input(instr.ins[0], instr.where)
        return [Data(data.path, ew.X, instr.outs[0], data.gain, data.keys)]
    raise Refuse(f"a transpose {perm} that moves the batch or feature axis")


def _concatenate(tr, instr, ins):
    dim = instr.params["dimension"]
    if not all(isinstance(r, (Data, LNPart)) for r in ins):
        raise Refuse("a concatenation with parameters or constants")
    if dim != len(tr.shapes[instr.outs[0]]) - 1:
        raise Refuse("a concatenation along an axis other than the features")
    recs = [tr.layer_input(ref, instr.where) for ref in instr.ins]
    sizes = [tr.shapes[ref][-1] for ref in instr.ins]
    fractions = [s / sum(sizes) for s in sizes]
    return [tr.combine(recs, [math.sqrt(f) for f in fractions], instr.outs[0], instr.where,
                       "concatenate", fractions=fractions)]


RULES = {
    "dot_general": _dot_general,
    "conv_general_dilated": _conv,
    "reduce_window_sum": _reduce_window_sum,
    "reduce_sum": _reduce_sum,
    "reshape": _reshape,
    "squeeze": _reshape,
    "broadcast_in_dim": _broadcast,
    "transpose": _transpose,
    "concatenate": _concatenate,
}

