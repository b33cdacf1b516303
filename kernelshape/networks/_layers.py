"""The layers of the vocabulary, as data: a kind, its parameters, its scalar role.

:data:`LAYERS` is the table: one entry per kind with its role on the scalar path
(:mod:`._scalar`) and whether it mixes positions (then only :meth:`Network.kernel` sees
its exact effect). The kernel rule of each kind is in :data:`._kernels.KERNEL_RULES`. A new
layer is an entry here, a role (or a new scalar rule) and a kernel rule.
"""

from __future__ import annotations

import collections
import math
import numbers

from ..errors import NetworkError
from ._network import Network
from ._walk import LEAF

_Spec = collections.namedtuple("_Spec", "scalar_role mixes_positions")

#: kind -> (role on the scalar path, mixes positions)
LAYERS = {
    "nonlinear": _Spec("nonlinear", False),
    "linear": _Spec("affine", False),
    "conv": _Spec("affine", True),        # Gaussian init; Delta init keeps positions apart
    "avg_pool": _Spec("average", True),
    "global_avg_pool": _Spec("average", True),
    "flatten": _Spec("average", True),
    "layer_norm": _Spec("normalize", False),
}

PADDINGS = ("same", "valid")
INITS = ("gaussian", "delta")


class _Layer(Network):
    """One layer: ``kind`` and its parameters (attributes of the same names)."""

    _role = LEAF
    skip = False

    def __init__(self, kind, **params):
        self.kind = kind
        self._params = tuple(params.items())
        for key, value in params.items():
            setattr(self, key, value)
        self._nonlinear = kind == "nonlinear"
        self._scalar_role = LAYERS[kind].scalar_role

    @property
    def mixes_positions(self) -> bool:
        """Whether the layer combines different positions (Gaussian-init conv, pooling)."""
        if self.kind == "conv":
            return self.init == "gaussian"
        return LAYERS[self.kind].mixes_positions

    def _text(self):
        shown = [f"{k}={_show(v)}" for k, v in self._params if v != _DEFAULTS[self.kind].get(k)]
        return self.kind + (f"({', '.join(shown)})" if shown else "")

    def __eq__(self, other):
        return isinstance(other, _Layer) and (self.kind, self._params) == (other.kind,
                                                                           other._params)

    def __hash__(self):
        return hash((self.kind, self._params))


_DEFAULTS = {
    "nonlinear": {"phi": None},
    "linear": {"sigma_w": 1.0, "sigma_b": 0.0},
    "conv": {"sigma_w": 1.0, "sigma_b": 0.0, "padding": "same", "stride": 1,
             "init": "gaussian"},
    "avg_pool": {"stride": None, "padding": "valid"},
    "global_avg_pool": {}, "flatten": {}, "layer_norm": {},
}


def _show(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "expr") and hasattr(value, "c_map"):   # an activation
        return repr(value.name or str(value.expr))
    return repr(value)


_NONLINEAR = _Layer("nonlinear", phi=None)
_LINEAR = _Layer("linear", sigma_w=1.0, sigma_b=0.0)
# The shortcut of a residual block: the identity, holding no parameters (it equals and
# prints as linear(), whose maps are the identity too; only the NTK tells them apart).
_SKIP = _Layer("linear", sigma_w=1.0, sigma_b=0.0)
_SKIP.skip = True


def nonlinear(phi=None) -> Network:
    """One layer applying an activation element-wise.

    Args:
        phi: None (the activation given at map or solve time, as in every DKS/TAT
            network), or an activation bound to this layer (an Activation, a built-in name
            or expression text; a Transform gives its transformed activation), so one
            network may hold several activations.

    Example:
        >>> nonlinear()
        nonlinear
        >>> nonlinear("relu")
        nonlinear(phi='relu')
    """
    if phi is None:
        return _NONLINEAR
    from ..activations import Activation, activation
    phi = getattr(phi, "activation", phi)   # a Transform: its transformed activation
    if not isinstance(phi, Activation):
        if not isinstance(phi, str):
            raise NetworkError(f"nonlinear(phi): phi must be an activation, a built-in name or "
                               f"expression text, got {type(phi).__name__}")
        phi = activation(phi)
    phi._require_fixed("a nonlinear layer")
    return _Layer("nonlinear", phi=phi)


def linear(sigma_w: float = 1.0, sigma_b: float = 0.0) -> Network:
    """A dense layer, Gaussian fan-in: ``W ~ N(0, sigma_w^2 / fan_in)``, ``b ~ N(0, sigma_b^2)``.

    Maps ``q -> sigma_w^2 q + sigma_b^2`` (cross-covariances likewise); the default is the
    identity (any q-preserving linear layer: dense, convolutional, orthogonal). In the NTK
    it holds parameters (neural-tangents' NTK parameterization).

    Example:
        >>> linear()
        linear
        >>> linear(sigma_w=2 ** 0.5, sigma_b=0.1)
        linear(sigma_w=1.41421, sigma_b=0.1)
    """
    sigma_w, sigma_b = _check_scale("sigma_w", sigma_w), _check_scale("sigma_b", sigma_b)
    if sigma_w == 1.0 and sigma_b == 0.0:
        return _LINEAR
    return _Layer("linear", sigma_w=sigma_w, sigma_b=sigma_b)


def conv(kernel_size, *, sigma_w: float = 1.0, sigma_b: float = 0.0, padding: str = "same",
         stride=1, init: str = "gaussian") -> Network:
    """A convolution over the spatial axes (channels last), neural-tangents' ``stax.Conv``.

    ``init="gaussian"``: i.i.d. fan-in weights; the kernel at a pair of positions averages
    the input kernel over aligned window offsets (zero padding counted in the fan-in).
    ``init="delta"`` (Delta-orthogonal, odd sizes): only the centre tap, so each location
    keeps its own kernel (a per-location dense layer), as DKS assumes.

    Args:
        kernel_size: window size, an int or one int per spatial axis.
        sigma_w, sigma_b: weight and bias scales.
        padding: ``"same"`` (zeros, as jax) or ``"valid"``.
        stride: an int or one per spatial axis.
        init: ``"gaussian"`` or ``"delta"``.

    Example:
        >>> conv(3, init="delta")
        conv(kernel_size=3, init='delta')
    """
    kernel_size = _check_sizes("kernel_size", kernel_size)
    stride = _check_sizes("stride", stride)
    padding = _check_choice("padding", padding, PADDINGS)
    init = _check_choice("init", init, INITS)
    if init == "delta" and any(k % 2 == 0 for k in _as_tuple(kernel_size)):
        raise NetworkError(f"Delta-orthogonal init needs odd kernel sizes (a centre tap), got "
                           f"kernel_size={kernel_size!r}")
    return _Layer("conv", kernel_size=kernel_size, sigma_w=_check_scale("sigma_w", sigma_w),
                  sigma_b=_check_scale("sigma_b", sigma_b), padding=padding, stride=stride,
                  init=init)


def avg_pool(window, *, stride=None, padding: str = "valid") -> Network:
    """Average pooling over windows (dividing by the window size, padded zeros included).

    Args:
        window: an int or one int per spatial axis.
        stride: None for the window (non-overlapping), else an int or one per axis.
        padding: ``"valid"`` (default) or ``"same"``.

    Example:
        >>> avg_pool(2)
        avg_pool(window=2)
    """
    window = _check_sizes("window", window)
    stride = None if stride is None else _check_sizes("stride", stride)
    return _Layer("avg_pool", window=window, stride=stride,
                  padding=_check_choice("padding", padding, PADDINGS))


def global_avg_pool() -> Network:
    """The average over all positions (the kernel: over all position pairs).

    Example:
        >>> global_avg_pool()
        global_avg_pool
    """
    return _Layer("global_avg_pool")


def flatten() -> Network:
    """Positions and channels into one feature axis; for the next dense layer's fan-in the
    kernel is the average over diagonal position pairs.

    Example:
        >>> flatten()
        flatten
    """
    return _Layer("flatten")


def layer_norm() -> Network:
    """Layer normalization over channels, per position: ``q -> 1``, ``c`` unchanged.

    Must see Gaussian pre-activations (after a dense or conv layer), as in
    neural-tangents' ``stax.LayerNorm``.

    Example:
        >>> layer_norm()
        layer_norm
    """
    return _Layer("layer_norm")


# -- checks -------------------------------------------------------------------------------------
def _check_scale(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0:
        raise NetworkError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_sizes(name, value):
    items = value if isinstance(value, tuple | list) else (value,)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise NetworkError(f"{name} must be a positive integer or a tuple of them, got "
                               f"{value!r}")
    if not items:
        raise NetworkError(f"{name} must not be empty")
    return tuple(int(v) for v in items) if isinstance(value, tuple | list) else int(value)


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _check_choice(name, value, choices):
    if value not in choices:
        raise NetworkError(f"{name} must be one of {', '.join(map(repr, choices))}, got "
                           f"{value!r}")
    return value
