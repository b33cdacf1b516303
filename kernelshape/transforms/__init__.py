"""DKS, TAT and edge-of-chaos solvers over network descriptions (THEORY.md §3-5).

``dks`` and ``tat`` return a :class:`Transform` (parameters in the ``dks`` package's names,
the transformed activation, residuals of every condition); ``eoc`` returns an
:class:`EdgeOfChaos`.
"""

from .dks import ReluWarning, dks
from .eoc import EdgeOfChaos, eoc
from .result import PARAM_KEYS, Residual, Transform
from .tat import tat

__all__ = [
           "PARAM_KEYS",
           "EdgeOfChaos",
           "ReluWarning",
           "Residual",
           "Transform",
           "dks",
           "eoc",
           "tat",
]
