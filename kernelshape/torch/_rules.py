"""The rule tables of the model reader: one function per module class, function and method.

Each rule takes the reader (``_trace._Reader``, passed in: this module does not import it) and the fx node (and the module for
module calls) and returns the node's value: a layer spec applied to its input, a weighted
term, a pending sum, a constant, or the reader's ``refuse`` (a problem recorded with the
node's path, the input passed on). Specs are tuples ``(kind, ...)`` that :mod:`._derive`
turns into kernelshape layers.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from . import _vocab
from ._values import _Const, _shape


# -- modules -----------------------------------------------------------------------------------
def _linear(r, node, m):
    r.layers.append((str(node.target), m, "linear"))
    return r.layer(node, ("linear", m), ends="self")


def _conv(r, node, m):
    padding = _conv_padding(m)
    bad = []
    if m.groups != 1:
        bad.append(f"groups={m.groups}")
    if any(d != 1 for d in m.dilation):
        bad.append(f"dilation={tuple(m.dilation)}")
    if m.padding_mode != "zeros":
        bad.append(f"padding_mode={m.padding_mode!r}")
    if padding is None:
        bad.append(f"padding={m.padding} for kernel_size={tuple(m.kernel_size)} (neither "
                   "'same' nor 'valid')")
    if bad:
        return r.refuse(node, f"a convolution with {', '.join(bad)}: kernelshape reads "
                        "plain convolutions (one group, no dilation, zero padding)")
    r.layers.append((str(node.target), m, "conv"))
    return r.layer(node, ("conv", m, padding), ends="self")


def _conv_padding(m):
    k, p = tuple(m.kernel_size), m.padding
    if isinstance(p, str):
        return p
    p = tuple(p)
    if all(q == 0 for q in p):
        return "same" if all(k_ == 1 for k_ in k) else "valid"
    if all(k_ % 2 == 1 and q == (k_ - 1) // 2 for k_, q in zip(k, p)):
        return "same"
    return None


def _act_module(r, node, m):
    return r.activation(node, _vocab.module_kind(m))


def _transformed(r, node, m):
    key = ("transformed", m.kind, tuple(sorted(m.params.items())), m.input_scale,
           m.input_shift, m.output_shift, m.output_scale)
    r.act_builders.setdefault(key, m.activation)
    return r._activation(node, key)


def _pln(r, node, m):
    return r.layer(node, ("pln",), ends=None)


def _avg_pool_spec(r, node, kernel, stride, padding, ceil_mode):
    rank = len(_shape(node)) - 2
    kernel = _sizes(kernel, rank)
    stride = kernel if stride is None or stride == [] else _sizes(stride, rank)
    padding = _sizes(padding, rank)
    if ceil_mode:
        return r.refuse(node, "average pooling with ceil_mode=True (partial windows)")
    if any(p != 0 for p in padding):
        if not all(k % 2 == 1 and p == (k - 1) // 2 for k, p in zip(kernel, padding)):
            return r.refuse(node, f"average pooling with padding={padding}: neither 'same' "
                            "nor 'valid'")
        pad = "same"
    else:
        pad = "valid"
    one = (lambda t: t[0]) if rank == 1 else tuple
    return r.layer(node, ("avg_pool", one(kernel), one(stride), pad))


def _avg_pool_module(r, node, m):
    return _avg_pool_spec(r, node, m.kernel_size, m.stride, m.padding, m.ceil_mode)


def _adaptive(r, node, output_size):
    in_shape = _shape(node.args[0]) if hasattr(node.args[0], "meta") else None
    rank = len(in_shape) - 2
    out = _sizes(output_size, rank)
    spatial = in_shape[2:]
    out = tuple(s if o is None else o for o, s in zip(out, spatial))
    if all(o == 1 for o in out):
        return r.layer(node, ("global_avg_pool",))
    if any(s % o for s, o in zip(spatial, out)):
        return r.refuse(node, f"adaptive average pooling from {spatial} to {out}: windows of "
                        "unequal sizes")
    window = tuple(s // o for s, o in zip(spatial, out))
    return r.layer(node, ("avg_pool", window if rank > 1 else window[0],
                          window if rank > 1 else window[0], "valid"))


def _adaptive_module(r, node, m):
    return _adaptive(r, node, m.output_size)


def _layer_norm(r, node, m):
    shape = _shape(node.args[0])
    if len(m.normalized_shape) != len(shape) - 1:
        return r.refuse(node, f"layer norm over {tuple(m.normalized_shape)} of an input "
                        f"{shape}: kernelshape reads layer norm over all features of a "
                        "(batch, features) input")
    if m.elementwise_affine:
        r.layers.append((str(node.target), m, "layer_norm"))
    return r.layer(node, ("layer_norm", m))


def _flatten_module(r, node, m):
    return _reshaped(r, node)


def _pass_module(r, node, m):
    return r.passed(node)


def _refusal(reason):
    def rule(r, node, m=None):
        return r.refuse(node, reason)
    return rule


_BN = ("batch normalization (batch statistics): remove it; DKS/TAT replace normalization "
       "layers")
_MAXPOOL = "max pooling: no kernel rule; use average pooling"

MODULE_RULES = {
    nn.Linear: _linear,
    nn.Conv1d: _conv, nn.Conv2d: _conv, nn.Conv3d: _conv,
    nn.AvgPool1d: _avg_pool_module, nn.AvgPool2d: _avg_pool_module,
    nn.AvgPool3d: _avg_pool_module,
    nn.AdaptiveAvgPool1d: _adaptive_module, nn.AdaptiveAvgPool2d: _adaptive_module,
    nn.AdaptiveAvgPool3d: _adaptive_module,
    nn.Flatten: _flatten_module,
    nn.LayerNorm: _layer_norm,
    nn.Identity: _pass_module, nn.Dropout: _pass_module, nn.Dropout1d: _pass_module,
    nn.Dropout2d: _pass_module, nn.Dropout3d: _pass_module,
    _vocab.TransformedActivation: _transformed,
    _vocab.PLN: _pln,
    nn.modules.batchnorm._BatchNorm: _refusal(_BN),
    nn.MaxPool1d: _refusal(_MAXPOOL), nn.MaxPool2d: _refusal(_MAXPOOL),
    nn.MaxPool3d: _refusal(_MAXPOOL), nn.AdaptiveMaxPool1d: _refusal(_MAXPOOL),
    nn.AdaptiveMaxPool2d: _refusal(_MAXPOOL), nn.AdaptiveMaxPool3d: _refusal(_MAXPOOL),
    **{cls: _act_module for cls in _vocab.MODULE_KINDS},
}


# -- functions and methods -----------------------------------------------------------------
def _arg(node, i, name, default):
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[i] if len(node.args) > i else default


def _add(r, node):
    a, b = node.args[0], node.args[1]
    alpha = r.const(_arg(node, 2, "alpha", 1.0))
    return r.add(node, a, b, float(alpha))


def _sub(r, node):
    alpha = r.const(_arg(node, 2, "alpha", 1.0))
    return r.add(node, node.args[0], node.args[1], -float(alpha))


def _mul(r, node):
    a, b = node.args[0], node.args[1]
    ca, cb = r.const(a), r.const(b)
    if ca is not None and cb is not None:
        return _Const(ca * cb)
    for c, t in ((ca, b), (cb, a)):
        if isinstance(c, (int, float)):
            return r.scale(node, t, float(c))
    return r.refuse(node, "a product of two activations (gating, attention): the kernel "
                    "theory covers weighted sums of independent branches, not products")


def _div(r, node):
    a, b = node.args[0], node.args[1]
    ca, cb = r.const(a), r.const(b)
    if ca is not None and cb is not None:
        return _Const(ca / cb)
    if isinstance(cb, (int, float)) and cb != 0:
        return r.scale(node, a, 1.0 / float(cb))
    return r.refuse(node, "a division by a tensor: not a layer kernelshape reads")


def _neg(r, node):
    return r.scale(node, node.args[0], -1.0)


def _product(r, node):
    return r.refuse(node, "a product of two activations (matmul, attention): the kernel theory "
                    "covers weighted sums of independent branches, not products")


def _cat(r, node):
    parts = list(_arg(node, 0, "tensors", ()))
    dim = r.const(_arg(node, 1, "dim", 0))
    shapes = [_shape(p) for p in parts]
    vals = [r.tensor(p) for p in parts]
    if any(v is None for v in vals):
        return r.refuse(node, "concatenating a constant")
    if dim % len(shapes[0]) != 1:
        return r.refuse(node, f"concatenation along dim {dim}: kernelshape reads "
                        "concatenation along channels (dim 1)")
    channels = [s[1] for s in shapes]
    total = sum(channels)
    return r._joined(node, "cat", vals, [c / total for c in channels])


def _reshaped(r, node):
    src, out = _shape(node.args[0]), _shape(node)
    if src == out:
        return r.passed(node)
    positions = 1
    for s in src[2:]:
        positions *= s
    if len(out) == 2 and out[0] == src[0]:
        if positions == 1:
            return r.passed(node)
        return r.layer(node, ("flatten",))
    return r.refuse(node, f"a reshape from {src} to {out}: kernelshape reads reshapes that "
                    "flatten to (batch, features)")


def _mean(r, node):
    src = _shape(node.args[0])
    dims = r.const(_arg(node, 1, "dim", None))
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    if dims and sorted(d % len(src) for d in dims) == list(range(2, len(src))):
        return r.layer(node, ("global_avg_pool",))
    return r.refuse(node, f"a mean over dims {dims} of a {src} tensor: kernelshape reads the "
                    "mean over all spatial axes (global average pooling)")


def _getattr(r, node):
    value = r.values.get(node.args[0])
    if node.args[1] in ("shape", "ndim") and not isinstance(value, _Const):
        shape = _shape(node.args[0])
        return _Const(shape if node.args[1] == "shape" else len(shape))
    return r.refuse(node, f"the tensor attribute .{node.args[1]}")


def _getitem(r, node):
    value = r.values.get(node.args[0])
    if isinstance(value, _Const) and value.value is not None:
        return _Const(value.value[node.args[1]])
    return r.refuse(node, "indexing a tensor: kernelshape reads whole tensors")


def _size(r, node):
    shape = _shape(node.args[0])
    dim = _arg(node, 1, "dim", None)
    return _Const(shape if dim is None else shape[dim])


def _dim(r, node):
    return _Const(len(_shape(node.args[0])))


def _pass(r, node):
    return r.passed(node)


def _avg_pool_fn(r, node):
    kernel = _arg(node, 1, "kernel_size", None)
    return _avg_pool_spec(r, node, kernel, _arg(node, 2, "stride", None),
                          _arg(node, 3, "padding", 0), _arg(node, 4, "ceil_mode", False))


def _adaptive_fn(r, node):
    return _adaptive(r, node, _arg(node, 1, "output_size", None))


_PRODUCTS = (torch.matmul, operator.matmul, torch.bmm, torch.einsum,
             F.scaled_dot_product_attention)

FUNCTION_RULES = {
    operator.add: _add, operator.iadd: _add, torch.add: _add,
    operator.sub: _sub, operator.isub: _sub, torch.sub: _sub,
    operator.mul: _mul, operator.imul: _mul, torch.mul: _mul,
    operator.truediv: _div, torch.div: _div, operator.neg: _neg, torch.neg: _neg,
    torch.cat: _cat, torch.concat: _cat, torch.concatenate: _cat,
    torch.flatten: _reshaped, torch.reshape: _reshaped,
    torch.mean: _mean,
    F.avg_pool1d: _avg_pool_fn, F.avg_pool2d: _avg_pool_fn, F.avg_pool3d: _avg_pool_fn,
    F.adaptive_avg_pool1d: _adaptive_fn, F.adaptive_avg_pool2d: _adaptive_fn,
    F.adaptive_avg_pool3d: _adaptive_fn,
    F.dropout: _pass, F.dropout1d: _pass, F.dropout2d: _pass, F.dropout3d: _pass,
    getattr: _getattr, operator.getitem: _getitem,
    F.batch_norm: _refusal(_BN),
    F.max_pool1d: _refusal(_MAXPOOL), F.max_pool2d: _refusal(_MAXPOOL),
    F.max_pool3d: _refusal(_MAXPOOL), torch.max_pool2d: _refusal(_MAXPOOL),
    **{f: _product for f in _PRODUCTS},
}

METHOD_RULES = {
    "add": _add, "add_": _add, "sub": _sub, "mul": _mul, "mul_": _mul, "div": _div,
    "neg": _neg,
    "view": _reshaped, "reshape": _reshaped, "flatten": _reshaped,
    "mean": _mean, "size": _size, "dim": _dim,
    "contiguous": _pass, "clone": _pass,
    "matmul": _product, "bmm": _product,
}


def _sizes(value, rank):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
