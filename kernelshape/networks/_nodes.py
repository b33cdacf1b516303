"""Network nodes: the vocabulary (nonlinear, linear, chain, sums) and its checks."""

from __future__ import annotations

import functools
import math
import numbers

from ..errors import DomainError, NetworkError, UnsupportedError
from ._walk import (
    _depth_of,
    _describe_lines,
    _evaluate,
    _MapRules,
    _render,
    _subnetworks_of,
    _TwoQMapRules,
    _ValueRules,
)

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
    from ..activations import Activation, activation
    return phi if isinstance(phi, Activation) else activation(phi)

