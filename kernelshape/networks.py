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
activation. :func:`mlp` and :func:`resnet` build the usual families; :func:`as_network`
wraps any ``dks``-style callable ``subnet_max_func(x, r_fn)``.
"""

from __future__ import annotations

import functools
import math
import numbers

from .errors import NetworkError, UnsupportedError

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

    Subclasses implement ``_value(x, r)`` (push a scalar through, nonlinear layers replaced
    by ``r``) and ``_maps(phi, q, c)`` (global Q and C maps).
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
        best = self._value(x, r)
        for sub in self._subnetworks:
            value = sub._value(x, r)
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

    @functools.cached_property
    def _subnetworks(self):
        found, seen = [], set()
        self._collect(found, seen)
        return tuple(found)

    def _collect(self, found, seen):
        pass

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
        q_out, _ = self._maps(_as_activation(phi), float(q), None)
        return q_out

    def c_map(self, phi, c, *, q=1.0):
        """The network's C map at input correlation ``c`` (both inputs at second moment ``q``).

        Nonlinear layers apply ``phi.c_map(c, q=q_layer)`` at their own input q; normalized
        sums give ``c_out = sum_i w_i^2 q_i c_i / sum_i w_i^2 q_i``. Inputs with unequal
        second moments are not supported (that needs the two-q C map).

        Example:
            >>> from kernelshape import activation
            >>> round(mlp(1).c_map(activation("relu"), 0.0), 12)   # 1 / pi
            0.318309886184
        """
        if isinstance(q, (tuple, list)):
            raise UnsupportedError(
                "Network.c_map needs both inputs at the same second moment q; got a pair "
                f"{tuple(q)!r}: unequal input q need the two-q C map, which is not provided")
        _, c_out = self._maps(_as_activation(phi), float(q), c)
        return c_out

    # -- display ------------------------------------------------------------------------
    def describe(self) -> str:
        """An indented, human-readable description (repeated layers collapsed).

        Example:
            >>> print(mlp(2).describe())
            mlp(depth=2): 2 nonlinear layers on the longest path
              2 x nonlinear
        """
        head = f"{self!r}: {self.n_nonlinear} nonlinear layers on the longest path"
        return "\n".join([head] + ["  " + line for line in self._lines(top=True)])

    def _lines(self, top=False):
        return [repr(self)]


class _Nonlinear(Network):
    def _value(self, x, r):
        return r(x)

    def _maps(self, phi, q, c):
        q_out = phi.q_map(q)
        c_out = None if c is None else phi.c_map(c, q=q)
        return q_out, c_out

    def _depth(self):
        return 1

    def __repr__(self):
        return "nonlinear"

    def __eq__(self, other):
        return isinstance(other, _Nonlinear)

    def __hash__(self):
        return hash("nonlinear")


class _Linear(Network):
    def _value(self, x, r):
        return x

    def _maps(self, phi, q, c):
        return q, c

    def _depth(self):
        return 0

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

    def _value(self, x, r):
        for layer in self.layers:
            x = layer._value(x, r)
        return x

    def _maps(self, phi, q, c):
        for layer in self.layers:
            q, c = layer._maps(phi, q, c)
        return q, c

    def _collect(self, found, seen):
        for layer in self.layers:
            layer._collect(found, seen)

    def _depth(self):
        return sum(layer._depth() for layer in self.layers)

    def __repr__(self):
        if self.label:
            return self.label
        return "chain(" + ", ".join(repr(layer) for layer in self.layers) + ")"

    def _lines(self, top=False):
        if self.label and not top:
            return [self.label]
        out, i = [], 0
        layers = self.layers
        while i < len(layers):
            j = i
            while j + 1 < len(layers) and layers[j + 1] is layers[i]:
                j += 1
            sub = layers[i]._lines()
            prefix = f"{j - i + 1} x " if j > i else ""
            out.append(prefix + sub[0])
            out.extend(("  " if prefix else "") + line for line in sub[1:])
            i = j + 1
        return out


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

    def _value(self, x, r):
        total = self.squares[0] * self.branches[0]._value(x, r)
        for s, branch in zip(self.squares[1:], self.branches[1:]):
            total = total + s * branch._value(x, r)
        return total

    def _maps(self, phi, q, c):
        qs, cs = [], []
        for branch in self.branches:
            q_i, c_i = branch._maps(phi, q, c)
            qs.append(q_i)
            cs.append(c_i)
        q_out = sum(s * q_i for s, q_i in zip(self.squares, qs))
        if c is None:
            return q_out, None
        c_out = sum(s * q_i * c_i for s, q_i, c_i in zip(self.squares, qs, cs)) / q_out
        return q_out, c_out

    def _collect(self, found, seen):
        for branch in self.branches:
            if branch._depth() > 0 and id(branch) not in seen:
                seen.add(id(branch))
                found.append(branch)
            branch._collect(found, seen)

    def _depth(self):
        return max(branch._depth() for branch in self.branches)

    def __repr__(self):
        if self.label:
            return self.label
        weights = ", ".join(f"{math.sqrt(s):.6g}" for s in self.squares)
        branches = ", ".join(repr(b) for b in self.branches)
        return f"{self.kind}([{branches}], weights=[{weights}])"

    def _lines(self, top=False):
        weights = ", ".join(f"{math.sqrt(s):.6g}" for s in self.squares)
        out = [f"{self.kind} with weights [{weights}] of:"]
        for branch in self.branches:
            sub = branch._lines()
            out.append("  - " + sub[0])
            out.extend("    " + s for s in sub[1:])
        return out


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


class _Function(Network):
    """A network known only through a ``dks``-style ``subnet_max_func(x, r_fn)``."""

    def __init__(self, fn):
        self.fn = fn

    def subnet_max(self, x, r):
        return self.fn(x, r)

    @property
    def n_nonlinear(self):
        raise UnsupportedError("a network given as a subnet_max function has no layer count")

    def _maps(self, phi, q, c):
        raise UnsupportedError(
            "global q_map/c_map need a network description (mlp, resnet, chain, ...); a "
            "subnet_max function only gives the subnetwork maximizing function")

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


# -- checks -----------------------------------------------------------------------------
def _check_network(obj, what):
    if not isinstance(obj, Network) or isinstance(obj, _Function):
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
