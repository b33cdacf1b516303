"""From the reader's values to a kernelshape network and per-layer predictions.

The network is a tree: every value hangs from its parent (the value it is computed from;
for a sum or a concatenation, the fork where its terms part), so a value relative to an
ancestor is the chain of the layers in between. A sum becomes a normalized sum of those
chains (:func:`kernelshape.networks.normalized_sum`'s rule), a concatenation the same with
the channel fractions as squared weights (``parallel``). Computations shared by several
branches appear once in each: at infinite width the maps are the same.

Predictions walk the graph itself, value by value, with the network package's own scalar
rules (``_scalar.MapRules``): two inputs at second moment ``q0`` and correlation ``c0``.
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import KernelShapeError, ModelError
from ..networks import (
    avg_pool,
    conv,
    flatten,
    global_avg_pool,
    heads,
    layer_norm,
    linear,
    nonlinear,
)
from ..networks._layers import _SKIP
from ..networks._nodes import _Chain, _Sum
from ..networks._scalar import MapRules
from ._values import _lca, node_path

WEIGHTS = ("shaped", "model")


@dataclasses.dataclass(frozen=True)
class Row:
    """One predicted layer output.

    Attributes:
        path: the module path (``"layer1.0.relu"``), or ``"scope:node"`` for a function
            call inside the module ``scope`` (``"layer1.0:add_3"``), or the node's name
            at the top level.
        kind: ``"activation"``, ``"sum"``, ``"cat"`` or ``"output"`` (the model's output).
        q: predicted second moment ``mean(h^2)`` of the output (over features and
            positions) for an input of second moment ``q0``.
        c: predicted correlation ``<h, h'> / (|h| |h'|)`` of the outputs of two inputs at
            second moment ``q0`` with correlation ``c0``.
        node: the torch.fx node name of this output in the traced graph of the model the
            row describes (``torch.fx.symbolic_trace`` names, stable for a given model).
        detail: the activation or the sum's weights, for reading; says why when ``q``
            and ``c`` are NaN (no prediction: an activation's input upstream is not a
            Gaussian pre-activation, as after a post-activation ResNet V1 identity skip).
    """

    path: str
    kind: str
    q: float
    c: float
    node: str
    detail: str = ""


class _Context:
    """How specs become layers: activations bound by ``bind(key)``, dense and conv layers as
    shaped (``weights="shaped"``: q-preserving, zero bias) or as the model holds them."""

    def __init__(self, reading, bind, weights):
        self.reading, self.bind, self.weights = reading, bind, weights
        self.memo = {}

    def leaves(self, spec):
        kind = spec[0]
        if kind == "act":
            return [nonlinear(self.bind(spec[1]))]
        if kind == "linear":
            return [linear(*self._scales(spec[1], spec[1].in_features))]
        if kind == "conv":
            m, padding = spec[1], spec[2]
            sizes = tuple(m.kernel_size)
            fan_in = m.in_channels * math.prod(sizes)
            sw, sb = self._scales(m, fan_in)
            odd = all(k % 2 == 1 for k in sizes)
            return [conv(sizes if len(sizes) > 1 else sizes[0], sigma_w=sw, sigma_b=sb,
                         padding=padding, stride=tuple(m.stride) if len(sizes) > 1
                         else m.stride[0], init="delta" if odd else "gaussian")]
        if kind == "avg_pool":
            return [avg_pool(spec[1], stride=spec[2], padding=spec[3])]
        if kind == "global_avg_pool":
            return [global_avg_pool()]
        if kind == "flatten":
            return [flatten()]
        if kind == "layer_norm":
            m = spec[1]
            if self.weights == "model" and m.elementwise_affine:
                g2 = float((m.weight.detach().double() ** 2).mean())
                b2 = float((m.bias.detach().double() ** 2).mean()) if m.bias is not None else 0.
                return [layer_norm(), linear(math.sqrt(g2), math.sqrt(b2))]
            return [layer_norm()]
        if kind == "scale":
            return [linear(abs(spec[1]))]
        return []   # pln: the input normalization, outside the network

    def _scales(self, m, fan_in):
        if self.weights == "shaped":
            return 1.0, 0.0
        w2 = float((m.weight.detach().double() ** 2).mean()) * fan_in
        b2 = float((m.bias.detach().double() ** 2).mean()) if m.bias is not None else 0.0
        return math.sqrt(w2), math.sqrt(b2)

    def local(self, val):
        """``val`` as a network on its parent's output."""
        hit = self.memo.get(id(val))
        if hit is not None:
            return hit
        if val.kind == "layer":
            out = _as_chain(self.leaves(val.spec))
        else:
            branches = [_as_chain(self.segment(val.parent, t)) for t, _ in val.terms]
            squares = tuple(s for _, s in val.terms)
            out = _Sum(branches, squares, "parallel" if val.kind == "cat" else "sum")
        self.memo[id(val)] = out
        return out

    def segment(self, start, end):
        """The layers from ``start`` (excluded) to ``end`` (included), a list."""
        items, v = [], end
        while v is not start:
            if v is None:
                raise ModelError("internal: a value outside its fork")
            items.append(self.local(v))
            v = v.parent
        items.reverse()
        return [x for item in items for x in (item.layers if _plain(item) else (item,))]

    def network(self):
        r = self.reading
        start = r.inputs[0]
        outs = r.outputs
        if len(outs) == 1:
            return _as_chain(self.segment(start, outs[0]), top=True)
        fork = _lca(outs)
        trunk = _as_chain(self.segment(start, fork), top=True)
        return heads(trunk, [_as_chain(self.segment(fork, o), top=True) for o in outs])


def _plain(item):
    return type(item) is _Chain and item.label is None


def _as_chain(items, top=False):
    items = list(items)
    if not items:
        return _Chain([_SKIP]) if top else _SKIP
    if len(items) == 1 and not top:
        return items[0]
    return _Chain(items)


def rows(reading, bind, weights, q0, c0):
    """Predicted (q, c) at every activation, sum, concatenation and output."""
    ctx = _Context(reading, bind, weights)
    rules = MapRules(None, 0)
    states, gaussian, valid = {}, {}, {}
    out = []
    for val in reading.vals:
        gaussian[id(val)], valid[id(val)] = _validity(val, gaussian, valid)
        if val.kind == "input":
            state = (q0, None, None, c0, None, None)
        elif val.kind == "layer":
            state = states[id(val.parent)]
            if val.spec[0] == "pln":
                state = (1.0, None, None, state[3], None, None)
            for leaf in ctx.leaves(val.spec):
                try:
                    state = rules.leaf(leaf, state)
                except KernelShapeError as err:
                    raise ModelError(f"{node_path(val.node)}: {err}",
                                     [(node_path(val.node), str(err))]) from err
        else:
            state = rules.combine(_Squares(val.terms), [states[id(t)] for t, _ in val.terms])
        states[id(val)] = state
        kind = "activation" if val.kind == "layer" and val.spec[0] == "act" else val.kind
        if kind in ("activation", "sum", "cat"):
            out.append(_row(val, kind, state, valid[id(val)]))
    for val in reading.outputs:
        out.append(_row(val, "output", states[id(val)], valid[id(val)]))
    return tuple(out)


#: The ``detail`` of a row without a prediction (NaN q and c); :data:`NOT_GAUSSIAN` says why.
NO_PREDICTION = "no prediction: an activation upstream has a non-Gaussian input"

#: Why a row holds no prediction.
NOT_GAUSSIAN = ("no prediction: an activation upstream takes an input that is not a "
                "Gaussian pre-activation (an activation's output reaches it without a linear "
                "or conv layer, as through a post-activation ResNet V1 identity skip)")


def _validity(val, gaussian, valid):
    """(is a Gaussian pre-activation, predictions hold) for a value.

    The maps of an activation hold for zero-mean Gaussian inputs: outputs of dense and conv
    layers (the network input is taken as given), their averages and weighted sums. An
    activation's output summed into the next activation's input (``act(w x + v f(x))``
    with ``x`` an activation's output) is not one: its q comes out far from the map's
    (measured: 20-70% at width 256 on dense V1 blocks), so such rows and everything
    after them are left without a prediction.
    """
    if val.kind == "input":
        return True, True
    if val.kind == "layer":
        p = id(val.parent)
        kind = val.spec[0]
        if kind == "act":
            return False, valid[p] and gaussian[p]
        return (True if kind in ("linear", "conv") else gaussian[p]), valid[p]
    ids = [id(t) for t, _ in val.terms]
    return all(gaussian[i] for i in ids), all(valid[i] for i in ids)


class _Squares:
    def __init__(self, terms):
        self.squares = tuple(s for _, s in terms)


def _row(val, kind, state, ok):
    if kind == "activation":
        key = val.spec[1]
        detail = key[1] if key[0] == "transformed" else key[0]
        detail = f"{detail}" + (f" {dict(key[1])}" if key[0] != "transformed" and key[1]
                                else "")
    elif kind in ("sum", "cat"):
        detail = "weights " + ", ".join(f"{math.sqrt(s):.4g}" for _, s in val.terms)
    else:
        detail = ""
    if not ok:
        return Row(node_path(val.node), kind, math.nan, math.nan, val.node.name,
                   f"{detail} ({NO_PREDICTION})".lstrip())
    return Row(node_path(val.node), kind, float(state[0]), float(state[3]), val.node.name,
               detail)
