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

import sys as _sys
import types as _types
from importlib import import_module as _import_module

from .errors import *
from .errors import __all__ as _errors_all

# Every public name is imported on first use (module __getattr__, PEP 562): `import
# kernelshape` loads neither numpy nor sympy, so a command line or a worker process pays
# only for what it touches. name -> the submodule defining it.
_NAMES = {
    **dict.fromkeys(("Activation", "Kink", "activation", "builtins"), "activations"),
    **dict.fromkeys(("delta_orthogonal", "suo"), "init"),
    **dict.fromkeys((
        "Kernel", "Network", "as_network", "avg_pool", "chain", "conv", "flatten",
        "global_avg_pool", "heads", "layer_norm", "linear", "mlp", "nonlinear",
        "normalized_sum", "parallel", "residual", "resnet", "shared"), "networks"),
    "pln": "pln",
    **dict.fromkeys(("EdgeOfChaos", "ReluWarning", "Residual", "Transform", "dks", "eoc",
                     "tat"), "transforms"),
}

# Submodules reached as attributes, imported on first use (matplotlib, torch and jax stay
# out of `import kernelshape`).
_LAZY = (
    "codegen", "plot", "empirical", "figures", "maps", "networks", "transforms", "cli",
    "torch", "jax",
)

__all__ = [  # noqa: PLE0604 - the error class names are strings too
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


def _version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("kernelshape")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def __getattr__(name):
    if name == "__version__":
        value = _version()
    elif name in _NAMES:
        value = getattr(_import_module(f".{_NAMES[name]}", __name__), name)
    elif name in _LAZY:
        value = _import_module(f".{name}", __name__)
    elif not name.startswith("__") and _is_submodule(name):
        value = _import_module(f".{name}", __name__)   # ks.parsing, ks.init, ...
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def _is_submodule(name):
    from importlib.util import find_spec
    return name.isidentifier() and find_spec(f"{__name__}.{name}") is not None


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | set(_LAZY) | {"__version__"})


class _Package(_types.ModuleType):
    """The package's module type: a public name that is also a submodule's name (``pln``)
    stays the function when the submodule is imported later (the import system sets the
    submodule as a package attribute, which would hide the function)."""

    def __setattr__(self, name, value):
        if (name in _NAMES and isinstance(value, _types.ModuleType)
                and value.__name__ == f"{__name__}.{name}"):
            value = getattr(value, name)
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
