"""Values of the model reader: tensors, weighted terms, pending sums, constants.

:class:`_Val` is a tensor (a layer applied to its parent, a normalized sum, or a
concatenation), ``_Scaled`` a tensor times a constant (waiting to see whether it is a sum's
weight), ``_Pending`` a sum of weighted terms not yet used (``w1*a + w2*b + w3*c`` is read
as one sum), ``_Const`` a number or a shape.
"""

from __future__ import annotations


def node_path(node):
    """A node's module path: the module's for a module call, else ``scope:node``."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    scope = list(stack.values())[-1][0] if stack else ""
    return f"{scope}:{node.name}" if scope else node.name


def _shape(node):
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


class _Val:
    """A tensor: ``kind`` "input", "layer" (``spec`` applied to ``parent``), "sum" or
    "cat" (``terms``: (value, squared weight) from ``parent``, the fork). ``ends``: the
    linear/conv layer values that end it (None if an activation or the input may end it);
    a term whose ending layers lie below a sum's fork is independent of the other terms."""

    __slots__ = ("depth", "ends", "index", "kind", "node", "parent", "spec", "terms")

    def __init__(self, node, parent, kind, spec=None, terms=(), ends=None):
        self.node, self.parent, self.kind, self.spec = node, parent, kind, spec
        self.depth = 0 if parent is None else parent.depth + 1
        self.terms, self.ends = tuple(terms), ends


class _Scaled:
    __slots__ = ("made", "node", "val", "weight")

    def __init__(self, val, weight, node):
        self.val, self.weight, self.node, self.made = val, weight, node, None


class _Pending:
    __slots__ = ("made", "node", "pair", "terms")

    def __init__(self, terms, node, pair=None):
        self.terms, self.node, self.pair, self.made = list(terms), node, pair, None


class _Const:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _lca(vals):
    vals = list(vals)
    first = vals[0]
    for v in vals[1:]:
        a, b = first, v
        while a is not None and b is not None and a is not b:
            if a.depth >= b.depth:
                a = a.parent
            else:
                b = b.parent
        if a is None or b is None:
            return None
        first = a
    return first
