"""Network structure: chains, normalized sums, weight sharing, heads; checks.

The layers themselves are in :mod:`._layers`; every node here is a :class:`Network` whose
values, maps and kernels come from :mod:`._network`.
"""

from __future__ import annotations

import math
import numbers

from ..errors import NetworkError, UnsupportedError
from ._layers import _SKIP, _Layer
from ._network import Network
from ._walk import CHAIN, SUM

#: How far the squared weights of a normalized sum may sum away from 1 (rounding only).
WEIGHT_TOL = 1e-12

class _Chain(Network):
    _role = CHAIN

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
    _role = SUM

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
                             squares=list(fractions), what="fractions")
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
        shortcut = _SKIP
    _check_network(shortcut, "shortcut")
    w = _check_shortcut_weight(shortcut_weight)
    return _Sum((shortcut, branch), (w**2, 1.0 - w**2), "residual")


class _Shared(_Chain):
    """One block applied ``times`` times with the same weights (an unrolled recurrent cell)."""

    _shared = True

    def __init__(self, block, times):
        super().__init__((block,) * times, label=f"shared({block!r}, times={times})")
        self.block, self.times = block, times


def shared(block: Network, times: int) -> Network:
    """``block`` applied ``times`` times with the *same* weights (weight sharing, as an
    unrolled recurrent cell without new inputs).

    At infinite width the forward kernel of a weight-shared block equals that of
    independent copies (Yang 2019, tensor programs), so its maps, NNGP and ``subnet_max``
    are those of ``chain(block, ..., block)``, as DKS uses. Its NTK is not: the shared
    parameters' gradients correlate across uses, so :meth:`Network.ntk` and
    ``kernel(..., ntk=True)`` refuse it.

    Example:
        >>> shared(chain(linear(), nonlinear()), 3).max_slope(2.0)
        8.0
    """
    _check_network(block, "shared block")
    if isinstance(times, bool) or not isinstance(times, numbers.Integral) or times < 1:
        raise NetworkError(f"times must be a positive integer, got {times!r}")
    if times > MAX_DEPTH:
        raise NetworkError(f"times={times} is more than kernelshape handles ({MAX_DEPTH:,})")
    return _Shared(block, int(times))


class _Heads(Network):
    """A trunk followed by several output heads; each output is ``chain(trunk, head)``."""

    _role = "heads"

    def __init__(self, trunk, heads):
        self.trunk, self.heads = trunk, tuple(heads)
        self.paths = tuple(_Chain((trunk, head)) for head in self.heads)

    def subnet_max(self, x, r):
        return max(path.subnet_max(x, r) for path in self.paths)

    def _value(self, x, r):
        return self.paths[0]._value(x, r)

    @property
    def _subnetworks(self):
        found, seen = [], set()
        for path in self.paths:
            for sub in (path, *path._subnetworks):
                if id(sub) not in seen:
                    seen.add(id(sub))
                    found.append(sub)
        return tuple(found)

    def _depth(self):
        return max(path._depth() for path in self.paths)

    def q_map(self, phi, q, *, order=0):
        """One Q map per head (a tuple, heads in order)."""
        return tuple(path.q_map(phi, q, order=order) for path in self.paths)

    def c_map(self, phi, c, *, q=1.0, q2=None, order=0):
        """One C map per head (a tuple, heads in order)."""
        return tuple(path.c_map(phi, c, q=q, q2=q2, order=order) for path in self.paths)

    def ntk(self, phi, c, *, q=1.0):
        """One NTK per head (a tuple, heads in order)."""
        return tuple(path.ntk(phi, c, q=q) for path in self.paths)

    def layer_ntks(self, phi, c, *, q=1.0):
        """Per-layer NTKs per head (a tuple, heads in order)."""
        return tuple(path.layer_ntks(phi, c, q=q) for path in self.paths)

    def kernel(self, X, *, ntk=False, phi=None):
        """One :class:`Kernel` per head (a tuple, heads in order)."""
        return tuple(path.kernel(X, ntk=ntk, phi=phi) for path in self.paths)

    def __repr__(self):
        return f"heads({self.trunk!r}, [{', '.join(repr(h) for h in self.heads)}])"

    def describe(self):
        lines = [f"{self!r}: {self.n_nonlinear} nonlinear layers on the longest path"]
        for i, path in enumerate(self.paths):
            lines += [f"  head {i}: " + path.describe().replace("\n", "\n    ")]
        return "\n".join(lines)


def heads(trunk: Network, outputs) -> Network:
    """A network with several outputs: ``trunk`` followed by each of ``outputs``.

    ``subnet_max`` maximizes over every head (each ``chain(trunk, head)`` is a network on
    its own, as the DKS paper prescribes for multi-output networks) and every subnetwork;
    maps and kernels are tuples, one entry per head.

    Example:
        >>> net = heads(chain(nonlinear()), [nonlinear(), chain(nonlinear(), nonlinear())])
        >>> net.max_slope(2.0)   # the longer head: 2^3
        8.0
    """
    _check_network(trunk, "trunk")
    outputs = list(outputs)
    if not outputs:
        raise NetworkError("heads() needs at least one output head, got none")
    for i, head in enumerate(outputs):
        _check_network(head, f"head {i}")
    return _Heads(trunk, outputs)


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

    def q_map(self, phi, q, *, order=0):
        raise UnsupportedError(_NO_DESCRIPTION)

    def c_map(self, phi, c, *, q=1.0, q2=None, order=0):
        raise UnsupportedError(_NO_DESCRIPTION)

    def ntk(self, phi, c, *, q=1.0):
        raise UnsupportedError(_NO_DESCRIPTION)

    def layer_ntks(self, phi, c, *, q=1.0):
        raise UnsupportedError(_NO_DESCRIPTION)

    def kernel(self, X, *, ntk=False, phi=None):
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


# -- checks -----------------------------------------------------------------------------
def _check_network(obj, what):
    if isinstance(obj, _Heads):
        raise NetworkError(f"{what}: a network with several heads is a whole network; it cannot "
                           "be a layer or branch of another (put the heads last)")
    if not isinstance(obj, (_Layer, _Chain, _Sum)):
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


def _check_weights(branches, weights, normalize, squares=None, what="weights"):
    """Squared weights summing to 1. ``what="fractions"``: the user gave channel fractions
    (``parallel``), so messages speak of fractions, not squared weights."""
    branches = list(branches)
    weights = list(weights)
    given = weights if squares is None else list(squares)
    if not branches:
        raise NetworkError("a normalized sum needs at least one branch, got none")
    if len(weights) != len(branches):
        raise NetworkError(f"expected one {what[:-1]} per branch ({len(branches)}), got "
                           f"{len(weights)}")
    for i, b in enumerate(branches):
        _check_network(b, f"branch {i}")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w):
            raise NetworkError(f"weights must be finite real numbers, got {w!r}")
    squares = [float(w) ** 2 for w in weights] if squares is None else [float(s) for s in squares]
    total = math.fsum(squares)
    if total == 0.0:
        raise NetworkError(f"{what} must not all be zero, got {given}")
    if abs(total - 1.0) > WEIGHT_TOL:
        if not normalize:
            whose = ("the channel fractions of parallel branches" if what == "fractions"
                     else "the squared weights of a normalized sum")
            raise NetworkError(
                f"{whose} must sum to 1, got {total!r} for {what} {given}; pass "
                "normalize=True to rescale them")
        squares = [s / total for s in squares]
    return tuple(squares)
