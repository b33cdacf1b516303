"""Networks described once: the layer structure kernel maps, NTKs, DKS and TAT need.

A network is a tree of nodes (THEORY.md §2, §8; Martens et al. 2021, §5; Zhang et al. 2022,
Appendix B):

* layers (:mod:`._layers`, a table of kinds): :func:`nonlinear` (the activation, bound to
  the layer or given at map/solve time), :func:`linear` (dense, Gaussian fan-in
  ``sigma_w, sigma_b``; the default is the identity), :func:`conv` (Gaussian or Delta
  init), :func:`avg_pool`, :func:`global_avg_pool`, :func:`flatten`, :func:`layer_norm`;
* :func:`chain` — layers applied one after the other (maps compose);
* :func:`normalized_sum` / :func:`residual` / :func:`parallel` — branches combined with fixed
  weights whose squares sum to 1 (concatenation is the same rule with the channel fractions
  as squared weights): ``q_out = sum_i w_i^2 q_i``, ``c_out = sum_i w_i^2 q_i c_i / q_out``.
  The rule assumes the branches use independent weights;
* :func:`shared` — one block applied several times with the same weights;
* :func:`heads` — a trunk with several outputs.

Every network has the subnetwork maximizing function ``subnet_max(x, r)``, the DKS maximal
slope function ``max_slope(xi)``, the TAT maximal curvature function ``max_curvature(t)``,
global ``q_map`` / ``c_map`` (``order=0, 1, 2``) and ``ntk`` along the scalar path, and
``kernel(X, ntk=)``: NNGP and NTK on real inputs in neural-tangents' conventions.
:func:`bounds` measures what the DKS theorems bound. :func:`mlp` and :func:`resnet` build the
usual families; :func:`as_network` wraps any ``dks``-style callable
``subnet_max_func(x, r_fn)``.

Modules, imports flowing one way: ``_walk`` (structure) and ``_display`` -> ``_dual``
(element-wise expectations) -> ``_scalar`` (scalar walk) and ``_kernels`` (kernels on
inputs) -> ``_network`` (the base class) -> ``_layers`` (vocabulary of layers) -> ``_nodes``
(chains, sums, sharing, heads) -> ``_families`` -> ``_bounds``.
"""

from __future__ import annotations

__all__ = [
    "LAYERS",
    "RESNET_CONFIGS",
    "Bounds",
    "Kernel",
    "Network",
    "as_network",
    "avg_pool",
    "bounds",
    "chain",
    "conv",
    "flatten",
    "global_avg_pool",
    "heads",
    "layer_norm",
    "linear",
    "mlp",
    "nonlinear",
    "normalized_sum",
    "parallel",
    "residual",
    "resnet",
    "shared",
]

from . import _walk as _walk
from ._bounds import Bounds, bounds
from ._display import DESCRIBE_LINES as DESCRIBE_LINES
from ._display import REPR_CHARS as REPR_CHARS
from ._families import RESNET_CONFIGS, mlp, resnet
from ._kernels import Kernel
from ._layers import (
    LAYERS,
    avg_pool,
    conv,
    flatten,
    global_avg_pool,
    layer_norm,
    linear,
    nonlinear,
)
from ._network import Network
from ._nodes import MAX_DEPTH as MAX_DEPTH
from ._nodes import WEIGHT_TOL as WEIGHT_TOL
from ._nodes import (
    _Function as _Function,
)
from ._nodes import (
    as_network,
    chain,
    heads,
    normalized_sum,
    parallel,
    residual,
    shared,
)
from ._walk import PROGRAM_STEPS as PROGRAM_STEPS
