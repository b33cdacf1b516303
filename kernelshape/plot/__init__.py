"""Figures of the kernel theory: C-map degeneration, Q/C maps, the EOC phase diagram, checks.

Every function returns a :class:`matplotlib.figure.Figure` (not registered with pyplot, so
notebooks show it once and scripts never accumulate open figures); save it with
``fig.savefig(path)``. matplotlib is imported inside the functions: importing kernelshape
stays fast. Colours are the Okabe-Ito palette for categories (methods, inputs) and viridis
for depth, both readable with the common forms of colour blindness.

The central picture (DKS paper, Fig. 1; the DKS talk, "C map degeneration in deep
networks"): the C map of a deep network ``C_f = C o C o ... o C`` flattens with depth (every
input ``c`` is sent near one value ``c_0``) for an untransformed activation and even at the
edge of chaos, while DKS and TAT keep it close to the identity at any depth (THEORY.md §3-§5).
"""


from __future__ import annotations

__all__ = [
    "DEPTHS",
    "METHODS",
    "METHOD_COLORS",
    "OKABE_ITO",
    "c_map",
    "c_vs_depth",
    "degeneration",
    "eoc_phase",
    "predicted_vs_empirical",
    "q_map",
    "training_curves",
    "transformed_activations",
]

from ._style import DEPTHS, METHOD_COLORS, METHODS, OKABE_ITO
from ._style import EOC_BIAS_VARIANCE as EOC_BIAS_VARIANCE
from .checks import predicted_vs_empirical, training_curves, transformed_activations
from .depth import c_vs_depth, degeneration
from .maps import c_map, eoc_phase, q_map
