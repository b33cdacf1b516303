"""Display of network descriptions: ``repr`` and ``describe``, bounded in size."""

from __future__ import annotations

from ._walk import CHAIN, LEAF, SUM, _children

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
        elif layer._role == CHAIN and not layer.label:
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
            text = item.label or (item._text() if item._role == LEAF else "chain()")
        elif item._role == CHAIN:
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
        if node._role == SUM:
            out.append(f"{first}{node.kind} with weights [{node._weights_text()}] of:")
            stack.extend((b, rest + "  - ", rest + "    ", False)
                         for b in reversed(node.branches))
        elif node._role == CHAIN and node.layers and (top or not node.label):
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
