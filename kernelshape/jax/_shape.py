"""Shape a traced JAX model: transformed activations, fresh params, normalized sums.

:func:`shape` reads the model three times over one flat jaxpr (:mod:`._trace`): as
written (the activations and weights), with every activation unbound (the network the
solvers see, one :class:`~kernelshape.transforms.Transform` per distinct activation) and
with the transformed activations bound (the per-layer predictions of the :class:`Report`).
"""

from __future__ import annotations

import collections
import functools
import math

import numpy as np

from ..errors import ModelError

Row = collections.namedtuple("Row", "where kind q c")


class ShapedApply:
    """``apply(params, x)`` of the shaped model: the original equations, with each
    activation site replaced by its transformed activation and each traced sum by its
    normalized weights. Works under ``jax.jit``.

    Attributes:
        transforms: activation text -> :class:`~kernelshape.transforms.Transform`.
    """

    def __init__(self, flat, tracer, functions, transforms, params=None):
        (self._instrs, self._in_ids, self._outs, _), _, self._treedef, self._out_tree = flat
        self._sites = {ref: (base, gain, functions[key], factor)
                       for ref, (base, gain, key, _, factor) in tracer.sites.items()}
        self._sums = {ref: terms for ref, terms in tracer.sums.items() if terms}
        self.transforms = transforms
        self._init = functools.partial(_reinit, params, tracer)
        self._compiled = {}

    def init(self, key):
        """Fresh params for ``key`` (an int seed or a ``jax.random`` key), as :func:`shape`
        initializes them; the original params are only read."""
        return self._init(key)[0]

    def _override(self, instr, env):
        out = instr.outs[0]
        if out in self._sites:
            base, gain, fn, factor = self._sites[out]
            value = fn(env[base] / gain if gain != 1 else env[base])
            return {out: value * factor if factor != 1 else value}
        if out in self._sums:
            return {out: sum(w * (env[b] / g if g != 1 else env[b])
                             for b, g, w in self._sums[out])}
        return None

    def _run(self, params, x):
        import jax

        from ._flat import run
        leaves = self._treedef.flatten_up_to(params)
        outs, env = run(self._instrs, self._in_ids, self._outs, [*leaves, x], self._override)
        return jax.tree_util.tree_unflatten(self._out_tree, outs), env

    def __call__(self, params, x):
        return self._run(params, x)[0]

    def intermediates(self, params, x, report):
        """The shaped model's value after each layer of ``report.layers`` (same order),
        divided by any pending constant (a sum pooling's window size)."""
        import jax
        refs = tuple(ref for ref, _ in report._outputs)
        fn = self._compiled.get(refs)
        if fn is None:
            fn = self._compiled[refs] = jax.jit(
                lambda p, x: [self._run(p, x)[1][ref] for ref in refs])
        return [h / gain for h, (_, gain) in zip(fn(params, x), report._outputs, strict=True)]


class Report:
    """What :func:`shape` did: the derived network, the transforms, per-layer predictions.

    Attributes:
        network: the shaped model's :class:`~kernelshape.networks.Network` (transformed
            activations bound).
        transforms: activation text -> :class:`~kernelshape.transforms.Transform`.
        reinitialized: param paths re-initialized, with what (``"suo"``, ``"delta"``,
            ``"zeros"``, ``"ones"``).
    """

    def __init__(self, network, transforms, tracer, reinitialized):
        self.network = network
        self.transforms = transforms
        self.reinitialized = reinitialized
        self._rows = [(step.where, step.kind, path) for step, path in tracer.rows]
        self._outputs = [(step.out, _gain(tracer, step)) for step, _ in tracer.rows]

    def predict(self, *, q: float = 1.0, c: float = 0.0) -> list:
        """Predicted ``(where, kind, q, c)`` after each layer for inputs of second moment
        ``q`` and correlation ``c``."""
        from ..networks import chain
        rows = []
        for where, kind, path in self._rows:
            net = chain(*[s.node for s in path])
            rows.append(Row(where, kind, net.q_map(None, q), net.c_map(None, c, q=q)))
        return rows

    @functools.cached_property
    def layers(self) -> list:
        """:meth:`predict` at ``q = 1``, ``c = 0``."""
        return self.predict()

    def summary(self) -> str:
        """A readable table: the transforms, then one line per layer."""
        lines = [f"network: {self.network!r}"]
        for text, t in self.transforms.items():
            params = ", ".join(f"{k}={v:.6g}" for k, v in t.params.items())
            lines.append(f"{t.method}: {text} -> {params}")
        lines.append(f"{'kind':<16} {'q':>10} {'c':>10}  where")
        for row in self.layers:
            lines.append(f"{row.kind:<16} {row.q:>10.6g} {row.c:>10.6g}  {row.where}")
        return "\n".join(lines)

    def __repr__(self):
        return f"Report({self.network!r}, {len(self.transforms)} transform(s))"


def _gain(tracer, step):
    rec = tracer.values.get(step.out)
    return getattr(rec, "gain", 1.0) if step.kind in ("avg_pool", "global_avg_pool") else 1.0


def _seed(key):
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return int(key)
    import jax
    data = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) \
        else key
    return [int(v) for v in np.asarray(data).ravel()]


def _reinit(params, tracer, key):
    import jax
    import jax.numpy as jnp

    from ..init import suo
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(_seed(key))
    new, done = [], {}
    for i, leaf in enumerate(leaves):
        # abstract params (jax.eval_shape(model.init, ...)) are enough: every leaf the
        # model uses is re-initialized; an unused abstract leaf becomes zeros
        arr = np.zeros(leaf.shape, leaf.dtype) if isinstance(leaf, jax.ShapeDtypeStruct) \
            else np.asarray(leaf)
        name = tracer.leaf_names[i]
        if i in tracer.weights:
            _kind, kernel, ins, outs = tracer.weights[i]
            order = (*kernel, *ins, *outs)
            sizes = [arr.shape[a] for a in kernel]
            delta = bool(kernel) and tracer.conv_init == "delta" and all(s % 2 for s in sizes)
            matrix = (*sizes, math.prod(arr.shape[a] for a in ins),
                      math.prod(arr.shape[a] for a in outs))
            w = suo(matrix, rng=rng, delta=delta).reshape([arr.shape[a] for a in order])
            value = np.transpose(w, np.argsort(order))
            done[name] = "delta" if delta else "suo"
        elif i in tracer.roles:
            role = tracer.roles[i]
            value = np.zeros(arr.shape) if role == "zeros" else np.ones(arr.shape)
            done[name] = role
        else:
            value = arr
        new.append(jnp.asarray(value, dtype=arr.dtype))
    return jax.tree_util.tree_unflatten(treedef, new), done


def shape(fn, params, example_input, *, method: str = "dks", shortcut_weight=None, key=0,
          conv_init: str = "delta", **targets):
    """Shape ``fn(params, x)`` with DKS or TAT: ``(apply_fn, new_params, report)``.

    Each distinct activation gets one transform, solved on the traced network
    (``ks.dks`` / ``ks.tat`` with ``targets``, e.g. ``zeta=1.5`` or ``tau=0.3`` or
    ``eta=0.9`` for leaky ReLUs); weights are re-initialized (SUO for dense layers,
    Delta-orthogonal for odd-sized convolutions), biases set to zero and layer norm scales
    to one. ``params`` is never modified.

    Args:
        fn: ``fn(params, x)``; ``params``: its params pytree; ``example_input``: a batch.
        method: ``"dks"`` or ``"tat"``.
        shortcut_weight: the weight of the shortcut in every two-branch sum (the branch
            gets ``sqrt(1 - w^2)``); None keeps the model's weights, which must then be
            normalized.
        key: an int seed or a ``jax.random`` key for the new weights.
        conv_init: ``"delta"`` or ``"gaussian"`` (see :func:`kernelshape.jax.trace`).
        **targets: passed to the solver.

    Returns:
        ``(apply_fn, new_params, report)``: a :class:`ShapedApply`, a new params pytree,
        a :class:`Report`.

    Raises:
        ModelError: parts of the model that do not fit (all of them, with source lines),
            or a constant scaling outside a normalized sum (not q-preserving).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> params = {"w1": jnp.ones((3, 64)), "w2": jnp.ones((64, 64))}
        >>> fn = lambda p, x: jnp.tanh(jnp.tanh(x @ p["w1"]) @ p["w2"])
        >>> apply, new, report = shape(fn, params, jnp.ones((4, 3)), zeta=1.5)
        >>> apply(new, jnp.ones((4, 3))).shape
        (4, 64)
    """
    from .. import dks, tat
    from . import _read
    from ._trace import network_of
    if method not in ("dks", "tat"):
        raise ModelError(f"method must be 'dks' or 'tat', got {method!r}")
    options = {"conv_init": conv_init, "shortcut_weight": shortcut_weight}
    tracer, _, flat = _read(fn, params, example_input, **options)
    if tracer.scalings:
        problems = [(where, (f"a constant scaling by {g:.6g} outside a normalized sum (DKS "
                            "and TAT need q-preserving layers)")) for where, g in tracer.scalings]
        raise ModelError("the model scales data by constants:\n" + "\n".join(
            f"  - {w}: {r}" for w, r in problems), problems=problems)
    _, plain, _ = _read(fn, params, example_input, flat=flat,
                        bind=dict.fromkeys(tracer.activations), **options)
    solve = dks if method == "dks" else tat
    leaky = method == "tat" and "eta" in targets
    solved = {key_: solve(_leaky_or(phi) if leaky else phi, network=network_of(plain),
                          **targets)
              for key_, phi in tracer.activations.items()}
    bound, out, _ = _read(fn, params, example_input, flat=flat,
                          bind={k: t.activation for k, t in solved.items()}, **options)
    from ..codegen import as_jax
    functions = {k: as_jax(t) for k, t in solved.items()}
    transforms = {str(tracer.activations[k].expr): t for k, t in solved.items()}
    new_params, done = _reinit(params, tracer, key)
    apply = ShapedApply(flat, tracer, functions, transforms, params)
    return apply, new_params, Report(network_of(out), transforms, bound, done)


def _leaky_or(phi):
    """A traced leaky ReLU (or ReLU) as ``activation("leaky_relu")`` with its slope free:
    TAT's ``eta`` target solves for the negative slope (Zhang et al. 2022, §4.3)."""
    from ..activations import activation
    from ._elementwise import X
    points = (-3.0, -1.0, -0.5, 0.5, 1.0, 3.0)
    try:
        values = [float(phi.expr.subs(X, p)) for p in points]
    except (TypeError, ValueError):
        return phi
    slope = values[0] / points[0]
    if all(abs(v - p) < 1e-12 for v, p in zip(values[3:], points[3:], strict=True)) and all(
            abs(v - slope * p) < 1e-12 for v, p in zip(values[:3], points[:3], strict=True)) \
            and 0.0 <= slope < 1.0:
        return activation("leaky_relu", negative_slope=None)
    raise ModelError(f"TAT's eta target is for leaky ReLUs; {phi.expr} is not one (give tau= "
                     "for smooth activations)", problems=[("activation", str(phi.expr))])


def shape_flax(module, variables, example_input, **options):
    """:func:`shape` for a Flax linen module: ``(apply_fn, new_variables, report)`` with
    ``apply_fn(new_variables, x)`` in place of ``module.apply``.

    Example:
        >>> import jax, jax.numpy as jnp, flax.linen as nn
        >>> model = nn.Sequential([nn.Dense(64), nn.tanh, nn.Dense(64), nn.tanh])
        >>> x = jnp.ones((4, 3))
        >>> apply, new, report = shape_flax(model, model.init(jax.random.key(0), x), x,
        ...                                 zeta=1.5)
        >>> report.network
        chain(linear, nonlinear(phi=...), linear, nonlinear(phi=...))
    """
    return shape(module.apply, variables, example_input, **options)
