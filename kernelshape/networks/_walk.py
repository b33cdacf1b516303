"""Walking network descriptions without recursion: values, maps, layer counts, display.

Small descriptions are unfolded once into a flat program; large or heavily shared ones
are walked with an explicit stack and a memo. Rendering (repr, describe) is bounded.
"""

from __future__ import annotations

import math

from . import _nodes


# -- walking a description without recursion ----------------------------------------------
def _children(node):
    if isinstance(node, _nodes._Chain):
        return node.layers
    if isinstance(node, _nodes._Sum):
        return node.branches
    return ()


class _ValueRules:
    """Scalar (or polynomial, mpmath, ...) values: ``r`` per nonlinear layer, weighted sums."""

    def __init__(self, r):
        self.layer = r

    def combine(self, node, outs):
        total = node.squares[0] * outs[0]
        for s, value in zip(node.squares[1:], outs[1:]):
            total = total + s * value
        return total


class _MapRules:
    """``(q, c)`` through the activation's maps (``c`` None: the Q map alone)."""

    def __init__(self, phi):
        self.phi = phi

    def layer(self, state):
        q, c = state
        return self.phi.q_map(q), None if c is None else self.phi.c_map(c, q=q)

    def combine(self, node, outs):
        q_out = sum(s * q_i for s, (q_i, _) in zip(node.squares, outs))
        if outs[0][1] is None:
            return q_out, None
        c_out = sum(s * q_i * c_i for s, (q_i, c_i) in zip(node.squares, outs)) / q_out
        return q_out, c_out


class _TwoQMapRules:
    """``(q1, q2, c)`` for two inputs at different second moments (THEORY.md §1-2)."""

    def __init__(self, phi):
        self.phi = phi

    def layer(self, state):
        from ..maps import c_map as c_map_of
        q1, q2, c = state
        return (self.phi.q_map(q1), self.phi.q_map(q2), c_map_of(self.phi, c, q=q1, q2=q2))

    def combine(self, node, outs):
        q1 = sum(s * a for s, (a, _, _) in zip(node.squares, outs))
        q2 = sum(s * b for s, (_, b, _) in zip(node.squares, outs))
        cov = sum(s * math.sqrt(a * b) * c for s, (a, b, c) in zip(node.squares, outs))
        return q1, q2, cov / math.sqrt(q1 * q2)


#: Largest unfolded program (steps) evaluated from a flat list; larger or more shared
#: descriptions are walked with memoization instead.
PROGRAM_STEPS = 200_000

_LAYER, _OPEN, _NEXT, _CLOSE = range(4)


def _evaluate(roots, x, rules):
    """Values of every root at ``x``: flat programs when small, else one memoized walk."""
    if sum(_size_of(root) for root in roots) <= PROGRAM_STEPS:
        return [_execute(_program(root), x, rules) for root in roots]
    memo = {}
    return [_walk(root, x, rules, memo) for root in roots]


def _program(root):
    """The description unfolded into steps ``(op, node)``, kept on the node.

    ``_LAYER`` applies a nonlinear layer; a sum is ``_OPEN``, its branches separated by
    ``_NEXT`` and ``_CLOSE`` (which combines the branch outputs). Linear layers vanish.
    """
    if not _children(root):
        return ((_LAYER, root),) if type(root) is _nodes._Nonlinear else ()
    cached = root.__dict__.get("_program")
    if cached is None:
        steps, stack = [], [root]
        while stack:
            item = stack.pop()
            kind = type(item)
            if kind is tuple:
                steps.append(item)
            elif kind is _nodes._Nonlinear:
                steps.append((_LAYER, item))
            elif kind is _nodes._Chain:
                stack.extend(reversed(item.layers))
            elif kind is _nodes._Sum:
                seq = [(_OPEN, item)]
                for j, branch in enumerate(item.branches):
                    seq += [(_NEXT, item), branch] if j else [branch]
                seq.append((_CLOSE, item))
                stack.extend(reversed(seq))
        cached = root.__dict__["_program"] = tuple(steps)
    return cached


def _execute(program, x, rules):
    layer, combine = rules.layer, rules.combine
    value, inputs, outs = x, [], []
    for op, node in program:
        if op == _LAYER:
            value = layer(value)
        elif op == _NEXT:
            outs[-1].append(value)
            value = inputs[-1]
        elif op == _OPEN:
            inputs.append(value)
            outs.append([])
        else:
            branch_outs = outs.pop()
            branch_outs.append(value)
            inputs.pop()
            value = combine(node, branch_outs)
    return value


def _walk(root, x, rules, memo):
    """Push ``x`` through ``root``: ``rules.layer`` at nonlinear layers, ``rules.combine``
    at sums, linear layers pass the value on.

    An explicit stack of frames ``[node, next child, input, branch outputs, children]``
    replaces recursion, so nesting depth is limited by memory only. ``memo`` maps
    ``id(node)`` of a chain or sum to ``(input, output)`` of its last evaluation: a node met
    again with the very same input object (a block shared by two branches, a subnetwork
    nested in another evaluated at the same ``x``) is not walked twice. The operations and
    their order are those of a plain recursive evaluation, so the bits are too.
    """
    layer, combine = rules.layer, rules.combine
    frames = []
    node, value = root, x
    while True:
        kind = type(node)
        if kind is _nodes._Nonlinear:
            value = layer(value)
        elif kind is _nodes._Chain or kind is _nodes._Sum:
            children = node.layers if kind is _nodes._Chain else node.branches
            hit = memo.get(id(node))
            if hit is not None and hit[0] is value:
                value = hit[1]
            elif children:
                frames.append([node, 0, value, [] if kind is _nodes._Sum else None, children])
                node = children[0]
                continue
        while frames:   # climb until some frame has a next child to descend into
            frame = frames[-1]
            children, i = frame[4], frame[1] + 1
            if frame[3] is not None:
                frame[3].append(value)
                if i < len(children):
                    frame[1] = i
                    node, value = children[i], frame[2]
                    break
                value = combine(frame[0], frame[3])
            else:
                n = len(children)
                while i < n:   # runs of plain layers without a round trip through the stack
                    child = children[i]
                    kind = type(child)
                    if kind is _nodes._Nonlinear:
                        value = layer(value)
                    elif kind is not _nodes._Linear:
                        break
                    i += 1
                if i < n:
                    frame[1] = i
                    node = children[i]
                    break
            frames.pop()
            memo[id(frame[0])] = (frame[2], value)
        else:
            return value


def _depth_of(node):
    """Nonlinear layers on the longest path through ``node``."""
    return _bottom_up(node, "_n_nonlinear", lambda leaf: int(type(leaf) is _nodes._Nonlinear),
                      sum, max)


def _size_of(node):
    """Steps of the node's unfolded program (a shared block counts once per use)."""
    return _bottom_up(node, "_n_steps", lambda leaf: 1, sum,
                      lambda sizes: sum(sizes) + len(sizes) + 1)


def _bottom_up(root, key, leaf, along_chain, over_sum):
    """A per-node quantity computed children first, kept on composite nodes under ``key``.

    Post-order on an explicit stack; a node whose value is known is not entered again, so
    the cost is linear in the number of distinct nodes however they are shared or nested.
    """
    def known(node):
        return node.__dict__[key] if _children(node) else leaf(node)

    stack = [root]
    while stack:
        node = stack[-1]
        children = _children(node)
        if not children or key in node.__dict__:
            stack.pop()
            continue
        pending = {id(k): k for k in children if _children(k) and key not in k.__dict__}
        if pending:
            stack.extend(pending.values())
            continue
        values = [known(k) for k in children]
        node.__dict__[key] = over_sum(values) if type(node) is _nodes._Sum else along_chain(values)
        stack.pop()
    return known(root)


def _subnetworks_of(root):
    """Branches of sums that hold a nonlinear layer, in depth-first order, each once."""
    found, seen, visited = [], set(), {id(root)}
    stack = [(root, iter(_children(root)))]
    while stack:
        parent, it = stack[-1]
        child = next(it, None)
        if child is None:
            stack.pop()
            continue
        if isinstance(parent, _nodes._Sum) and _depth_of(child) > 0 and id(child) not in seen:
            seen.add(id(child))
            found.append(child)
        if id(child) not in visited and _children(child):
            visited.add(id(child))
            stack.append((child, iter(_children(child))))
    return tuple(found)


#: Characters of a network's repr before it is cut short (with a count of what is left).
REPR_CHARS = 400
#: Lines of :meth:`Network.describe` before it is cut short.
DESCRIBE_LINES = 200


def _flat_layers(node):
    """Layers of a chain with unlabeled nested chains inlined (lazily, no recursion)."""
    stack = [iter(node.layers)]
    while stack:
        layer = next(stack[-1], None)
        if layer is None:
            stack.pop()
        elif isinstance(layer, _nodes._Chain) and not layer.label:
            stack.append(iter(layer.layers))
        else:
            yield layer


def _render(root):
    """``chain(...)`` / ``sum([...], weights=[...])`` text, cut after :data:`REPR_CHARS`."""
    parts, size = [], 0
    stack = [root]   # nodes and literal strings, popped in order
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            text = item
        elif item.label or not _children(item):
            text = item.label or (type(item).__repr__(item) if isinstance(
                item, (_nodes._Nonlinear, _nodes._Linear)) else "chain()")
        elif isinstance(item, _nodes._Chain):
            text = "chain("
            tail = []
            for i, layer in enumerate(_flat_layers(item)):
                tail += [", "] if i else []
                tail.append(layer)
                if len(tail) > REPR_CHARS:   # each item prints at least one character
                    break
            stack.extend(reversed(tail + [")"]))
        else:
            text = f"{item.kind}(["
            tail = []
            for i, branch in enumerate(item.branches):
                tail += [", "] if i else []
                tail.append(branch)
            tail.append(f"], weights=[{item._weights_text()}])")
            stack.extend(reversed(tail))
        parts.append(text)
        size += len(text)
        if size > REPR_CHARS and stack:
            text = "".join(parts)[:REPR_CHARS]
            return f"{text}... [cut: {root.n_nonlinear} nonlinear layers on the longest path]"
    return "".join(parts)


def _describe_lines(root):
    """Lines of :meth:`Network.describe`, at most :data:`DESCRIBE_LINES` of them.

    Each stack item ``(node, first, rest, top)`` prints the node's lines, its first line
    after ``first`` and the others after ``rest``; a chain collapses consecutive repeats of
    one layer object into ``n x layer`` and inlines unlabeled chains; a labeled chain
    inside the network is one line.
    """
    out = []
    stack = [(root, "", "", True)]
    while stack:
        if len(out) >= DESCRIBE_LINES:
            out.append(f"... [cut after {DESCRIBE_LINES} lines]")
            break
        node, first, rest, top = stack.pop()
        if isinstance(node, _nodes._Sum):
            out.append(f"{first}{node.kind} with weights [{node._weights_text()}] of:")
            stack.extend((b, rest + "  - ", rest + "    ", False)
                         for b in reversed(node.branches))
        elif isinstance(node, _nodes._Chain) and node.layers and (top or not node.label):
            runs = []
            for layer in node.layers:
                if runs and runs[-1][0] is layer:
                    runs[-1][1] += 1
                else:
                    runs.append([layer, 1])
                if len(runs) > DESCRIBE_LINES:
                    break
            for i in reversed(range(len(runs))):
                layer, count = runs[i]
                prefix = f"{count} x " if count > 1 else ""
                stack.append((layer, (first if i == 0 else rest) + prefix,
                              rest + ("  " if prefix else ""), False))
        else:
            out.append(f"{first}{node!r}")
    return out


