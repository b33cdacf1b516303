"""kernelshape: kernel theory of deep networks at initialization.

Q/C maps of any activation written as a sympy expression (exact, mpmath to N digits,
numba float64), networks described once, DKS / TAT / edge-of-chaos solvers, and standalone
JAX / PyTorch / NumPy code for the result. See ``docs/`` and the README.

Example:
    >>> import kernelshape as ks
    >>> t = ks.dks(ks.activation("tanh"), network=ks.mlp(10), zeta=1.5)
    >>> t.max_residual < 1e-13
    True
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from .activations import Activation, Kink, activation, builtins
from .errors import *  # noqa: F403 - the error classes are part of the public surface
from .errors import __all__ as _errors_all
from .init import delta_orthogonal, suo
from .networks import (
    Kernel,
    Network,
    as_network,
    avg_pool,
    chain,
    conv,
    flatten,
    global_avg_pool,
    heads,
    layer_norm,
    linear,
    mlp,
    nonlinear,
    normalized_sum,
    parallel,
    residual,
    resnet,
    shared,
)
from .pln import pln
from .transforms import EdgeOfChaos, ReluWarning, Residual, Transform, dks, eoc, tat

try:
    __version__ = _version("kernelshape")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

# Submodules reached as attributes, imported on first use (matplotlib, torch and jax stay
# out of `import kernelshape`).
_LAZY = (
    "codegen", "plot", "empirical", "figures", "maps", "networks", "transforms", "cli",
    "torch", "jax",
)

__all__ = [
    "__version__",
    "Activation", "Kink", "activation", "builtins",
    "Network", "as_network", "chain", "linear", "mlp", "nonlinear", "normalized_sum",
    "parallel", "resnet", "residual",
    "conv", "avg_pool", "global_avg_pool", "flatten", "layer_norm", "shared", "heads", "Kernel",
    "dks", "tat", "eoc", "Transform", "Residual", "EdgeOfChaos", "ReluWarning",
    "suo", "delta_orthogonal", "pln",
    "codegen", "plot", "empirical",
    *_errors_all,
]


def __getattr__(name):
    if name in _LAZY:
        module = import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
