"""The :class:`Network` base class: what every description answers.

Values and maps run through the scalar walk (:mod:`._scalar`), kernels on inputs through
:mod:`._kernels`; both are walked by :mod:`._walk` (flat programs when small, an
explicit-stack memoized walk otherwise), so descriptions may nest to any depth.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from ..errors import DomainError, UnsupportedError
from . import _fastmaps, _kernels, _scalar
from ._display import _describe_lines, _render
from ._walk import (
    _LAYER,
    _depth_of,
    _evaluate,
    _execute,
    _leaf_rule,
    _leaves,
    _program,
    _subnetworks_of,
)


class Network:
    """Base class of network descriptions (see :mod:`kernelshape.networks`).

    Descriptions may nest to any depth: nothing walks them by Python recursion.
    """

    label: str | None = None

    # -- subnetwork maximizing function -------------------------------------------------
    def subnet_max(self, x, r):
        """``M_{f,r}(x)``: the largest value of any subnetwork at ``x`` (THEORY.md §2).

        Nonlinear layers become ``r``; dense and convolutional layers (``sigma_w = 1``,
        ``sigma_b = 0``), pooling, flatten and layer norm the identity; normalized sums
        ``sum_i w_i^2 x_i``. The maximum runs over the whole network (every head) and every
        branch of a sum that holds a nonlinear layer (a network on its own).

        Raises:
            UnsupportedError: a dense or conv layer with ``sigma_w != 1`` or ``sigma_b != 0``
                (DKS and TAT assume layers that keep q).

        Example:
            >>> from kernelshape.networks import mlp
            >>> mlp(3).subnet_max(0.0, lambda y: y + 1)
            3.0
        """
        self._check_structure()
        values = _evaluate((self, *self._subnetworks), x, _scalar.ValueRules(r))
        best = values[0]
        for value in values[1:]:
            best = max(best, value)
        return best

    def max_slope(self, xi):
        """DKS maximal slope function ``mu(xi) = M_{f, y -> xi y}(1)`` (Martens et al. §5).

        Example:
            >>> from kernelshape.networks import mlp
            >>> mlp(4).max_slope(2.0)
            16.0
        """
        return self.subnet_max(1.0, lambda y: xi * y)

    def max_curvature(self, t):
        """TAT maximal curvature function ``M_{f, y -> t + y}(0)`` (Zhang et al. §4.2).

        Example:
            >>> from kernelshape.networks import mlp
            >>> mlp(4).max_curvature(0.25)
            1.0
        """
        return self.subnet_max(0.0, lambda y: t + y)

    def _value(self, x, r):
        """The whole network's value at ``x`` with nonlinear layers replaced by ``r``."""
        self._check_structure()
        return _evaluate((self,), x, _scalar.ValueRules(r))[0]

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
    def q_map(self, phi, q, *, order: int = 0):
        """The network's Q map ``Q_f(q)`` (or ``Q_f'``, ``Q_f''``): ``q`` through every layer.

        Dense and conv layers map ``q -> sigma_w^2 q + sigma_b^2``, nonlinear layers apply
        the activation's Q map, layer norm sets ``q = 1``, sums weigh their branches
        (THEORY.md §2, §8); derivatives by the chain rule.

        Args:
            phi: the activation of the unbound ``nonlinear()`` layers (an
                :class:`~kernelshape.activations.Activation` or its name); None when every
                nonlinear layer has its own.
            q: input second moment, a number > 0.
            order: 0 for the value, 1 and 2 for derivatives in ``q``.

        Returns:
            A float64 number.

        Example:
            >>> from kernelshape import activation
            >>> from kernelshape.networks import mlp
            >>> round(mlp(3).q_map(activation("relu"), 8.0), 12)   # 8 / 2^3
            1.0
            >>> round(mlp(3).q_map(activation("relu"), 8.0, order=1), 12)   # 1 / 2^3
            0.125
        """
        phi, order = _as_activation(phi), _check_order(order)
        q = _check_second_moment("q", q)
        self._check_structure()
        start = (q, 1.0 if order else None, 0.0 if order else None, None, None, None)
        return float(_evaluate((self,), start, _scalar.MapRules(phi, order))[0][order])

    def c_map(self, phi, c, *, q=1.0, q2=None, order: int = 0):
        """The network's C map ``C_f(c)`` (or ``C_f'``, ``C_f''`` in ``c``) at input ``q``.

        Nonlinear layers apply the activation's C map at their own input second moments,
        dense and conv layers ``c -> (sw^2 q c + sb^2) / (sw^2 q + sb^2)``, normalized sums
        combine the branches' covariances (THEORY.md §1-2):

        .. math:: q^{(j)}_{out} = \\sum_i w_i^2 q^{(j)}_i, \\qquad
                  c_{out} = \\frac{\\sum_i w_i^2 c_i \\sqrt{q^{(1)}_i q^{(2)}_i}}
                  {\\sqrt{q^{(1)}_{out} q^{(2)}_{out}}}

        which for ``q2 = q`` is ``sum_i w_i^2 q_i c_i / q_out``. With ``q2`` given and
        different from ``q``, each nonlinear layer uses the two-q C map (float64, order 0).

        Args:
            phi: the activation of unbound ``nonlinear()`` layers; None if all are bound.
            c: input correlation(s) in [-1, 1], a number or an array.
            q: second moment of the first input (of both when ``q2`` is None), > 0.
            q2: second moment of the second input, > 0; None for ``q2 = q``.
            order: 0, 1 or 2: the value or a derivative in ``c`` (``q2`` only with 0).

        Raises:
            DomainError: q or q2 not a positive number (a pair for q: use ``q2=``), c
                outside [-1, 1], order not 0, 1, 2.

        Example:
            >>> from kernelshape import activation
            >>> from kernelshape.networks import mlp
            >>> round(mlp(1).c_map(activation("relu"), 0.0), 12)   # 1 / pi
            0.318309886184
            >>> round(mlp(1).c_map(activation("relu"), 0.0, order=1), 12)   # 1/2
            0.5
        """
        if isinstance(q, (tuple, list)):
            raise DomainError(
                f"q must be one number (the first input's second moment), got {tuple(q)!r}; "
                "give the second input's second moment as q2=")
        phi, order = _as_activation(phi), _check_order(order)
        q = _check_second_moment("q", q)
        c = _check_c(c)
        self._check_structure()
        if q2 is None or _check_second_moment("q2", q2) == q:
            out = _fastmaps.closed_c_map(self, phi, c, q, order)
            if out is not None:   # a chain of closed forms: one compiled loop
                return float(out) if np.ndim(c) == 0 else out
            dc = None if not order else np.ones_like(c) if np.ndim(c) else 1.0
            d2c = None if not order else np.zeros_like(c) if np.ndim(c) else 0.0
            out = _evaluate((self,), (q, None, None, c, dc, d2c),
                            _scalar.MapRules(phi, order))[0][3 + order]
            return float(out) if np.ndim(c) == 0 else out
        if order:
            raise UnsupportedError(f"the network C map for q2 != q is provided for order 0 "
                                   f"only, got order={order}")
        state = (q, float(q2), c)
        out = _evaluate((self,), state, _scalar.TwoQMapRules(phi))[0][2]
        return float(out) if np.ndim(c) == 0 else out

    def ntk(self, phi, c, *, q=1.0):
        """The NTK ``Theta(x, x')`` along the scalar path, neural-tangents' parameterization.

        Two inputs with ``|x|^2 / d = |x'|^2 / d = q`` and ``x.x' / d = q c`` at every
        position; dense and conv layers add ``Theta -> K' + sigma_w^2 Theta``, nonlinear
        layers multiply by ``E[phi'(u) phi'(v)]`` (THEORY.md §8). Only dense and conv
        layers hold parameters.

        Args:
            phi: activation of unbound nonlinear layers (None if all are bound).
            c: input correlation(s) in [-1, 1].
            q: the inputs' second moment, > 0.

        Returns:
            ``Theta(x, x')``: a float (scalar ``c``) or an array of c's shape.

        Example:
            >>> from kernelshape import activation
            >>> from kernelshape.networks import chain, linear, nonlinear
            >>> net = chain(linear(), nonlinear(), linear())
            >>> net.ntk(activation("relu"), 1.0)   # Q(1) + 1 * Q'(...) : 1/2 + 1/2
            1.0
        """
        return self._ntk(phi, c, q, None)

    def _ntk(self, phi, c, q, target, linear=False):
        phi = _as_activation(phi)
        q = _check_second_moment("q", q)
        c = _check_c(c)
        self._check_structure(ntk=True)
        k12 = q * np.asarray(c, dtype=np.float64)
        start = (q, k12, 0.0, np.zeros_like(k12))
        rules = (_scalar.LinearNTKRules if linear else _scalar.NTKRules)(phi, target)
        if target is None:
            out = _evaluate((self,), start, rules)[0][3]
        else:   # layer indices count program steps: no memoized walk
            out = _execute(_program(self), start, _leaf_rule(rules))[3]
        return float(out) if np.ndim(c) == 0 else out

    def _n_parameterized(self):
        """Dense and conv layers met along the program (the per-layer NTK indices)."""
        return sum(1 for op, node in _program(self)
                   if op == _LAYER and node._scalar_role == "affine" and not node.skip)

    def layer_ntks(self, phi, c, *, q=1.0, normalized=False):
        """Per-layer NTKs ``Theta_i(x, x')``: the part of :meth:`ntk` from each dense or
        conv layer's parameters, in program order (Martens et al. 2021, Theorem 27).

        Args:
            phi: activation of unbound ``nonlinear()`` layers (None if all are bound).
            c: input cosine similarity (scalar or array).
            q: input second moment.
            normalized: divide each ``Theta_i`` by ``lambda_i``, its value at ``c = 1``
                in the same network with every activation replaced by the identity, so
                that the linear network gives ``Theta_i = c`` exactly. Theorem 27 compares
                against ``x.x' / d_0``, which only this normalization makes the identity's
                value in networks with weighted sums (a layer in a residual branch with
                shortcut weight ``w`` has ``lambda_i = 1 - w^2``); in an MLP with unit
                weight variances ``lambda_i = 1`` and nothing changes.

        Returns:
            An array of shape ``(layers, *c.shape)``; unnormalized, the rows sum to
            :meth:`ntk`.
        """
        count = self._n_parameterized()
        rows = np.array([self._ntk(phi, c, q, i) for i in range(count)])
        if normalized:
            rows = rows / self._linear_ntk_scales(phi).reshape((count,) + (1,) * (rows.ndim - 1))
        return rows

    def _linear_ntk_scales(self, phi):
        """``lambda_i`` of :meth:`layer_ntks`: each layer's NTK at ``c = 1``, ``q = 1`` in
        this network with identity activations."""
        return np.array([self._ntk(phi, 1.0, 1.0, i, linear=True)
                         for i in range(self._n_parameterized())])

    def kernel(self, X, *, ntk: bool = False, phi=None):
        """NNGP (and NTK) of the network on a batch of inputs, over (input, position) pairs.

        Conventions are neural-tangents' ``stax`` (THEORY.md §8): fan-in normalization,
        zero padding counted in the fan-in, NTK parameterization. Nonlinear entries come
        from the activation's float64 maps (two-q where second moments differ).

        Args:
            X: inputs of shape ``(n, features)`` or ``(n, *spatial, channels)``.
            ntk: also compute the NTK.
            phi: activation of unbound ``nonlinear()`` layers (None if all are bound).

        Returns:
            A :class:`~kernelshape.networks.Kernel` with ``(n, n)`` arrays ``nngp``, ``ntk``.

        Raises:
            DomainError: X not a finite array of a supported shape.
            NetworkError: a layer does not fit the input's shape, or the output still has
                positions (end with ``flatten()`` or ``global_avg_pool()``).

        Example:
            >>> import numpy as np
            >>> from kernelshape.networks import chain, linear
            >>> chain(linear(sigma_w=2.0)).kernel(np.eye(2)).nngp
            array([[2., 0.],
                   [0., 2.]])
        """
        phi = _as_activation(phi)
        x = _kernels.check_inputs(X)
        self._check_structure(ntk=bool(ntk))
        state = _kernels.inputs_kernel(x, bool(ntk))
        out = _evaluate((self,), state, _kernels.KernelRules(phi))[0]
        return _kernels.finish(out)

    def _check_structure(self, ntk=False):
        """Layer norm only on Gaussian pre-activations; no NTK through shared weights."""
        leaves = self.__dict__.get("_leaf_kinds")
        if leaves is None:
            leaves = self.__dict__["_leaf_kinds"] = {leaf.kind for leaf in _leaves(self)}
        if "layer_norm" in leaves and not self.__dict__.get("_gaussian_checked"):
            _evaluate((self,), False, _scalar.GaussianRules())
            self.__dict__["_gaussian_checked"] = True
        if ntk and _has_shared(self):
            raise UnsupportedError(
                f"the NTK of {self!r} is not provided: a block with shared weights "
                "(shared(...)) adds cross terms between its uses (Yang 2020); its NNGP and "
                "maps are those of the unshared chain and are provided")

    # -- display ------------------------------------------------------------------------
    def __repr__(self):
        return _render(self)

    def describe(self) -> str:
        """An indented, human-readable description (repeated layers collapsed).

        Example:
            >>> from kernelshape.networks import mlp
            >>> print(mlp(2).describe())
            mlp(depth=2): 2 nonlinear layers on the longest path
              2 x nonlinear
        """
        head = f"{self!r}: {self.n_nonlinear} nonlinear layers on the longest path"
        return "\n".join([head] + ["  " + line for line in _describe_lines(self)])


def _has_shared(root):
    cached = root.__dict__.get("_has_shared")
    if cached is None:
        seen, stack, cached = set(), [root], False
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if getattr(node, "_shared", False):
                cached = True
                break
            stack.extend(getattr(node, "layers", ()) or getattr(node, "branches", ()))
        root.__dict__["_has_shared"] = cached
    return cached


def _check_order(order):
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order not in (
            0, 1, 2):
        raise DomainError(f"order must be 0, 1 or 2 (value, first, second derivative), "
                          f"got {order!r}")
    return int(order)


def _check_second_moment(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0:
        raise DomainError(f"{name} must be a finite number > 0 (a second moment), got {value!r}")
    return float(value)


def _check_c(c):
    if c is None or isinstance(c, (str, bytes)):
        raise DomainError(f"c must be a correlation in [-1, 1] or an array of them, got {c!r}")
    try:
        arr = np.asarray(c, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DomainError(f"c must be a correlation in [-1, 1] or an array of them, "
                          f"got {c!r}") from err
    if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > 1.0 + 1e-15):
        raise DomainError(f"c must be a correlation in [-1, 1], got {c!r}")
    return float(arr) if arr.ndim == 0 else np.clip(arr, -1.0, 1.0)


def _as_activation(phi):
    if phi is None:
        return None
    from ..activations import Activation, activation
    return phi if isinstance(phi, Activation) else activation(phi)
