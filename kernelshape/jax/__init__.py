"""Read JAX models as kernelshape networks and shape them with DKS / TAT.

* :func:`trace` reads ``fn(params, x)`` through ``jax.make_jaxpr``: dense layers
  (``dot_general`` with a weight from ``params``), convolutions, element-wise activations
  (chains of primitives turned into one sympy expression, through ``jit`` and
  ``custom_jvp`` bodies such as ``jax.nn.relu``), biases, normalized sums, average pooling,
  global means, flatten, layer norm, concatenation along features.
* :func:`shape` returns an apply function with transformed activations, freshly
  initialized params (SUO, Delta-orthogonal, zero biases) and normalized skip sums, and a
  :class:`Report` of the predicted per-layer q and c. :func:`shape_flax` does it for a Flax
  linen module.

Whatever does not fit the theory (batch statistics, max pooling, gating products,
unnormalized sums, control flow, unknown primitives) is named, with its source line, in one
:class:`~kernelshape.errors.ModelError`. JAX is imported only here.
"""

from __future__ import annotations

from ._shape import Report, ShapedApply, shape, shape_flax
from ._trace import Tracer, network_of, raise_problems, read

__all__ = ["Report", "ShapedApply", "shape", "shape_flax", "trace"]

CONV_INITS = ("delta", "gaussian")


def _read(fn, params, example_input, *, flat=None, **options):
    """(tracer, output record, flat) of ``fn(params, example_input)``; raises ModelError."""
    import jax

    from ..errors import ModelError
    from ._elementwise import X
    from ._flat import flatten
    from ._records import Data, Param
    if options.get("conv_init", "delta") not in CONV_INITS:
        raise ModelError(f"conv_init must be one of {CONV_INITS}, got "
                         f"{options['conv_init']!r}")
    if flat is None:
        leaves, _treedef = jax.tree_util.tree_flatten_with_path(params)
        names = [jax.tree_util.keystr(path) for path, _ in leaves]
        try:
            closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(params, example_input)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                jax.errors.TracerIntegerConversionError) as err:
            first = str(err).strip().splitlines()[0]
            raise ModelError(f"the model branches on data in Python, which a trace cannot "
                             f"follow: {first}", problems=[("python", first)]) from err
        flat = (flatten(closed), names, jax.tree_util.tree_structure(params),
                jax.tree_util.tree_structure(out_shape))
    (instrs, in_ids, outs, shapes), names, _, _ = flat
    if len(in_ids) != len(names) + 1:
        raise ModelError("example_input must be one array (the model's input)",
                         problems=[("input", f"{len(in_ids) - len(names)} input arrays")])
    tracer = Tracer(names, shapes, **options)
    for i, ref in enumerate(in_ids[:-1]):
        tracer.values[ref] = Param(i, tuple(range(len(shapes[ref]))))
    tracer.values[in_ids[-1]] = Data((), X, in_ids[-1])
    rec = read(instrs, in_ids, outs, tracer)
    raise_problems(tracer)
    return tracer, rec, flat


def trace(fn, params, example_input, *, conv_init: str = "delta", shortcut_weight=None):
    """The kernelshape :class:`~kernelshape.networks.Network` of ``fn(params, x)``.

    Dense and convolution layers become ``linear()`` / ``conv(...)`` (the maps of
    q-preserving layers, as DKS and TAT assume), activations ``nonlinear(phi)`` bound to
    the traced expression, additions of branches normalized sums.

    Args:
        fn: ``fn(params, x)``, e.g. a Flax module's ``apply``.
        params: the params pytree (its leaves are the weights, biases and scales).
        example_input: one input batch, batch axis first, features last.
        conv_init: the conv layers' description, ``"delta"`` (Delta-orthogonal, odd
            kernel sizes; even sizes fall back to ``"gaussian"``) or ``"gaussian"``.
        shortcut_weight: when given, every two-branch sum is read as
            ``w * shortcut + sqrt(1 - w^2) * branch`` (the branch with fewer nonlinear
            layers is the shortcut) instead of refusing unnormalized sums.

    Raises:
        ModelError: everything that does not fit, listed together in ``err.problems``
            as ``(source line, reason)`` pairs.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> params = {"w1": jnp.ones((3, 8)), "w2": jnp.ones((8, 2))}
        >>> fn = lambda p, x: jnp.tanh(jnp.tanh(x @ p["w1"]) @ p["w2"])
        >>> trace(fn, params, jnp.ones((4, 3)))
        chain(linear, nonlinear(phi='tanh(x)'), linear, nonlinear(phi='tanh(x)'))
    """
    _tracer, rec, _ = _read(fn, params, example_input, conv_init=conv_init,
                           shortcut_weight=shortcut_weight)
    return network_of(rec)
