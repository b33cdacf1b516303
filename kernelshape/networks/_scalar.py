"""The scalar walk: global Q/C maps (with derivatives), the NTK and ``subnet_max`` values.

Along the scalar path every position of an input looks alike: a pair of inputs is two
second moments and a correlation (THEORY.md §1-2, §8). Each layer enters through one rule
per *role* (the ``_scalar_role`` of its vocabulary entry):

* ``nonlinear``: the activation's Q and C maps;
* ``affine`` (dense and convolutional layers): ``q -> sigma_w^2 q + sigma_b^2``, the
  cross-covariance likewise; a convolution averages a spatially uniform kernel, so on this
  path it is a dense layer, whichever its init;
* ``average`` (pooling, flatten): the identity (an average of equal entries);
* ``normalize`` (layer norm over channels): ``q -> 1``, ``c`` unchanged.

Sums combine branches with their squared weights. The rules objects below are walked by
:mod:`._walk`; they know nothing of the vocabulary beyond these attributes.
"""

from __future__ import annotations

import numpy as np

from ..errors import NetworkError, UnsupportedError
from ._dual import expectations


def _phi_of(node, default):
    phi = node.phi if node.phi is not None else default
    if phi is None:
        raise NetworkError(
            "a nonlinear() layer without an activation was met and none was given: pass the "
            "activation (net.c_map(phi, c)) or bind it in the network (nonlinear(phi))")
    return phi


def _is_identity(node):
    return node.sigma_w == 1.0 and node.sigma_b == 0.0


class ValueRules:
    """``subnet_max`` values: ``r`` at nonlinear layers, weighted sums (THEORY.md §2).

    Averaging layers and layer norm are the identity; dense and convolutional layers too,
    as long as they keep ``q`` (``sigma_w = 1``, ``sigma_b = 0``), which DKS and TAT assume.
    """

    def __init__(self, r):
        self.r = r

    def leaf(self, node, x):
        role = node._scalar_role
        if role == "nonlinear":
            return self.r(x)
        if role == "affine" and not _is_identity(node):
            raise UnsupportedError(
                f"the subnetwork maximizing function (DKS, TAT) assumes linear layers that keep "
                f"q (sigma_w = 1, sigma_b = 0), got {node!r}: sigma_w != 1 moves q away from 1, "
                "where each layer's maps are set, and sigma_b != 0 makes c depend on q")
        return x

    def combine(self, node, outs):
        total = node.squares[0] * outs[0]
        for s, value in zip(node.squares[1:], outs[1:]):
            total = total + s * value
        return total


class MapRules:
    """``(q, q', q'', c, c', c'')``: derivatives in the input q (at fixed c) and in the
    input c (at fixed q), to ``order``; ``c`` None for the Q map alone."""

    def __init__(self, phi, order):
        self.phi, self.order = phi, order

    def leaf(self, node, state):
        role = node._scalar_role
        if role == "nonlinear":
            return self._nonlinear(_phi_of(node, self.phi), state)
        if role == "affine":
            if _is_identity(node):
                return state
            return self._affine(node.sigma_w ** 2, node.sigma_b ** 2, state)
        if role == "normalize":
            _, dq, _, c, dc, d2c = state
            zero = None if dq is None else 0.0
            return 1.0, zero, zero, c, dc, d2c
        return state

    def _nonlinear(self, phi, state):
        q, dq, d2q, c, dc, d2c = state
        order = self.order
        q_out = phi.q_map(q)
        if order and dq is not None:
            q1 = phi.q_map(q, 1)
            dq_out = q1 * dq
            d2q_out = phi.q_map(q, 2) * dq * dq + q1 * d2q if order > 1 else d2q
            dq, d2q = dq_out, d2q_out
        if c is not None:
            c_out = phi.c_map(c, q=q)
            if order:
                c1 = np.asarray(phi.c_map(c, q=q, order=1))
                dc_out = c1 * dc
                if order > 1:
                    with np.errstate(invalid="ignore"):   # inf * 0 only where dc = 0
                        d2c = np.asarray(phi.c_map(c, q=q, order=2)) * dc * dc + c1 * d2c
                dc = dc_out
            c = c_out
        return q_out, dq, d2q, c, dc, d2c

    @staticmethod
    def _affine(w2, b2, state):
        q, dq, d2q, c, dc, d2c = state
        q_out = w2 * q + b2
        if c is not None:
            ratio = w2 * q / q_out
            c = (w2 * q * c + b2) / q_out
            dc = None if dc is None else ratio * dc
            d2c = None if d2c is None else ratio * d2c
        dq = None if dq is None else w2 * dq
        d2q = None if d2q is None else w2 * d2q
        return q_out, dq, d2q, c, dc, d2c

    def combine(self, node, outs):
        squares = node.squares
        q_out = sum(s * o[0] for s, o in zip(squares, outs))
        dq = d2q = c_out = dc = d2c = None
        if outs[0][1] is not None:
            dq = sum(s * o[1] for s, o in zip(squares, outs))
            d2q = sum(s * o[2] for s, o in zip(squares, outs))
        if outs[0][3] is not None:
            c_out = sum(s * o[0] * o[3] for s, o in zip(squares, outs)) / q_out
            if outs[0][4] is not None:
                dc = sum(s * o[0] * o[4] for s, o in zip(squares, outs)) / q_out
                d2c = sum(s * o[0] * o[5] for s, o in zip(squares, outs)) / q_out
        return q_out, dq, d2q, c_out, dc, d2c


class TwoQMapRules:
    """``(q1, q2, c)`` for two inputs at different second moments (THEORY.md §1-2)."""

    def __init__(self, phi):
        self.phi = phi

    def leaf(self, node, state):
        role = node._scalar_role
        q1, q2, c = state
        if role == "nonlinear":
            from ..maps import c_map as c_map_of
            phi = _phi_of(node, self.phi)
            return phi.q_map(q1), phi.q_map(q2), c_map_of(phi, c, q=q1, q2=q2)
        if role == "affine" and not _is_identity(node):
            w2, b2 = node.sigma_w ** 2, node.sigma_b ** 2
            p1, p2 = w2 * q1 + b2, w2 * q2 + b2
            return p1, p2, (w2 * c * np.sqrt(q1 * q2) + b2) / np.sqrt(p1 * p2)
        if role == "normalize":
            return 1.0, 1.0, c
        return state

    def combine(self, node, outs):
        q1 = sum(s * a for s, (a, _, _) in zip(node.squares, outs))
        q2 = sum(s * b for s, (_, b, _) in zip(node.squares, outs))
        cov = sum(s * np.sqrt(a * b) * c for s, (a, b, c) in zip(node.squares, outs))
        return q1, q2, cov / np.sqrt(q1 * q2)


class NTKRules:
    """``(q, k12, t11, t12)``: NNGP and NTK of two inputs at the same second moment ``q``
    (neural-tangents' NTK parameterization, THEORY.md §8).

    Dense layers: ``k -> w2 k + b2``, ``t -> k' + w2 t``; nonlinear layers ``k12 ->
    E[phi(u) phi(v)]``, ``t -> E[phi'(u) phi'(v)] t``. With ``target`` set, only the
    ``target``-th dense or convolutional layer (in program order) adds its ``k'``: the
    per-layer NTK ``Theta_i`` of Martens et al. (2021), Theorem 27.
    """

    def __init__(self, phi, target=None):
        self.phi, self.target, self.seen = phi, target, 0

    def leaf(self, node, state):
        role = node._scalar_role
        q, k12, t11, t12 = state
        if role == "nonlinear":
            phi = _phi_of(node, self.phi)
            flat = np.append(np.ravel(k12), q)
            value, slope = expectations(phi, q, q, flat, derivative=True)
            shape = np.shape(k12)
            return (float(value[-1]), value[:-1].reshape(shape), float(slope[-1]) * t11,
                    slope[:-1].reshape(shape) * t12)
        if role == "affine" and not node.skip:
            w2, b2 = node.sigma_w ** 2, node.sigma_b ** 2
            q, k12 = w2 * q + b2, w2 * k12 + b2
            adds = self.target is None or self.seen == self.target
            self.seen += 1
            if adds:
                return q, k12, q + w2 * t11, k12 + w2 * t12
            return q, k12, w2 * t11, w2 * t12
        if role == "normalize":
            return 1.0, k12 / q, t11 / q, t12 / q
        return state

    def combine(self, node, outs):
        return tuple(sum(s * o[i] for s, o in zip(node.squares, outs)) for i in range(4))


class LinearNTKRules(NTKRules):
    """:class:`NTKRules` of the same network with every activation replaced by the
    identity: the reference against which Theorem 27 compares each per-layer NTK.

    In that linear network ``Theta_i(x, x') = lambda_i x.x' / d_0``, where ``lambda_i`` is
    the product of the squared sum weights (and weight variances) on the paths from layer
    ``i`` to the output: ``1`` in an MLP, ``1 - w^2`` for a layer inside a residual branch
    with shortcut weight ``w``.
    """

    def leaf(self, node, state):
        if node._scalar_role == "nonlinear":
            return state
        return super().leaf(node, state)


class GaussianRules:
    """Whether a layer's input is a Gaussian pre-activation (output of a dense or conv
    layer, averaged or summed): layer norm's kernel rule holds only there."""

    def leaf(self, node, gaussian):
        role = node._scalar_role
        if role == "affine":
            return True
        if role == "nonlinear":
            return False
        if role == "normalize" and not gaussian:
            raise UnsupportedError(
                f"{node!r} must follow a linear or conv layer (possibly through pooling or "
                "sums): its kernel rule K12 / sqrt(K11 K22) holds for zero-mean Gaussian "
                "pre-activations, not for the network input or an activation's output "
                "(their channel mean is not zero)")
        return gaussian if role != "normalize" else True

    def combine(self, node, outs):
        return all(outs)
