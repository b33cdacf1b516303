"""Code generation: standalone NumPy / JAX / PyTorch modules for a solved transform.

Users take a DKS or TAT transform into their own training code without depending on
kernelshape at run time. :func:`emit` returns the module source; :func:`write` saves it;
:func:`load` executes it into a fresh module; :func:`as_numpy`, :func:`as_jax` and
:func:`as_torch` return the activation itself, ready to call.

Each emitted module imports only its framework (NumPy may add ``scipy.special`` for
``erf``) and holds:

- the transformed activation ``phi_hat(x) = output_scale * (phi(u) + output_shift)``,
  ``u = input_scale * x + input_shift``, with stable rewrites (softplus through logaddexp,
  sigmoid, expm1, log1p, erfc, hypot), "double where" pieces, and far out each outer branch
  swapped for its exact asymptote (:mod:`kernelshape.codegen.tails`), so values and
  gradients are right up to the largest float and take their limits at ``+-inf``, in float32
  and float64; NumPy adds ``<name>_grad``, PyTorch an ``nn.Module`` class;
- the scaled uniform orthogonal (SUO) initializer with Delta initialization for
  convolutions in the framework's weight layout (NumPy ``(in, out)`` /
  ``(*kernel, in, out)``; JAX the same, flax-style ``init(key, shape, dtype)``; PyTorch
  ``(out, in)`` / ``(out, in, *kernel)``, in place);
- per-location normalization (PLN) with the homogeneous-coordinate modes;
- a header docstring with method, targets, network, activation, parameters, achieved
  residuals and the kernelshape version.

No text a transform carries (the activation's name, its expression, the network, condition
and parameter names, all of which a JSON document from :meth:`Transform.from_dict` can set)
reaches the source except inside an escaped string literal that is checked to read back as
the same text; the default function name is reduced to ``[a-z0-9_]``. A hostile name or
document therefore never runs code when the module is emitted, loaded, written or imported.

TensorFlow is not a target: it is not installed where this package is tested, and untested
generated code is not shipped. Adding it means one more table module like
:mod:`kernelshape.codegen.jax_target`.

References:
    Martens et al. (2021), Deep Kernel Shaping, arXiv 2110.01765 (SUO, Delta, PLN).
"""

from __future__ import annotations

import hashlib
import linecache
import os
import types

from ..errors import CodegenError
from ..transforms.result import Transform
from .emitter import Target, check_name, class_name, emit_module, safe_identifier

__all__ = ["TARGETS", "as_jax", "as_numpy", "as_torch", "emit", "load", "write"]


def _targets() -> dict[str, Target]:
    from . import jax_target, numpy_target, torch_target
    return {t.TARGET.name: t.TARGET for t in (jax_target, numpy_target, torch_target)}


#: Names of the supported targets.
TARGETS = ("jax", "numpy", "torch")


def _check_target(target) -> Target:
    if target not in TARGETS:
        extra = (" (tensorflow is not installed where kernelshape is tested, so no untested "
                 "code is shipped for it)" if target == "tensorflow" else "")
        raise CodegenError(f"unknown target {target!r}; expected one of {list(TARGETS)}{extra}")
    return _targets()[target]


def _check_transform(transform):
    if not isinstance(transform, Transform):
        raise CodegenError(
            f"expected a kernelshape Transform (from ks.dks / ks.tat), got "
            f"{type(transform).__name__}")
    if transform.method not in ("dks", "tat"):
        raise CodegenError(f"transform method must be 'dks' or 'tat', got {transform.method!r}")
    return transform


def _default_name(transform) -> str:
    """``<method>_<activation name>``, the name reduced to a safe identifier: a name from a
    JSON document is text, never code."""
    return f"{transform.method}_{safe_identifier(transform.base.name)}"


def emit(transform, target: str, *, name: str | None = None) -> str:
    """Source text of a standalone module for ``transform`` in ``target``.

    Args:
        transform: a solved :class:`~kernelshape.transforms.result.Transform`.
        target: one of :data:`TARGETS`.
        name: the activation function's name (an ASCII identifier, not a keyword, not a
            name the module needs); default ``"<method>_<activation name>"``, the
            activation's name lowercased with every run of other characters than ASCII
            letters and digits turned into ``_`` (``"activation"`` if none is left).

    Returns:
        The module source (deterministic: same inputs, same text).

    Raises:
        CodegenError: unknown target, bad name, or a function with no mapping in the target.

    Example:
        >>> import kernelshape as ks
        >>> from kernelshape.transforms.result import Transform
        >>> t = Transform("dks", ks.activation("tanh"), {"input_scale": 0.5,
        ...     "input_shift": 0.25, "output_shift": -0.2, "output_scale": 2.0}, {}, "mlp", ())
        >>> print([line for line in emit(t, "numpy").splitlines() if line.startswith("    u = 0")][0])
            u = 0.5 * x + 0.25
    """
    spec = _check_target(target)
    transform = _check_transform(transform)
    name = _default_name(transform) if name is None else name
    for each in _targets().values():   # a name valid for one target is valid for all
        check_name(name, each)
    from .. import __version__
    return emit_module(transform, spec, name, __version__)


def write(transform, target: str, path, *, name: str | None = None) -> str:
    """Write :func:`emit`'s module to ``path`` (UTF-8); returns the path as a string.

    Example:
        >>> import kernelshape as ks, tempfile, os
        >>> from kernelshape.transforms.result import Transform
        >>> t = Transform("dks", ks.activation("tanh"), {"input_scale": 0.5}, {}, "mlp", ())
        >>> path = write(t, "numpy", os.path.join(tempfile.mkdtemp(), "act.py"))
        >>> path.endswith("act.py")
        True
    """
    source = emit(transform, target, name=name)
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(source)
    return path


def load(transform, target: str, *, name: str | None = None) -> types.ModuleType:
    """The emitted module executed in a fresh namespace (no file written).

    The source is registered with :mod:`linecache` under a content-hash file name, so
    tracebacks and ``inspect.getsource`` (which ``torch.compile`` may use) see it.

    Example:
        >>> import kernelshape as ks
        >>> from kernelshape.transforms.result import Transform
        >>> t = Transform("dks", ks.activation("tanh"), {"output_scale": 2.0}, {}, "mlp", ())
        >>> float(load(t, "numpy").dks_tanh(0.0))
        0.0
    """
    source = emit(transform, target, name=name)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    filename = f"<kernelshape-codegen-{target}-{digest}>"
    module = types.ModuleType(f"kernelshape_codegen_{target}_{digest}")
    module.__file__ = filename
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    # Executes our own generated text (every name and docstring in it is validated).
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102
    return module


def _activation_of(transform, target, name):
    name = _default_name(_check_transform(transform)) if name is None else name
    return getattr(load(transform, target, name=name), name)


def as_numpy(transform, *, name: str | None = None):
    """The transformed activation as a NumPy function (see :func:`load`).

    Example:
        >>> import kernelshape as ks
        >>> from kernelshape.transforms.result import Transform
        >>> t = Transform("dks", ks.activation("relu"), {"output_scale": 2.0}, {}, "mlp", ())
        >>> float(as_numpy(t)(-1.0)), float(as_numpy(t)(1.5))
        (0.0, 3.0)
    """
    return _activation_of(transform, "numpy", name)


def as_jax(transform, *, name: str | None = None):
    """The transformed activation as a JAX function (jit-, grad- and vmap-able).

    Example:
        >>> import jax, kernelshape as ks
        >>> from kernelshape.transforms.result import Transform
        >>> t = Transform("dks", ks.activation("tanh"), {"output_scale": 2.0}, {}, "mlp", ())
        >>> float(jax.grad(as_jax(t))(0.0))
        2.0
    """
    return _activation_of(transform, "jax", name)


def as_torch(transform, *, name: str | None = None):
    """The transformed activation as a ``torch.nn.Module`` instance (no parameters).

    Example:
        >>> import torch, kernelshape as ks
        >>> from kernelshape.transforms.result import Transform
        >>> t = Transform("dks", ks.activation("relu"), {"output_scale": 2.0}, {}, "mlp", ())
        >>> as_torch(t)(torch.tensor([-1.0, 1.5])).tolist()
        [0.0, 3.0]
    """
    module = load(transform, "torch", name=name)
    name = _default_name(_check_transform(transform)) if name is None else name
    return getattr(module, class_name(name))()
