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

from ._families import RESNET_CONFIGS, mlp, resnet
from ._nodes import MAX_DEPTH as MAX_DEPTH
from ._nodes import WEIGHT_TOL as WEIGHT_TOL
from ._nodes import (
    Network,
    as_network,
    chain,
    linear,
    nonlinear,
    normalized_sum,
    parallel,
    residual,
)
from ._nodes import _Function as _Function
from ._walk import DESCRIBE_LINES as DESCRIBE_LINES
from ._walk import PROGRAM_STEPS as PROGRAM_STEPS
from ._walk import REPR_CHARS as REPR_CHARS
