"""Networks described once: the layer structure kernel maps, DKS and TAT need.

A network is a tree of four kinds of node (THEORY.md §2; Martens et al. 2021, §5; Zhang et
al. 2022, Appendix B):

* :func:`nonlinear` — one layer applying the activation (its maps are the activation's);
* :func:`linear` — a dense or convolutional layer with zero bias (identity maps);
* :func:`chain` — layers applied one after the other (maps compose);
* :func:`normalized_sum` / :func:`residual` / :func:`parallel` — branches combined with fixed
  weights whose squares sum to 1 (concatenation is the same rule with the channel fractions
  as squared weights): ``q_out = sum_i w_i^2 q_i``, ``c_out = sum_i w_i^2 q_i c_i / q_out``.
  The rule assumes the branches use independent weights (each branch holds a random
  linear layer), as in every residual network DKS/TAT treat.

Every network has the subnetwork maximizing function ``subnet_max(x, r)`` (the maximum over
the whole network and every branch holding a nonlinear layer, each evaluated at ``x`` with
nonlinear layers replaced by ``r``), the DKS maximal slope function ``max_slope(xi)``, the
TAT maximal curvature function ``max_curvature(t)``, and global ``q_map`` / ``c_map`` for an
activation (``c_map`` also for two inputs at different second moments, ``q2=``). :func:`mlp` and :func:`resnet` build the usual families; :func:`as_network`
wraps any ``dks``-style callable ``subnet_max_func(x, r_fn)``.
"""

from __future__ import annotations

import functools
import math
import numbers

from .errors import DomainError, NetworkError, UnsupportedError

__all__ = [
    "RESNET_CONFIGS",
    "Network",
    "as_network",
    "chain",
    "linear",
    "mlp",
    "nonlinear",
    "normalized_sum",
    "parallel",
    "residual",
    "resnet",
]

#: The ``dks`` modified-ResNet family: depth -> (blocks per group, bottleneck, projection
#: shortcut in the first block of each group).
RESNET_CONFIGS = {
    18: ((2, 2, 2, 2), False, (False, True, True, True)),
    34: ((3, 4, 6, 3), False, (False, True, True, True)),
    50: ((3, 4, 6, 3), True, (True, True, True, True)),
    101: ((3, 4, 23, 3), True, (True, True, True, True)),
    152: ((3, 8, 36, 3), True, (True, True, True, True)),
    200: ((3, 24, 36, 3), True, (True, True, True, True)),
}

#: How far the squared weights of a normalized sum may sum away from 1 (rounding only).
WEIGHT_TOL = 1e-12


class Network:
    """Base class of network descriptions (see the module docs for the vocabulary).

    Descriptions may nest to any depth: nothing walks them by Python recursion. Values and
    maps run a flat program of the unfolded description (:func:`_program`) when it is small,
    else an explicit-stack walk (:func:`_walk`) that evaluates a node shared by several
    parents, or nested in several subnetworks, once per input; layer counts and display
    work on explicit stacks too.
    """

    label: str | None = None

    # -- subnetwork maximizing function -------------------------------------------------
    def subnet_max(self, x, r):
        """``M_{f,r}(x)``: the largest value of any subnetwork at ``x`` (THEORY.md §2).

        Nonlinear layers become ``r``, linear layers the identity and normalized sums
        ``sum_i w_i^2 x_i``; the maximum runs over the whole network and every branch of a
        sum that holds a nonlinear layer (a network on its own).

        Example:
            >>> mlp(3).subnet_max(0.0, lambda y: y + 1)
            3.0
        """
        values = _evaluate((self, *self._subnetworks), x, _ValueRules(r))
        best = values[0]
        for value in values[1:]:
            best = max(best, value)
        return best

    def max_slope(self, xi):
        """DKS maximal slope function ``mu(xi) = M_{f, y -> xi y}(1)`` (Martens et al. §5).

        Example:
            >>> mlp(4).max_slope(2.0)
            16.0
        """
        return self.subnet_max(1.0, lambda y: xi * y)

    def max_curvature(self, t):
        """TAT maximal curvature function ``M_{f, y -> t + y}(0)`` (Zhang et al. §4.2).

        Example:
            >>> mlp(4).max_curvature(0.25)
            1.0
        """
        return self.subnet_max(0.0, lambda y: t + y)

    def _value(self, x, r):
        """The whole network's value at ``x`` with nonlinear layers replaced by ``r``."""
        return _evaluate((self,), x, _ValueRules(r))[0]

    @functools.cached_property
    def _subnetworks(self):
        return _subnetworks_of(self)

    def _depth(self):
        return _depth_of(self)

    @property
    def n_nonlinear(self) -> int:
        """Nonlinear layers on the longest input-to-output path."""
        return self._depth()

    # -- global maps --------------------------------------------------------------------
    def q_map(self, phi, q):
        """The network's Q map: ``q`` pushed through every layer (THEORY.md §2).

        Args:
            phi: a fixed :class:`~kernelshape.activations.Activation`.
            q: input second moment, a number > 0.

        Returns:
            The output q (float64).

        Example:
            >>> from kernelshape import activation
            >>> round(mlp(3).q_map(activation("relu"), 8.0), 12)   # 8 / 2^3
            1.0
        """
        q_out, _ = _evaluate((self,), (float(q), None), _MapRules(_as_activation(phi)))[0]
        return q_out

    def c_map(self, phi, c, *, q=1.0, q2=None):
        """The network's C map at input correlation ``c``, inputs at second moments ``q, q2``.

        Nonlinear layers apply the activation's C map at their own input second moments;
        normalized sums combine the branches' covariances (THEORY.md §1-2):

        .. math:: q^{(j)}_{out} = \\sum_i w_i^2 q^{(j)}_i, \\qquad
                  c_{out} = \\frac{\\sum_i w_i^2 c_i \\sqrt{q^{(1)}_i q^{(2)}_i}}
                  {\\sqrt{q^{(1)}_{out} q^{(2)}_{out}}}

        which for ``q2 = q`` is ``sum_i w_i^2 q_i c_i / q_out``. With ``q2`` given and
        different from ``q``, each nonlinear layer uses the two-q C map
        ``E[phi(sqrt(q1) u) phi(sqrt(q2) v)] / sqrt(Q(q1) Q(q2))`` (float64).

        Args:
            phi: a fixed :class:`~kernelshape.activations.Activation`.
            c: input correlation in [-1, 1].
            q: second moment of the first input (of both when ``q2`` is None), > 0.
            q2: second moment of the second input, > 0; None for ``q2 = q``.

        Raises:
            DomainError: q or q2 not a positive number (a pair for q: use ``q2=``).

        Example:
            >>> from kernelshape import activation
            >>> round(mlp(1).c_map(activation("relu"), 0.0), 12)   # 1 / pi
            0.318309886184
        """
        if isinstance(q, (tuple, list)):
            raise DomainError(
                f"q must be one number (the first input's second moment), got {tuple(q)!r}; "
                "give the second input's second moment as q2=")
        phi = _as_activation(phi)
        q = _check_second_moment("q", q)
        if q2 is None or _check_second_moment("q2", q2) == q:
            _, c_out = _evaluate((self,), (q, c), _MapRules(phi))[0]
            return c_out
        state = (q, float(q2), c)
        return _evaluate((self,), state, _TwoQMapRules(phi))[0][2]

    # -- display ------------------------------------------------------------------------
    def __repr__(self):
        return _render(self)

    def describe(self) -> str:
        """An indented, human-readable description (repeated layers collapsed).

        At most :data:`DESCRIBE_LINES` lines are printed.

        Example:
            >>> print(mlp(2).describe())
            mlp(depth=2): 2 nonlinear layers on the longest path
              2 x nonlinear
        """
        head = f"{self!r}: {self.n_nonlinear} nonlinear layers on the longest path"
        return "\n".join([head] + ["  " + line for line in _describe_lines(self)])


class _Nonlinear(Network):
    def __repr__(self):
        return "nonlinear"

    def __eq__(self, other):
        return isinstance(other, _Nonlinear)

    def __hash__(self):
        return hash("nonlinear")


class _Linear(Network):
    def __repr__(self):
        return "linear"

    def __eq__(self, other):
        return isinstance(other, _Linear)

    def __hash__(self):
        return hash("linear")


_NONLINEAR = _Nonlinear()
_LINEAR = _Linear()


def nonlinear() -> Network:
    """One layer applying the activation.

    Example:
        >>> nonlinear()
        nonlinear
    """
    return _NONLINEAR


def linear() -> Network:
    """A linear (dense or convolutional, zero-bias) layer: identity Q and C maps.

    Example:
        >>> linear()
        linear
    """
    return _LINEAR


class _Chain(Network):
    def __init__(self, layers, label=None):
        self.layers = tuple(layers)
        self.label = label


def chain(*layers: Network) -> Network:
    """Layers applied in order (maps compose: ``C_{f o g} = C_f o C_g``).

    Example:
        >>> chain(linear(), nonlinear(), linear(), nonlinear())
        chain(linear, nonlinear, linear, nonlinear)
    """
    if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
        layers = tuple(layers[0])
    for i, layer in enumerate(layers):
        _check_network(layer, f"chain layer {i}")
    return _Chain(layers)


class _Sum(Network):
    def __init__(self, branches, squares, kind, label=None):
        self.branches = tuple(branches)
        self.squares = tuple(squares)
        self.kind = kind
        self.label = label

    def _weights_text(self):
        return ", ".join(f"{math.sqrt(s):.6g}" for s in self.squares)


def normalized_sum(branches, weights, *, normalize: bool = False) -> Network:
    """``sum_i w_i h_i`` over branches with fixed weights, ``sum_i w_i^2 = 1``.

    Maps: ``q_out = sum_i w_i^2 q_i``, ``c_out = sum_i w_i^2 q_i c_i / q_out`` (THEORY.md §2).

    Args:
        branches: networks applied to the same input.
        weights: one real weight per branch.
        normalize: divide the weights by ``sqrt(sum_i w_i^2)`` instead of raising when the
            squares do not sum to 1.

    Raises:
        NetworkError: lengths differ, a weight is not finite, or the squares do not sum to
            1 (within 1e-12) and ``normalize`` is False.

    Example:
        >>> normalized_sum([linear(), nonlinear()], [0.6, 0.8])
        sum([linear, nonlinear], weights=[0.6, 0.8])
    """
    squares = _check_weights(branches, weights, normalize)
    return _Sum(branches, squares, "sum")


def parallel(branches, fractions=None, *, normalize: bool = False) -> Network:
    """Branches concatenated along channels; branch i holds the fraction ``fractions[i]``.

    A concatenation averages second moments by channel share: the maps are those of a
    normalized sum with ``w_i^2 = fractions[i]`` (default: equal shares).

    Example:
        >>> net = parallel([nonlinear(), chain(nonlinear(), nonlinear())])
        >>> net.subnet_max(1.0, lambda y: 2 * y)   # the two-layer branch alone: 2^2
        4.0
    """
    branches = list(branches)
    if fractions is None:
        fractions = [1.0 / len(branches)] * len(branches) if branches else []
    for f in fractions:
        if not isinstance(f, numbers.Real) or not math.isfinite(f) or f < 0:
            raise NetworkError(f"channel fractions must be finite and >= 0, got {f!r}")
    squares = _check_weights(branches, [math.sqrt(f) for f in fractions], normalize,
                             squares=list(fractions))
    return _Sum(branches, squares, "parallel")


def residual(branch: Network, shortcut_weight: float, *, shortcut: Network | None = None
             ) -> Network:
    """``shortcut_weight * shortcut(x) + sqrt(1 - shortcut_weight^2) * branch(x)``.

    Squared weights are ``(w^2, 1 - w^2)``, computed as in the ``dks`` examples;
    ``shortcut_weight = 0`` leaves the plain branch (a vanilla network).

    Example:
        >>> net = residual(chain(nonlinear(), linear()), 0.6)
        >>> net.max_slope(2.0)   # the branch alone (2) beats the block (0.36 + 0.64 * 2)
        2.0
    """
    _check_network(branch, "residual branch")
    if shortcut is None:
        shortcut = _LINEAR
    _check_network(shortcut, "shortcut")
    w = _check_shortcut_weight(shortcut_weight)
    return _Sum((shortcut, branch), (w**2, 1.0 - w**2), "residual")


def mlp(depth: int) -> Network:
    """A chain of ``depth`` nonlinear layers (linear layers in between do not change maps).

    For ``mlp(L)`` the maximal slope function is ``xi^L``, so DKS gives ``xi = zeta^(1/L)``.

    Example:
        >>> mlp(10)
        mlp(depth=10)
    """
    depth = _check_depth(depth)
    return _Chain([_NONLINEAR] * depth, label=f"mlp(depth={depth})")


def resnet(depth: int, shortcut_weight: float = 0.0, *, version: str = "v2") -> Network:
    """The modified ResNet of the ``dks`` examples (Martens et al. 2021, §D; dks 0.1.2).

    Four groups of blocks (counts per depth in :data:`RESNET_CONFIGS`); bottleneck blocks
    (depth >= 50) hold three nonlinear layers in their residual branch in V2 and two in V1,
    basic blocks two and one. V2 blocks are pre-activation; the projection shortcut of the
    first block of a group takes the branch's first activation, so it applies the
    activation once. V1 blocks apply the activation after the sum. One more nonlinear layer
    is counted at the end, as in the ``dks`` example's ``subnet_max_func`` (for V1 the stem
    activation; its position changes nothing for the slope and curvature functions).
    ``shortcut_weight = 0`` is the vanilla (skip-free) network.

    Args:
        depth: one of 18, 34, 50, 101, 152, 200.
        shortcut_weight: in ``[0, 1]``; the residual branch gets ``sqrt(1 - w^2)``.
        version: ``"v2"`` (default) or ``"v1"``.

    Raises:
        NetworkError: unknown depth or version, weight outside [0, 1].

    Example:
        >>> net = resnet(101, 0.6)
        >>> net.n_nonlinear
        100
    """
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) \
            or int(depth) not in RESNET_CONFIGS:
        raise NetworkError(f"resnet depth must be one of {sorted(RESNET_CONFIGS)}, got {depth!r}")
    depth = int(depth)
    w = _check_shortcut_weight(shortcut_weight)
    if version not in ("v1", "v2"):
        raise NetworkError(f"resnet version must be 'v1' or 'v2', got {version!r}")
    blocks_per_group, bottleneck, projection = RESNET_CONFIGS[depth]
    v2 = version == "v2"
    n_act = (3 if bottleneck else 2) if v2 else (2 if bottleneck else 1)
    squares = (w**2, 1.0 - w**2)
    if v2:
        branch = _Chain([_NONLINEAR, _LINEAR] * n_act, label=f"{n_act} x (nonlinear, linear)")
        proj = _Chain([_NONLINEAR, _LINEAR], label="projection (nonlinear, linear)")
        plain_block = _Sum((_LINEAR, branch), squares, "residual")
        proj_block = _Sum((proj, branch), squares, "residual")
    else:
        branch = _Chain([_LINEAR] + [_NONLINEAR, _LINEAR] * n_act,
                        label=f"linear, {n_act} x (nonlinear, linear)")
        plain_block = _Chain([_Sum((_LINEAR, branch), squares, "residual"), _NONLINEAR])
        proj_block = plain_block
    layers = []
    for group, count in enumerate(blocks_per_group):
        for j in range(count):
            layers.append(proj_block if j == 0 and projection[group] else plain_block)
    layers.append(_NONLINEAR)
    label = f"resnet(depth={depth}, shortcut_weight={w!r}" + (
        ", version='v1')" if not v2 else ")")
    return _Chain(layers, label=label)


_NO_DESCRIPTION = (
    "global q_map/c_map need a network description (mlp, resnet, chain, ...); a "
    "subnet_max function only gives the subnetwork maximizing function")


class _Function(Network):
    """A network known only through a ``dks``-style ``subnet_max_func(x, r_fn)``."""

    def __init__(self, fn):
        self.fn = fn

    def subnet_max(self, x, r):
        return self.fn(x, r)

    @property
    def n_nonlinear(self):
        raise UnsupportedError("a network given as a subnet_max function has no layer count")

    def _value(self, x, r):
        raise UnsupportedError(_NO_DESCRIPTION)

    def q_map(self, phi, q):
        raise UnsupportedError(_NO_DESCRIPTION)

    def c_map(self, phi, c, *, q=1.0, q2=None):
        raise UnsupportedError(_NO_DESCRIPTION)

    def __repr__(self):
        name = getattr(self.fn, "__qualname__", None) or type(self.fn).__name__
        return f"subnet_max_func({name})"

    def describe(self):
        return f"{self!r}: a network known only through its subnetwork maximizing function"


def as_network(network) -> Network:
    """A :class:`Network` from a network or a ``dks``-style ``subnet_max_func(x, r_fn)``.

    Raises:
        NetworkError: neither a Network nor a callable.

    Example:
        >>> net = as_network(lambda x, r_fn: r_fn(r_fn(x)))
        >>> net.max_slope(3.0)
        9.0
    """
    if isinstance(network, Network):
        return network
    if callable(network):
        return _Function(network)
    raise NetworkError(
        "expected a network (mlp(...), resnet(...), chain(...), ...) or a dks-style "
        f"subnet_max_func(x, r_fn), got {type(network).__name__}")


# -- walking a description without recursion ----------------------------------------------
def _children(node):
    if isinstance(node, _Chain):
        return node.layers
    if isinstance(node, _Sum):
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
        from .maps import c_map as c_map_of
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
        return ((_LAYER, root),) if type(root) is _Nonlinear else ()
    cached = root.__dict__.get("_program")
    if cached is None:
        steps, stack = [], [root]
        while stack:
            item = stack.pop()
            kind = type(item)
            if kind is tuple:
                steps.append(item)
            elif kind is _Nonlinear:
                steps.append((_LAYER, item))
            elif kind is _Chain:
                stack.extend(reversed(item.layers))
            elif kind is _Sum:
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
        if kind is _Nonlinear:
            value = layer(value)
        elif kind is _Chain or kind is _Sum:
            children = node.layers if kind is _Chain else node.branches
            hit = memo.get(id(node))
            if hit is not None and hit[0] is value:
                value = hit[1]
            elif children:
                frames.append([node, 0, value, [] if kind is _Sum else None, children])
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
                    if kind is _Nonlinear:
                        value = layer(value)
                    elif kind is not _Linear:
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
    return _bottom_up(node, "_n_nonlinear", lambda leaf: int(type(leaf) is _Nonlinear),
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
        node.__dict__[key] = over_sum(values) if type(node) is _Sum else along_chain(values)
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
        if isinstance(parent, _Sum) and _depth_of(child) > 0 and id(child) not in seen:
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
        elif isinstance(layer, _Chain) and not layer.label:
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
                item, (_Nonlinear, _Linear)) else "chain()")
        elif isinstance(item, _Chain):
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
        if isinstance(node, _Sum):
            out.append(f"{first}{node.kind} with weights [{node._weights_text()}] of:")
            stack.extend((b, rest + "  - ", rest + "    ", False)
                         for b in reversed(node.branches))
        elif isinstance(node, _Chain) and node.layers and (top or not node.label):
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


# -- checks -----------------------------------------------------------------------------
def _check_network(obj, what):
    if type(obj) not in (_Nonlinear, _Linear, _Chain, _Sum):
        raise NetworkError(f"{what} must be a network node (nonlinear(), linear(), chain(...), "
                           f"...), got {obj!r}")


def _check_depth(depth):
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise NetworkError(f"depth must be a positive integer, got {depth!r}")
    if depth > MAX_DEPTH:
        raise NetworkError(
            f"depth {depth} is more than kernelshape handles ({MAX_DEPTH:,} nonlinear layers)")
    return int(depth)


#: Largest chain depth accepted by :func:`mlp` (networks are held layer by layer).
MAX_DEPTH = 1_000_000


def _check_second_moment(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0:
        raise DomainError(f"{name} must be a finite number > 0 (a second moment), got {value!r}")
    return float(value)


def _check_shortcut_weight(w):
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not 0.0 <= float(w) <= 1.0:
        raise NetworkError(f"shortcut_weight must be a number in [0, 1], got {w!r}")
    return float(w)


def _check_weights(branches, weights, normalize, squares=None):
    branches = list(branches)
    weights = list(weights)
    if not branches:
        raise NetworkError("a normalized sum needs at least one branch, got none")
    if len(weights) != len(branches):
        raise NetworkError(f"expected one weight per branch ({len(branches)}), got "
                           f"{len(weights)}")
    for i, b in enumerate(branches):
        _check_network(b, f"branch {i}")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w):
            raise NetworkError(f"weights must be finite real numbers, got {w!r}")
    squares = [float(w) ** 2 for w in weights] if squares is None else [float(s) for s in squares]
    total = math.fsum(squares)
    if total == 0.0:
        raise NetworkError(f"weights must not all be zero, got {weights}")
    if abs(total - 1.0) > WEIGHT_TOL:
        if not normalize:
            raise NetworkError(
                f"the squared weights of a normalized sum must sum to 1, got {total!r} for "
                f"weights {weights}; pass normalize=True to rescale them")
        squares = [s / total for s in squares]
    return tuple(squares)


def _as_activation(phi):
    from .activations import Activation, activation
    return phi if isinstance(phi, Activation) else activation(phi)
