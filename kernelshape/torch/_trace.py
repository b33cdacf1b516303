"""Reading a PyTorch model through ``torch.fx``: one rule per node kind, problems collected.

The model is traced symbolically (:class:`_Tracer` keeps activation modules, kernelshape's
own modules and ``torch.nn`` modules as leaves, and remembers which module was being traced
when tracing fails), its shapes come from one forward pass of ``example_input``
(``ShapeProp``) on a private copy, and :class:`_Reader` gives every node a value by a rule
looked up in a table (:mod:`._rules`: modules, functions, tensor methods),
as ``torch.fx.Interpreter`` dispatches on the node's op. A node no rule covers, or one that
does not fit the theory, adds ``(path, reason)`` to the problems and passes its input on, so
that one error lists them all. The values are those of :mod:`._values`; :mod:`._derive`
turns them into a kernelshape network and per-layer predictions.
"""

from __future__ import annotations

import math

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import ModelError
from . import _rules, _vocab
from ._values import _Const, _lca, _Pending, _Scaled, _Val, node_path

#: How far the squared weights of a sum may sum away from 1 before it counts as
#: unnormalized (weights read from float32 tensors carry about 1e-7).
SUM_TOL = 1e-6


class _Tracer(fx.Tracer):
    """Symbolic tracing that records the module being traced when tracing fails."""

    def __init__(self):
        super().__init__()
        self.failed_in = None

    def is_leaf_module(self, m, qualname):
        return isinstance(m, (_vocab.TransformedActivation, _vocab.PLN)) \
            or type(m) in _vocab.MODULE_KINDS or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                self.failed_in = self.path_of_module(m)
            raise


def graph_module(model, example_input):
    """``model`` traced into a GraphModule (sharing its modules), shapes propagated."""
    if not isinstance(model, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor):
        raise ModelError(f"example_input must be one torch.Tensor (a batch of inputs), got "
                         f"{type(example_input).__name__}")
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except fx.proxy.TraceError as err:
        path = tracer.failed_in or "<model>"
        raise ModelError(f"cannot read the model: torch.fx cannot trace {path}: {err}",
                         [(path, f"data-dependent control flow torch.fx cannot trace ({err})")]
                         ) from err
    except Exception as err:   # anything else symbolic tracing trips on
        path = tracer.failed_in or "<model>"
        reason = f"torch.fx cannot trace it ({type(err).__name__}: {err})"
        raise ModelError(f"cannot read the model: {path}: {reason}", [(path, reason)]) from err
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    modes = [(m, m.training) for m in gm.modules()]
    gm.eval()   # shapes only: batch statistics and dropout masks play no part
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    except Exception as err:
        raise ModelError(f"the model failed on example_input of shape "
                         f"{tuple(example_input.shape)}: {type(err).__name__}: {err}") from err
    finally:
        for m, training in modes:
            m.training = training
    return gm


class _Reader:
    """One pass over the graph: a value per node, problems collected, shaping plans kept."""

    def __init__(self, gm, shortcut_weight=None):
        self.gm, self.shortcut_weight = gm, shortcut_weight
        self.modules = dict(gm.named_modules())
        self.values, self.vals, self.problems = {}, [], []
        self.inputs, self.outputs = [], None
        self.rewrites = []          # (add node, index of the skip argument, skip weight)
        self.activations = {}       # key -> [paths]
        self.act_nodes = []         # (node, key)
        self.layers = []            # (path, module, "linear"|"conv"|"layer_norm")
        self.scales = []            # paths of constant multiplications outside sums
        self.act_builders = {}      # key -> () -> kernelshape Activation

    def run(self):
        for node in self.gm.graph.nodes:
            self.node = node
            self.values[node] = getattr(self, f"_op_{node.op}")(node)
        return self

    def problem(self, node, reason):
        self.problems.append((node_path(node), reason))

    # -- node ops --------------------------------------------------------------------------
    def _op_placeholder(self, node):
        if self.inputs:
            self.problem(node, "a second input: kernelshape reads models of one input tensor")
        val = _Val(node, None, "input")
        self.inputs.append(val)
        return self._add(val)

    def _op_get_attr(self, node):
        obj = self.gm
        for part in str(node.target).split("."):
            obj = getattr(obj, part)
        if isinstance(obj, torch.Tensor) and obj.numel() == 1:
            return _Const(float(obj.detach()))
        return _Const(obj)

    def _op_call_module(self, node):
        module = self.modules[str(node.target)]
        for cls in type(module).__mro__:
            rule = _rules.MODULE_RULES.get(cls)
            if rule is not None:
                return rule(self, node, module)
        return self.refuse(node, f"unknown module {type(module).__name__}: kernelshape has no "
                           "kernel rule for it")

    def _op_call_function(self, node):
        name = getattr(node.target, "__name__", repr(node.target))
        return self._call(node, _vocab.FUNCTION_KINDS, _rules.FUNCTION_RULES,
                          f"unknown function {name}")

    def _op_call_method(self, node):
        return self._call(node, _vocab.METHOD_KINDS, _rules.METHOD_RULES,
                          f"unknown tensor method .{node.target}()")

    def _call(self, node, activations, rules, unknown):
        folded = self._fold(node)
        if folded is not None:
            return folded
        if node.target in activations:
            return self.activation(node, _vocab.function_kind(node))
        rule = rules.get(node.target)
        if rule is None:
            return self.refuse(node, f"{unknown}: kernelshape has no kernel rule for it")
        return rule(self, node)

    def _fold(self, node):
        """A call on constants only (``math.sqrt(1 - w ** 2)`` with ``w`` a scalar buffer or
        parameter) is a constant: evaluated here, as a Python float where it is a number."""
        inputs = node.all_input_nodes
        values = [self.values[n] for n in inputs]
        if not inputs or not all(isinstance(v, _Const) and isinstance(v.value, (int, float))
                                 for v in values):
            return None
        env = {n: torch.tensor(v.value, dtype=torch.float64) for n, v in zip(inputs, values)}
        args = fx.node.map_arg(node.args, env.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
        try:
            if node.op == "call_method":
                out = getattr(args[0], node.target)(*args[1:], **kwargs)
            else:
                out = node.target(*args, **kwargs)
        except (TypeError, ValueError, RuntimeError, AttributeError):   # not plain arithmetic
            return None
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            return _Const(float(out))
        return _Const(out) if isinstance(out, (int, float)) else None

    def _op_output(self, node):
        outs = []

        def collect(arg):
            if isinstance(arg, (tuple, list)):
                for a in arg:
                    collect(a)
            elif isinstance(arg, dict):
                for a in arg.values():
                    collect(a)
            elif isinstance(arg, fx.Node):
                outs.append(self.tensor(arg))
        collect(node.args[0])
        self.outputs = [v for v in outs if v is not None]

    # -- helpers ---------------------------------------------------------------------------
    def _add(self, val):
        val.index = len(self.vals)
        self.vals.append(val)
        return val

    def refuse(self, node, reason):
        self.problem(node, reason)
        for arg in node.all_input_nodes:
            value = self.values.get(arg)
            if not isinstance(value, _Const):
                return self.tensor(arg)
        return _Const(None)

    def tensor(self, arg):
        """The tensor value of an argument, materializing scaled values and sums."""
        value = self.values[arg] if isinstance(arg, fx.Node) else _Const(arg)
        if isinstance(value, _Val):
            return value
        if isinstance(value, _Scaled):
            if value.made is None:
                self.scales.append(node_path(value.node))
                value.made = self._add(_Val(value.node, value.val, "layer",
                                            ("scale", value.weight), ends=value.val.ends))
            return value.made
        if isinstance(value, _Pending):
            if value.made is None:
                value.made = self._sum(value)
            return value.made
        return None

    def layer(self, node, spec, ends="keep", arg=None):
        parent = self.tensor(node.args[0] if arg is None else arg)
        if parent is None:
            return self.refuse(node, "expected a tensor input")
        if ends == "keep":
            ends = parent.ends
        val = _Val(node, parent, "layer", spec, ends=None if ends == "self" else ends)
        if ends == "self":
            val.ends = frozenset([val])
        return self._add(val)

    def passed(self, node):
        return self.tensor(node.args[0])

    def activation(self, node, kind_params):
        kind, params = kind_params
        key = (kind, tuple(sorted(params.items())))
        self.act_builders.setdefault(key, lambda: _vocab.base_activation(kind, params))
        return self._activation(node, key)

    def _activation(self, node, key):
        paths = self.activations.setdefault(key, [])
        if node_path(node) not in paths:
            paths.append(node_path(node))
        self.act_nodes.append((node, key))
        return self.layer(node, ("act", key), ends=None)

    # -- sums --------------------------------------------------------------------------------
    def terms_of(self, arg, weight=1.0):
        value = self.values[arg] if isinstance(arg, fx.Node) else _Const(arg)
        if isinstance(value, _Scaled):
            return [(value.val, weight * value.weight)]
        if isinstance(value, _Pending) and value.made is None and len(arg.users) == 1:
            return [(v, weight * w) for v, w in value.terms]   # w1*a + w2*b + w3*c: one sum
        val = self.tensor(arg)
        return None if val is None else [(val, weight)]

    def _sum(self, pending):
        node = pending.node
        vals = [v for v, _ in pending.terms]
        weights = [w for _, w in pending.terms]
        total = math.fsum(w * w for w in weights)
        squares = [w * w for w in weights]
        if abs(total - 1.0) > SUM_TOL:
            if pending.pair is not None and self.shortcut_weight is not None:
                squares = self._skip_sum(node, pending.pair, vals)
            else:
                shown = ", ".join(f"{w:.6g}" for w in weights)
                hint = ("give shape() a shortcut_weight, or " if pending.pair is not None else "")
                self.problem(node, f"unnormalized sum: weights [{shown}] have squares summing to "
                             f"{total:.6g}, not 1; {hint}weight the terms so that the squares "
                             "sum to 1 (normalized sum)")
                squares = [s / total for s in squares] if total > 0 else squares
        else:
            squares = [s / total for s in squares]
        # A term ending in its own linear layer, below the fork, is independent of the
        # others (its weights are fresh and zero-mean); at most one term may be otherwise.
        fork = _lca(vals)
        depth = -1 if fork is None else fork.depth
        fresh = [v.ends for v in vals if v.ends is not None
                 and all(e.depth > depth for e in v.ends)]
        modules = [id(e.spec[1]) for ends in fresh for e in ends]
        if len(vals) - len(fresh) > 1 or len(set(modules)) < len(modules):
            self.problem(node, "a sum of correlated terms (more than one does not end in its "
                         "own linear or conv layer, e.g. x + tanh(x)): the normalized-sum rule "
                         "needs independent terms")
        return self._joined(node, "sum", vals, squares)

    def _skip_sum(self, node, pair, vals):
        """``a + b`` read as ``w * skip + sqrt(1 - w^2) * branch``: the skip is the term with
        fewer activations since the fork."""
        fork = _lca(vals)
        counts = [_activations_between(fork, v) for v in vals]
        if counts[0] == counts[1]:
            self.problem(node, f"cannot tell the skip from the branch of this sum (both hold "
                         f"{counts[0]} activations): weight its terms explicitly")
            return [0.5, 0.5]
        skip = 0 if counts[0] < counts[1] else 1
        w = self.shortcut_weight
        self.rewrites.append((node, skip, w))
        return [w * w, 1.0 - w * w] if skip == 0 else [1.0 - w * w, w * w]

    def _joined(self, node, kind, vals, squares):
        fork = _lca(vals)
        if fork is None:
            self.problem(node, "terms that do not come from one input")
            fork = vals[0]
        # A layer every term shares belongs to each term's branch (as the dks examples
        # count a V2 projection block's first activation), unless a term is that layer.
        while fork.kind == "layer" and all(v is not fork for v in vals):
            fork = fork.parent
        ends = None
        if all(v.ends is not None for v in vals):
            ends = frozenset().union(*(v.ends for v in vals))
        return self._add(_Val(node, fork, kind, terms=zip(vals, squares), ends=ends))

    def add(self, node, a, b, weight_b=1.0):
        ta, tb = self.terms_of(a), self.terms_of(b, weight_b)
        if ta is None or tb is None:
            return self.refuse(node, "adding a constant to a tensor (a fixed bias): not a layer "
                               "kernelshape reads")
        pair = None
        if weight_b == 1.0 and len(ta) == len(tb) == 1 and ta[0][1] == tb[0][1] == 1.0 \
                and not any(isinstance(self.values.get(x), _Scaled) for x in (a, b)):
            pair = (a, b)
        return _Pending(ta + tb, node, pair)

    def scale(self, node, arg, w):
        value = self.values[arg]
        if isinstance(value, _Scaled):
            return _Scaled(value.val, value.weight * w, node)
        if isinstance(value, _Pending) and value.made is None and len(arg.users) == 1:
            return _Pending([(v, x * w) for v, x in value.terms], node)
        val = self.tensor(arg)
        if val is None:
            return _Const(None)
        return _Scaled(val, w, node)

    def const(self, arg):
        if isinstance(arg, fx.Node):
            value = self.values[arg]
            return value.value if isinstance(value, _Const) else None
        return arg


def _activations_between(fork, val):
    count, v = 0, val
    while v is not None and v is not fork:
        if v.kind == "layer" and v.spec[0] == "act":
            count += 1
        elif v.kind in ("sum", "cat"):
            count += max(_activations_between(v.parent, t) for t, _ in v.terms)
            v = v.parent
            continue
        v = v.parent
    return count
