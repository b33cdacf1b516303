"""The activations kernelshape reads in a PyTorch model, and the modules it writes back.

One table, :data:`ACTIVATIONS`: an activation *kind* (a kernelshape built-in name, or a
parameterized form) -> how to build its kernelshape :class:`~kernelshape.Activation` from
the torch parameters and how to build the equivalent ``torch.nn`` module. The readers of
modules, functions and tensor methods (:data:`MODULE_KINDS`, :data:`FUNCTION_KINDS`,
:data:`METHOD_KINDS`) map each torch spelling to ``(kind, params)``. A new activation is an
entry in each table, never a branch.

:class:`TransformedActivation` computes a transform
``output_scale * (phi(input_scale * x + input_shift) + output_shift)`` with plain tensor
ops and Python floats, so it scripts (``torch.jit.script``) and compiles.
"""

from __future__ import annotations

import typing

import sympy as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..activations import activation

_X = sp.Symbol("x", real=True)


def _softplus(beta=1.0):
    if beta == 1.0:
        return activation("softplus")
    b = sp.Float(beta)
    return activation(sp.log(1 + sp.exp(b * _X)) / b, name=f"softplus(beta={beta:g})")


#: kind -> (kernelshape activation from params, torch module from params). ``leaky_relu``
#: and ``elu`` carry their torch parameter; ``relu`` is leaky ReLU at slope 0 under TAT.
ACTIVATIONS = {
    "tanh": (lambda: activation("tanh"), nn.Tanh),
    "sigmoid": (lambda: activation("sigmoid"), nn.Sigmoid),
    "relu": (lambda: activation("relu"), nn.ReLU),
    "leaky_relu": (lambda negative_slope: activation("leaky_relu",
                                                     negative_slope=negative_slope),
                   lambda negative_slope: nn.LeakyReLU(negative_slope)),
    "elu": (lambda alpha=1.0: activation("elu", alpha=alpha), lambda alpha=1.0: nn.ELU(alpha)),
    "selu": (lambda: activation("selu"), nn.SELU),
    "gelu_exact": (lambda: activation("gelu_exact"), lambda: nn.GELU("none")),
    "gelu": (lambda: activation("gelu"), lambda: nn.GELU("tanh")),
    "swish": (lambda: activation("swish"), nn.SiLU),
    "mish": (lambda: activation("mish"), nn.Mish),
    "softplus": (_softplus, lambda beta=1.0: nn.Softplus(beta)),
    "softsign": (lambda: activation("softsign"), nn.Softsign),
    "erf": (lambda: activation("erf"), lambda: _Erf()),
}



class _Erf(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(x)


def _gelu_kind(approximate):
    return "gelu" if approximate == "tanh" else "gelu_exact"


#: module class -> (kind, module -> params dict)
MODULE_KINDS = {
    nn.Tanh: ("tanh", lambda m: {}),
    nn.Sigmoid: ("sigmoid", lambda m: {}),
    nn.ReLU: ("relu", lambda m: {}),
    nn.LeakyReLU: ("leaky_relu", lambda m: {"negative_slope": float(m.negative_slope)}),
    nn.ELU: ("elu", lambda m: {"alpha": float(m.alpha)}),
    nn.SELU: ("selu", lambda m: {}),
    nn.GELU: (None, lambda m: {}),   # kind from `approximate`, below
    nn.SiLU: ("swish", lambda m: {}),
    nn.Mish: ("mish", lambda m: {}),
    nn.Softplus: ("softplus", lambda m: {"beta": float(m.beta)}),
    nn.Softsign: ("softsign", lambda m: {}),
    _Erf: ("erf", lambda m: {}),
}


#: Parameters at these values are left out (``softplus``, not ``softplus(beta=1)``).
DEFAULTS = {"softplus": {"beta": 1.0}, "elu": {"alpha": 1.0}}


def _drop_defaults(kind, params):
    defaults = DEFAULTS.get(kind, {})
    return kind, {k: v for k, v in params.items() if defaults.get(k) != v}


def module_kind(module):
    """``(kind, params)`` of an activation module, or None."""
    entry = MODULE_KINDS.get(type(module))
    if entry is None:
        return None
    kind, params = entry
    if type(module) is nn.GELU:
        kind = _gelu_kind(module.approximate)
    return _drop_defaults(kind, params(module))


def _kw(name, default, position=1):
    """params reader: keyword ``name`` or positional argument ``position`` of an fx node."""
    def read(node):
        if name in node.kwargs:
            return node.kwargs[name]
        return node.args[position] if len(node.args) > position else default
    return read


#: function -> (kind, {param: reader(node)})
FUNCTION_KINDS = {
    torch.tanh: ("tanh", {}), F.tanh: ("tanh", {}),
    torch.sigmoid: ("sigmoid", {}), F.sigmoid: ("sigmoid", {}),
    torch.relu: ("relu", {}), F.relu: ("relu", {}),
    F.leaky_relu: ("leaky_relu", {"negative_slope": _kw("negative_slope", 0.01)}),
    F.elu: ("elu", {"alpha": _kw("alpha", 1.0)}),
    torch.selu: ("selu", {}), F.selu: ("selu", {}),
    F.gelu: ("gelu", {"approximate": _kw("approximate", "none")}),
    F.silu: ("swish", {}),
    F.mish: ("mish", {}),
    F.softplus: ("softplus", {"beta": _kw("beta", 1.0)}),
    F.softsign: ("softsign", {}),
    torch.erf: ("erf", {}), torch.special.erf: ("erf", {}),
}

#: tensor method name -> kind (methods without parameters)
METHOD_KINDS = {"tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "erf": "erf"}


def function_kind(node):
    """``(kind, params)`` of an activation call (function or tensor method), or None."""
    if node.op == "call_method":
        kind = METHOD_KINDS.get(node.target)
        return None if kind is None else (kind, {})
    entry = FUNCTION_KINDS.get(node.target)
    if entry is None:
        return None
    kind, readers = entry
    params = {k: read(node) for k, read in readers.items()}
    if kind == "gelu":
        return _gelu_kind(params["approximate"]), {}
    return _drop_defaults(kind, {k: float(v) for k, v in params.items()})


def base_activation(kind, params, *, method=None):
    """The kernelshape activation of ``(kind, params)``; for ``method`` set, as that
    method solves it: leaky ReLU with its slope left free (and ReLU too under TAT, which
    refuses plain ReLU), as the ``dks`` package does."""
    if kind == "leaky_relu" and method is not None or kind == "relu" and method == "tat":
        return activation("leaky_relu")
    return ACTIVATIONS[kind][0](**params)


def torch_module(kind, params):
    """A fresh ``torch.nn`` module computing ``(kind, params)``."""
    return ACTIVATIONS[kind][1](**params)


class TransformedActivation(nn.Module):
    """``output_scale * (phi(input_scale * x + input_shift) + output_shift)``.

    ``phi`` is a plain ``torch.nn`` activation module; the four numbers are Python floats,
    so the module scripts and compiles. ``kind`` and ``params`` name the base activation
    (as kernelshape reads it back: :func:`kernelshape.torch.predict` of a shaped model).

    Example:
        >>> import torch
        >>> m = TransformedActivation("tanh", {}, 2.0, 0.0, 0.0, 0.5)
        >>> float(m(torch.tensor(1.0))) == 0.5 * float(torch.tanh(torch.tensor(2.0)))
        True
    """

    # Names for reading the module back, not for the scripted forward.
    __jit_ignored_attributes__: typing.ClassVar[list] = ["kind", "params"]

    def __init__(self, kind: str, params: dict, input_scale: float, input_shift: float,
                 output_shift: float, output_scale: float):
        super().__init__()
        self.kind, self.params = kind, dict(params)
        self.phi = torch_module(kind, params)
        self.input_scale, self.input_shift = float(input_scale), float(input_shift)
        self.output_shift, self.output_scale = float(output_shift), float(output_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_scale * (self.phi(self.input_scale * x + self.input_shift)
                                    + self.output_shift)

    def activation(self):
        """The kernelshape activation this module computes."""
        return base_activation(self.kind, self.params).affine(
            self.input_scale, self.input_shift, self.output_shift, self.output_scale)

    def extra_repr(self):
        return (f"{self.kind}{self.params or ''}, input_scale={self.input_scale:.6g}, "
                f"input_shift={self.input_shift:.6g}, output_shift={self.output_shift:.6g}, "
                f"output_scale={self.output_scale:.6g}")


def transformed_module(kind, params, transform):
    """The :class:`TransformedActivation` of a solved kernelshape Transform."""
    p = {k: float(v) for k, v in transform.params.items()}
    if "negative_slope" in p:
        kind, params = "leaky_relu", {"negative_slope": p.get("negative_slope", 0.0)}
    return TransformedActivation(kind, params, p.get("input_scale", 1.0),
                                 p.get("input_shift", 0.0), p.get("output_shift", 0.0),
                                 p.get("output_scale", 1.0))


class PLN(nn.Module):
    """Per-location normalization over the channel axis (axis 1): every location at q = 1.

    Example:
        >>> import torch
        >>> y = PLN()(torch.tensor([[3.0, 4.0]]))
        >>> round(float((y ** 2).mean()), 6)
        1.0
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True))
