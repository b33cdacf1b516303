"""Which networks a depth figure draws: the network given, or a family of it over depth.

A depth sweep needs a family: ``mlp(D)`` sweeps ``mlp(L)``, ``resnet(D, w)`` sweeps the
ResNet depths of :data:`~kernelshape.networks.RESNET_CONFIGS` at the same shortcut weight
and version, and a callable ``depth -> Network`` sweeps whatever it builds. Any other
network is drawn as itself, at its own depth. Chains are composed layer by layer (all
depths in one pass, :meth:`_Variant.chain`); other networks are walked node by node with
the same tabulated layer maps (:func:`network_c_map`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np

from ..errors import DomainError
from ._style import DEPTHS

_MLP = re.compile(r"mlp\(depth=(\d+)\)")
_RESNET = re.compile(r"resnet\(depth=(\d+), shortcut_weight=([^,)]+)(?:, version='(v1)')?\)")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """The networks of a depth figure.

    Attributes:
        depths: the depths drawn, increasing.
        networks: one Network per depth, or None for plain chains (``mlp(L)``).
        tuned: the network DKS and TAT are solved for (None: no transform drawn).
        tuned_depth: its depth when it belongs to the sweep (drawn thicker), else None.
        chain: True when every network is ``mlp(L)`` (composed in one pass).
    """

    depths: tuple[int, ...]
    networks: tuple | None
    tuned: object
    tuned_depth: int | None
    chain: bool


def sweep(network, depths, tuned_depth) -> Sweep:
    """Resolve ``network`` / ``depths`` / ``tuned_depth`` of :func:`degeneration`.

    Raises:
        DomainError: depths for a network with no family, depths a family cannot build,
            ``tuned_depth`` for a network whose depth is fixed, a family that does not
            return networks.
    """
    from ..networks import RESNET_CONFIGS, Network, resnet

    if tuned_depth is not None and isinstance(network, Network):
        raise DomainError(f"tuned_depth is for a family (a callable depth -> network); "
                          f"{network!r} is one network of fixed depth")
    if network is None:
        if tuned_depth is not None:
            raise DomainError("tuned_depth needs network= (a callable depth -> network)")
        ds = _check_depths(DEPTHS if depths is None else depths)
        return Sweep(ds, None, None, None, True)
    if isinstance(network, Network):
        text = repr(network)
        found = _MLP.fullmatch(text)
        if found:
            d = int(found.group(1))
            ds = _check_depths(DEPTHS + (d,) if depths is None else depths)
            return Sweep(ds, None, network, d, True)
        found = _RESNET.fullmatch(text)
        if found:
            d, w, version = int(found.group(1)), float(found.group(2)), found.group(3) or "v2"
            ds = _check_depths(RESNET_CONFIGS if depths is None else depths)
            bad = [x for x in ds if x not in RESNET_CONFIGS]
            if bad:
                raise DomainError(f"depths {bad} are not ResNet depths; the resnet family has "
                                  f"{sorted(RESNET_CONFIGS)}")
            nets = tuple(resnet(x, w, version=version) for x in ds)
            return Sweep(ds, nets, network, d, False)
        if depths is not None:
            raise DomainError(
                f"depths= sweeps a family of networks, and {text} has none; pass a callable "
                "depth -> network (e.g. lambda L: chain(...)) to sweep depth, or leave "
                "depths out to draw this network")
        _check_walkable(network)
        return Sweep((network.n_nonlinear,), (network,), network, network.n_nonlinear, False)
    if not callable(network):
        raise DomainError(f"network must be a Network or a callable depth -> network, got "
                          f"{type(network).__name__}")
    ds = _check_depths(DEPTHS if depths is None else depths)
    tuned_d = max(ds) if tuned_depth is None else _check_depths([tuned_depth])[0]
    if tuned_depth is not None:
        ds = _check_depths(ds + (tuned_d,))
    nets = tuple(_family_member(network, d) for d in ds)
    return Sweep(ds, nets, _family_member(network, tuned_d), tuned_d, False)


def _family_member(family: Callable, depth: int):
    from ..networks import Network
    net = family(depth)
    if not isinstance(net, Network):
        raise DomainError(f"the network family returned {type(net).__name__} for depth "
                          f"{depth}; expected a Network (mlp, resnet, chain, ...)")
    _check_walkable(net)
    return net


def _check_walkable(net):
    from ..networks import _Function
    if isinstance(net, _Function):
        raise DomainError(f"{net!r} is known only through its subnet_max function; its C map "
                          "needs the layer structure (describe it with chain, residual, ...)")


def _check_depths(depths):
    ds = tuple(int(d) for d in depths)
    if not ds or any(d < 1 for d in ds):
        raise DomainError(f"depths must be positive integers, got {depths!r}")
    return tuple(sorted(set(ds)))


class _SlopeRules:
    """``(q, c, C_f'(c))`` through a network: the map rules of ``networks`` plus slopes.

    A normalized sum mixes covariances, ``c_out = sum_i w_i^2 q_i c_i / q_out``; the q's
    do not depend on c, so slopes mix the same way. Layer maps come from a tabulated
    ``(value, slope)`` function (plotting accuracy, see ``_CTable``).
    """

    def __init__(self, act, table, qs):
        self.act, self.table, self.qs = act, table, qs

    def layer(self, state):
        q, c, d = state
        if self.qs is not None:
            self.qs.append(q)
            return float(self.act.q_map(q)), c, d
        value, slope = self.table(c, q)
        return float(self.act.q_map(q)), np.clip(value, -1.0, 1.0), d * slope

    def combine(self, node, outs):
        q_out = sum(s * q for s, (q, _, _) in zip(node.squares, outs))
        c_out = sum(s * q * c for s, (q, c, _) in zip(node.squares, outs)) / q_out
        d_out = sum(s * q * d for s, (q, _, d) in zip(node.squares, outs)) / q_out
        return q_out, c_out, d_out


def network_c_map(act, net, c, q0=1.0):
    """``(C_f(c), C_f'(c))`` of ``net`` with activation ``act``, inputs at ``q0``."""
    from ..networks._walk import _evaluate
    from ._variants import _CTable
    c = np.asarray(c, dtype=np.float64)
    qs: list[float] = []
    _evaluate((net,), (float(q0), c, np.ones_like(c)), _SlopeRules(act, None, qs))
    q_hi = max(qs)
    table = _CTable(act, max(min(qs), 1e-8 * q_hi), q_hi)
    _, value, slope = _evaluate((net,), (float(q0), c, np.ones_like(c)),
                                _SlopeRules(act, table, None))[0]
    return value, slope
