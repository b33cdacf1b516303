"""The PyTorch target: mapping table, printer and standalone support code.

Emitted modules import only ``torch``. Besides the activation function they hold an
``nn.Module`` class wrapping it (no parameters; works under ``torch.compile``), ``suo_``
(in-place SUO / Delta initialization), ``suo_init_`` (every ``Linear`` / ``ConvNd`` of a
model, biases zeroed) and ``pln``.

Weight layout: PyTorch's own, ``(out, in)`` for ``nn.Linear`` and ``(out, in, *kernel)`` for
``nn.Conv1d/2d/3d``. (The ``dks`` package's PyTorch sampler documents convolution weights
as ``(in, out, *kernel)``; kernelshape follows ``nn.ConvNd``.)
"""

from __future__ import annotations

import sympy as sp

from .emitter import Target
from .printer import (
    Erfc,
    Expm1,
    Hypot,
    HypotRatio,
    Log1p,
    Sigmoid,
    Softplus,
    TargetPrinter,
)

__all__ = ["FUNCTIONS", "TARGET", "TorchPrinter"]


def _clamp(bound):
    """``torch.maximum`` needs two tensors: a number argument becomes a clamp bound."""
    def entry(printed, args):
        if args[1] is not None and args[1].is_Number:
            return f"torch.clamp({printed[0]}, {bound}={printed[1]})"
        return f"torch.{'maximum' if bound == 'min' else 'minimum'}({printed[0]}, {printed[1]})"
    return entry


#: sympy function -> PyTorch code (the whole mapping of this target).
FUNCTIONS = {
    sp.exp: "torch.exp({0})",
    sp.log: "torch.log({0})",
    sp.sqrt: "torch.sqrt({0})",
    sp.sin: "torch.sin({0})",
    sp.cos: "torch.cos({0})",
    sp.tan: "torch.tan({0})",
    sp.sinh: "torch.sinh({0})",
    sp.cosh: "torch.cosh({0})",
    sp.tanh: "torch.tanh({0})",
    sp.asin: "torch.asin({0})",
    sp.acos: "torch.acos({0})",
    sp.atan: "torch.atan({0})",
    sp.asinh: "torch.asinh({0})",
    sp.acosh: "torch.acosh({0})",
    sp.atanh: "torch.atanh({0})",
    sp.erf: "torch.erf({0})",
    sp.erfc: "torch.erfc({0})",
    Erfc: "torch.erfc({0})",
    sp.Abs: "torch.abs({0})",
    sp.sign: "torch.sign({0})",
    sp.Max: _clamp("min"),
    sp.Min: _clamp("max"),
    Softplus: "torch.logaddexp({0}, torch.zeros_like({0}))",
    Sigmoid: "torch.sigmoid({0})",
    Hypot: "_hypot({0}, {1})",
    HypotRatio: "({0} / _hypot({0}, {1}))",
    Expm1: "torch.expm1({0})",
    Log1p: "torch.log1p({0})",
}


class TorchPrinter(TargetPrinter):
    """Prints stable-form sympy expressions as PyTorch code."""

    target = "torch"
    functions = FUNCTIONS


def _module_class(function: str, cls: str, doc: str) -> str:
    return f'''class {cls}(torch.nn.Module):
    {doc}

    def forward(self, x):
        return {function}(x)
'''


_HYPOT = '''
def _hypot(a, c):
    # torch.hypot takes two tensors; c is a constant.
    return torch.hypot(a, torch.full_like(a, c))
'''

_SUPPORT = '''
def _orthogonal(n_in, n_out, *, generator, dtype, device):
    # Haar: QR of a Gaussian matrix, columns sign-corrected by diag(R).
    g = torch.randn(max(n_in, n_out), min(n_in, n_out), generator=generator, dtype=dtype,
                    device=device)
    q, r = torch.linalg.qr(g)
    q = q * torch.where(torch.diagonal(r) < 0.0, -1.0, 1.0).to(dtype)
    return q if n_in >= n_out else q.T


def suo_(weight, *, scale=1.0, delta=True, generator=None):
    """Scaled uniform orthogonal (SUO) weights in place, Delta-initialized for convolutions.

    The (in, out) matrix is Haar-orthogonal (orthonormal rows if in <= out, else columns)
    times scale * max(sqrt(out / in), 1), so a layer with zero bias preserves q.
    Convolutions with delta=True get that matrix at the centre tap and zeros elsewhere.

    Args:
        weight: (out, in) for nn.Linear or (out, in, *kernel) for nn.ConvNd (odd kernel).
        scale: extra factor (leave at 1.0 for DKS/TAT).
        delta: Delta initialization for convolutions.
        generator: optional torch.Generator.

    Returns:
        weight, initialized.
    """
    shape = tuple(weight.shape)
    if len(shape) < 2:
        raise ValueError(f"expected a weight shape with at least 2 axes, got {shape}")
    n_out, n_in, kernel = shape[0], shape[1], shape[2:]
    dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
    options = {"generator": generator, "dtype": dtype, "device": weight.device}
    with torch.no_grad():
        if delta and kernel:
            if any(s % 2 == 0 for s in kernel):
                raise ValueError(f"Delta initialization needs odd kernel sizes, got {kernel}")
            gain = scale * max((n_out / n_in) ** 0.5, 1.0)
            weight.zero_()
            centre = (slice(None), slice(None)) + tuple((s - 1) // 2 for s in kernel)
            weight[centre] = gain * _orthogonal(n_in, n_out, **options).T
        else:
            fan_in = 1
            for s in shape[1:]:
                fan_in *= s
            gain = scale * max((n_out / fan_in) ** 0.5, 1.0)
            weight.copy_((gain * _orthogonal(fan_in, n_out, **options).T).reshape(shape))
    return weight


def suo_init_(module, *, generator=None):
    """SUO / Delta-initialize every Linear and Conv1d/2d/3d weight of module; zero biases.

    Raises ValueError on transposed or grouped convolutions (other layouts).
    """
    for layer in module.modules():
        transposed = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d,
                      torch.nn.ConvTranspose3d)
        if isinstance(layer, transposed) or getattr(layer, "groups", 1) != 1:
            raise ValueError(f"suo_init_ covers Linear and ungrouped ConvNd, got {layer}")
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d,
                              torch.nn.Conv3d)):
            suo_(layer.weight, generator=generator)
            if layer.bias is not None:
                with torch.no_grad():
                    layer.bias.zero_()
    return module


def pln(x, *, homogeneous=None, homogeneous_scale=1.0, dim=-1, eps=0.0):
    """Per-location normalization: every location's feature vector gets q = 1.

    Optionally appends a homogeneous coordinate along the feature dim first: "one" appends
    homogeneous_scale; "rms" appends homogeneous_scale times the example's RMS over all
    non-batch dims (dim 0 is the batch). Then v -> v / sqrt(mean(v**2, dim) + eps).

    Args:
        x: tensor (batch, ..., features), or use dim=1 for (batch, channels, h, w).
        homogeneous: None, "one" or "rms".
        homogeneous_scale: factor of the appended coordinate.
        dim: the feature dim (not 0).
        eps: added to q (0.0: exact q = 1; an all-zero location then gives NaN).

    Returns:
        The normalized tensor (one more feature with a homogeneous coordinate).
    """
    if x.dim() < 2 or dim % x.dim() == 0:
        raise ValueError(f"expected (batch, ..., features) and a non-batch dim, got "
                         f"shape {tuple(x.shape)} and dim {dim}")
    if homogeneous is not None:
        shape = list(x.shape)
        shape[dim] = 1
        if homogeneous == "one":
            extra = torch.full(shape, homogeneous_scale, dtype=x.dtype, device=x.device)
        elif homogeneous == "rms":
            rms = x.square().mean(dim=tuple(range(1, x.dim())), keepdim=True).sqrt()
            extra = (homogeneous_scale * rms).expand(shape)
        else:
            raise ValueError(f"homogeneous must be None, 'one' or 'rms', got {homogeneous!r}")
        x = torch.cat([x, extra], dim=dim)
    return x / torch.sqrt(x.square().mean(dim=dim, keepdim=True) + eps)
'''

TARGET = Target(
    name="torch",
    framework="PyTorch",
    printer=TorchPrinter,
    imports=("import torch",),
    extra_imports={},
    helpers={"_hypot": _HYPOT},
    where="torch.where({0}, {1}, {2})",
    full_like="torch.full_like({0}, {1})",
    support=_SUPPORT,
    support_names=("suo_", "suo_init_", "pln"),
    layout="nn.Linear (out, in), nn.ConvNd (out, in, *kernel)",
    wrapper=_module_class,
)
