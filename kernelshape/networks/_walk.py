"""Walking network descriptions without recursion: the structure every computation shares.

This module knows the *shape* of a description, not what its layers mean. A node tells its
role through a class attribute ``_role``:

* ``"leaf"``: one layer (``_nonlinear`` says whether it applies an activation);
* ``"chain"``: ``node.layers`` applied in order;
* ``"sum"``: ``node.branches`` combined with ``node.squares`` (squared weights).

A computation is a *rules* object: ``leaf(node, value)`` for a layer and ``combine(node,
outs)`` for a sum. Older rules objects with ``layer(value)`` (called at nonlinear layers,
every other layer passing the value on) are accepted unchanged. Small descriptions are
unfolded once into a flat program; large or heavily shared ones are walked with an explicit
stack and a memo, so nesting depth is limited by memory only.
"""

from __future__ import annotations

LEAF, CHAIN, SUM = "leaf", "chain", "sum"

#: Largest unfolded program (steps) evaluated from a flat list; larger or more shared
#: descriptions are walked with memoization instead.
PROGRAM_STEPS = 200_000

_LAYER, _OPEN, _NEXT, _CLOSE = range(4)


def _children(node):
    role = node._role
    if role == CHAIN:
        return node.layers
    if role == SUM:
        return node.branches
    return ()


class _Legacy:
    """``layer(value)`` rules (nonlinear layers only) seen through the ``leaf`` protocol."""

    def __init__(self, rules):
        self.layer, self.combine = rules.layer, rules.combine

    def leaf(self, node, value):
        return self.layer(value) if node._nonlinear else value


def _leaf_rule(rules):
    return rules if hasattr(rules, "leaf") else _Legacy(rules)


def _evaluate(roots, x, rules):
    """Values of every root at ``x``: flat programs when small, else one memoized walk."""
    rules = _leaf_rule(rules)
    if sum(_size_of(root) for root in roots) <= PROGRAM_STEPS:
        return [_execute(_program(root), x, rules) for root in roots]
    memo = {}
    return [_walk(root, x, rules, memo) for root in roots]


def _program(root):
    """The description unfolded into steps ``(op, node)``, kept on the node.

    ``_LAYER`` applies a layer; a sum is ``_OPEN``, its branches separated by ``_NEXT`` and
    ``_CLOSE`` (which combines the branch outputs).
    """
    if root._role == LEAF:
        return ((_LAYER, root),)
    cached = root.__dict__.get("_program")
    if cached is None:
        steps, stack = [], [root]
        while stack:
            item = stack.pop()
            if type(item) is tuple:
                steps.append(item)
                continue
            role = item._role
            if role == LEAF:
                steps.append((_LAYER, item))
            elif role == CHAIN:
                stack.extend(reversed(item.layers))
            else:
                seq = [(_OPEN, item)]
                for j, branch in enumerate(item.branches):
                    seq += [(_NEXT, item), branch] if j else [branch]
                seq.append((_CLOSE, item))
                stack.extend(reversed(seq))
        cached = root.__dict__["_program"] = tuple(steps)
    return cached


def _execute(program, x, rules):
    leaf, combine = rules.leaf, rules.combine
    value, inputs, outs = x, [], []
    for op, node in program:
        if op == _LAYER:
            value = leaf(node, value)
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
    """Push ``x`` through ``root``: ``rules.leaf`` at layers, ``rules.combine`` at sums.

    An explicit stack of frames ``[node, next child, input, branch outputs, children]``
    replaces recursion. ``memo`` maps ``id(node)`` of a chain or sum to ``(input, output)``
    of its last evaluation: a node met again with the very same input object (a block
    shared by two branches, a subnetwork nested in another evaluated at the same ``x``) is
    not walked twice. The operations and their order are those of a plain recursive
    evaluation, so the bits are too.
    """
    leaf, combine = rules.leaf, rules.combine
    frames = []
    node, value = root, x
    while True:
        role = node._role
        if role == LEAF:
            value = leaf(node, value)
        else:
            children = node.layers if role == CHAIN else node.branches
            hit = memo.get(id(node))
            if hit is not None and hit[0] is value:
                value = hit[1]
            elif children:
                frames.append([node, 0, value, [] if role == SUM else None, children])
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
                while i < n:   # runs of layers without a round trip through the stack
                    child = children[i]
                    if child._role != LEAF:
                        break
                    value = leaf(child, value)
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
    return _bottom_up(node, "_n_nonlinear", lambda leaf: int(leaf._nonlinear), sum, max)


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
        node.__dict__[key] = over_sum(values) if node._role == SUM else along_chain(values)
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
        if parent._role == SUM and _depth_of(child) > 0 and id(child) not in seen:
            seen.add(id(child))
            found.append(child)
        if id(child) not in visited and _children(child):
            visited.add(id(child))
            stack.append((child, iter(_children(child))))
    return tuple(found)


def _leaves(root):
    """Every distinct layer object of ``root`` (explicit stack, shared nodes once)."""
    out, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node._role == LEAF:
            out.append(node)
        else:   # a chain of one repeated layer pushes it once
            stack.extend({id(k): k for k in _children(node) if id(k) not in seen}.values())
    return out
