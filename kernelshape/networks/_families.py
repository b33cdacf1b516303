"""The usual families: deep MLPs and the ``dks`` modified ResNets (V1 and V2)."""

from __future__ import annotations

import numbers

from .._memo import Memo
from ..errors import NetworkError
from ._layers import _LINEAR, _NONLINEAR, _SKIP
from ._network import Network
from ._nodes import _Chain, _check_depth, _check_shortcut_weight, _Sum

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


#: One network per family call (networks are never changed after construction), so the
#: slope and curvature polynomials the transforms build on a network are reused per call.
_MEMO = Memo(64)


def mlp(depth: int) -> Network:
    """A chain of ``depth`` nonlinear layers (linear layers in between do not change maps).

    For ``mlp(L)`` the maximal slope function is ``xi^L``, so DKS gives ``xi = zeta^(1/L)``.
    The same depth gives the same (shared) network object.

    Example:
        >>> mlp(10)
        mlp(depth=10)
    """
    depth = _check_depth(depth)
    # very deep chains are not kept: 64 of mlp(10**6) would hold half a gigabyte
    key = ("mlp", depth) if depth <= 100_000 else None
    return _MEMO.get(key, lambda: _mlp(depth))


def _mlp(depth):
    net = _Chain([_NONLINEAR] * depth, label=f"mlp(depth={depth})")
    # Marks a chain of identical nonlinear layers: the transforms' targets use its closed
    # forms (mu(xi) = xi^depth, M_{f, y -> t + y}(0) = depth t) instead of a depth-step
    # walk (issue 14.7: mlp(10**6) took minutes).
    net._mlp_depth = depth
    return net


def resnet(depth: int, shortcut_weight: float = 0.0, *, version: str = "v2") -> Network:
    """The modified ResNet of the ``dks`` examples (Martens et al. 2021, §D; dks 0.1.2).

    Four groups of blocks (counts per depth in :data:`RESNET_CONFIGS`); bottleneck blocks
    (depth >= 50) hold three nonlinear layers in their residual branch in V2 and two in V1,
    basic blocks two and one. V2 blocks are pre-activation; the projection shortcut of the
    first block of a group takes the branch's first activation, so it applies the
    activation once. V1 blocks apply the activation after the sum. One more nonlinear layer
    is counted at the end, as in the ``dks`` example's ``subnet_max_func`` (for V1 the stem
    activation; its position changes nothing for the slope and curvature functions).
    ``shortcut_weight = 0`` is the vanilla (skip-free) network. The same arguments give
    the same (shared) network object.

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
    # repr(w) in the key: -0.0 == 0.0, but the label shows the weight as given
    return _MEMO.get(("resnet", depth, repr(w), version), lambda: _resnet(depth, w, version))


def _resnet(depth, w, version):
    blocks_per_group, bottleneck, projection = RESNET_CONFIGS[depth]
    v2 = version == "v2"
    n_act = (3 if bottleneck else 2) if v2 else (2 if bottleneck else 1)
    squares = (w**2, 1.0 - w**2)
    if v2:
        branch = _Chain([_NONLINEAR, _LINEAR] * n_act, label=f"{n_act} x (nonlinear, linear)")
        proj = _Chain([_NONLINEAR, _LINEAR], label="projection (nonlinear, linear)")
        plain_block = _Sum((_SKIP, branch), squares, "residual")
        proj_block = _Sum((proj, branch), squares, "residual")
    else:
        branch = _Chain([_LINEAR] + [_NONLINEAR, _LINEAR] * n_act,
                        label=f"linear, {n_act} x (nonlinear, linear)")
        plain_block = _Chain([_Sum((_SKIP, branch), squares, "residual"), _NONLINEAR])
        proj_block = plain_block
    layers = []
    for group, count in enumerate(blocks_per_group):
        for j in range(count):
            layers.append(proj_block if j == 0 and projection[group] else plain_block)
    layers.append(_NONLINEAR)
    label = f"resnet(depth={depth}, shortcut_weight={w!r}" + (
        ", version='v1')" if not v2 else ")")
    return _Chain(layers, label=label)


