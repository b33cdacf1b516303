"""``trace``, ``predict`` and ``shape``: the public face of the PyTorch reader."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import numbers

import numpy as np
import torch

from ..errors import KernelShapeError, ModelError, TransformError
from ..init import delta_orthogonal, suo
from . import _derive, _vocab
from ._trace import _Reader, graph_module

METHODS = ("dks", "tat")
#: method -> the targets it takes (``dks``/``tat`` names)
TARGETS = {"dks": ("zeta",), "tat": ("tau", "eta")}


def _read(model, example_input, shortcut_weight=None):
    """A private copy of ``model`` traced and read: (GraphModule, reader)."""
    try:
        work = copy.deepcopy(model)
    except Exception as err:
        raise ModelError(f"cannot copy the model (kernelshape reads and shapes a deep copy, "
                         f"never the model itself): {type(err).__name__}: {err}") from err
    gm = graph_module(work, example_input)
    return gm, _Reader(gm, shortcut_weight).run()


def _raise(reader, what):
    if reader.problems:
        lines = "\n".join(f"  {path}: {reason}" for path, reason in reader.problems)
        raise ModelError(f"{what}: {len(reader.problems)} part(s) of the model do not fit the "
                         f"kernel theory:\n{lines}", reader.problems)
    if not reader.outputs:
        raise ModelError(f"{what}: the model returns no tensor")


def _check_weights(weights):
    if weights not in _derive.WEIGHTS:
        raise ModelError(f"weights must be one of {', '.join(map(repr, _derive.WEIGHTS))}, got "
                         f"{weights!r}")
    return weights


def _check_w(w):
    if w is None:
        return None
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not 0.0 <= float(w) <= 1.0:
        raise ModelError(f"shortcut_weight must be a number in [0, 1] or None, got {w!r}")
    return float(w)


def _binder(reader):
    built = {}

    def bind(key):
        if key not in built:
            built[key] = reader.act_builders[key]()
        return built[key]
    return bind


def trace(model, example_input, *, shortcut_weight: float | None = None,
          weights: str = "shaped"):
    """The kernelshape :class:`~kernelshape.Network` of a PyTorch model, through ``torch.fx``.

    Every node of the traced graph is read by one rule (a table per module class, function
    and tensor method, see :mod:`kernelshape.torch`). Activations become ``nonlinear(phi)``
    bound to the model's activation; ``nn.Linear`` ``linear()``, ``nn.Conv*d``
    ``conv(..., init="delta")`` (odd kernels; Gaussian for even ones); sums whose constant
    weights have squares summing to 1 normalized sums; ``torch.cat`` along channels a
    ``parallel`` with the channel fractions. ``weights="shaped"`` reads dense and conv
    layers as DKS/TAT initialize them (q-preserving, zero bias), the description the
    solvers need; ``weights="model"`` reads the scales the model holds
    (``sigma_w^2 = fan_in * mean(W^2)``, ``sigma_b^2 = mean(b^2)``).

    Args:
        model: a ``torch.nn.Module`` (not modified: it is read from a deep copy).
        example_input: one input batch (a forward pass gives the shapes).
        shortcut_weight: read each unweighted ``a + b`` as ``w * skip + sqrt(1 - w^2) *
            branch`` (the skip being the term with fewer activations), as
            :func:`shape` rewrites it; None refuses unweighted sums.
        weights: ``"shaped"`` or ``"model"``.

    Returns:
        A :class:`~kernelshape.Network` (``heads(...)`` for several outputs).

    Raises:
        ModelError: every part that does not fit, by module path, in one error
            (``err.problems`` holds ``(path, reason)`` pairs).

    Example:
        >>> import torch, kernelshape as ks
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
        ...                             torch.nn.Linear(8, 2))
        >>> ks.torch.trace(model, torch.zeros(1, 4))
        chain(linear, nonlinear(phi='tanh'), linear)
    """
    weights = _check_weights(weights)
    _, reader = _read(model, example_input, _check_w(shortcut_weight))
    _raise(reader, "cannot read the model")
    return _derive._Context(reader, _binder(reader), weights).network()


def predict(model, example_input, *, q0: float | None = None, c0: float = 0.0,
            weights: str = "model"):
    """Predicted second moment ``q`` and correlation ``c`` after every activation and sum.

    The scalar path of the kernel theory (every position alike; per location for Delta
    convolutions): two inputs at second moment ``q0`` with correlation ``c0`` pushed
    through the model's graph, layer by layer, with kernelshape's maps.

    Args:
        model: a ``torch.nn.Module`` (read from a deep copy, never modified).
        example_input: one input batch.
        q0: input second moment; None for ``mean(example_input ** 2)``.
        c0: input correlation in [-1, 1].
        weights: ``"model"`` (default: the scales the model's dense and conv layers hold)
            or ``"shaped"`` (q-preserving, zero bias, as after :func:`shape`).

    Returns:
        A tuple of :class:`Row` ``(path, kind, q, c, node, detail)``, in graph order, the
        model's output(s) last.

    Example:
        >>> import torch, kernelshape as ks
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        >>> rows = ks.torch.predict(model, torch.zeros(1, 4), q0=1.0, weights="shaped")
        >>> rows[0].path, rows[0].kind, round(rows[0].q, 12)
        ('1', 'activation', 0.5)
    """
    weights = _check_weights(weights)
    _, reader = _read(model, example_input)
    _raise(reader, "cannot read the model")
    q0 = float(example_input.detach().double().pow(2).mean()) if q0 is None else float(q0)
    if not (math.isfinite(q0) and q0 > 0) or not -1.0 <= float(c0) <= 1.0:
        raise ModelError(f"q0 must be > 0 and c0 in [-1, 1], got q0={q0!r}, c0={c0!r}")
    return _derive.rows(reader, _binder(reader), weights, q0, float(c0))


def capture(model, inputs):
    """Every intermediate tensor of ``model`` on ``inputs``, by ``torch.fx`` node name.

    The graph is the one :func:`predict` reads (and, for a shaped model, the one
    ``Report.layers`` names), so ``capture(model, x)[row.node]`` is the tensor a row
    predicts. The model runs in its current mode, without gradients; nothing is modified.

    Args:
        model: a ``torch.nn.Module``.
        inputs: one input batch.

    Returns:
        A dict: node name -> tensor (detached).

    Example:
        >>> import torch, kernelshape as ks
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh())
        >>> rows = ks.torch.predict(model, torch.zeros(1, 4), q0=1.0)
        >>> ks.torch.capture(model, torch.ones(3, 4))[rows[0].node].shape
        torch.Size([3, 8])
    """
    return node_values(graph_module(model, inputs), inputs)


def node_values(gm, inputs):
    """Run the GraphModule ``gm`` on ``inputs`` without gradients: node name -> tensor."""
    seen = {}

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                seen[n.name] = out.detach()
            return out

    with torch.no_grad():
        _Recorder(gm).run(inputs)
    return seen


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`shape` did.

    Attributes:
        network: the shaped model's network (activations bound to their transforms, layers
            as shaped); its ``subnet_max`` is what the transforms were solved on.
        transforms: activation name (``"tanh"``, ``"leaky_relu(negative_slope=0.1)"``,
            ...) -> the :class:`~kernelshape.Transform` applied to it.
        layers: :class:`Row` per activation, sum and output of the shaped model at
            ``q0 = 1``, ``c0 = 0`` (:meth:`predict` for other inputs).
        shortcut_weight: the weight given to unweighted skip sums (None if none).
    """

    network: object
    transforms: dict
    layers: tuple
    shortcut_weight: float | None = None
    _reading: object = dataclasses.field(default=None, repr=False, compare=False)

    def predict(self, q0: float = 1.0, c0: float = 0.0):
        """The rows for two inputs at second moment ``q0`` with correlation ``c0``."""
        reader, bind = self._reading
        return _derive.rows(reader, bind, "shaped", float(q0), float(c0))

    def summary(self) -> str:
        """A readable table: transforms, then every row (path, kind, q, c)."""
        lines = [f"{len(self.transforms)} transform(s):"]
        lines += [f"  {name}: {t!r}" for name, t in self.transforms.items()]
        width = max([len(r.path) for r in self.layers] + [4])
        lines.append(f"{'path':<{width}}  {'kind':<10}  {'q':>10}  {'c(0)':>10}  detail")
        for r in self.layers:
            lines.append(f"{r.path:<{width}}  {r.kind:<10}  {r.q:>10.6f}  {r.c:>10.6f}  "
                         f"{r.detail}")
        if any(math.isnan(r.q) for r in self.layers):
            lines.append(f"nan: {_derive.NOT_GAUSSIAN}")
        return "\n".join(lines)


def _activation_name(key):
    kind, params = key
    return kind + (f"({', '.join(f'{k}={v:g}' for k, v in params)})" if params else "")


def _solve(method, kind, params, network, targets):
    from .. import transforms
    phi = _vocab.base_activation(kind, params, method=method)
    if method == "dks":
        return transforms.dks(phi, network=network, **{k: v for k, v in targets.items()
                                                        if v is not None})
    leaky = kind == "relu" or "negative_slope" in phi.free
    key = "eta" if leaky else "tau"
    value = targets.get(key)
    return transforms.tat(phi, network=network, **({key: value} if value is not None else {}))


def _check_targets(method, zeta, eta, tau):
    if method not in METHODS:
        raise TransformError(f"method must be one of {', '.join(map(repr, METHODS))}, got "
                             f"{method!r}")
    given = {k: v for k, v in (("zeta", zeta), ("eta", eta), ("tau", tau)) if v is not None}
    wrong = sorted(set(given) - set(TARGETS[method]))
    if wrong:
        raise TransformError(f"{', '.join(wrong)} is not a {method} target; {method} takes "
                             f"{', '.join(TARGETS[method])}")
    return given


def shape(model, example_input, *, method: str = "dks", zeta: float | None = None,
          eta: float | None = None, tau: float | None = None,
          shortcut_weight: float | None = None, pln: bool = False, seed: int | None = None):
    """A DKS- or TAT-shaped copy of a PyTorch model, and a report of what was done.

    The copy (a ``torch.fx.GraphModule``; the original is never modified, even on error)
    has every activation replaced by a :class:`TransformedActivation` (one Transform per
    distinct activation, solved on the model's own network), ``nn.Linear`` weights drawn
    from SUO and ``nn.Conv*d`` weights Delta-orthogonal (SUO over the whole kernel for even
    sizes), biases zeroed, layer norm scales 1 and shifts 0, each unweighted ``a + b`` made
    ``w * skip + sqrt(1 - w^2) * branch`` with ``w = shortcut_weight`` (the skip is the term
    with fewer activations, as :func:`kernelshape.residual`), and with ``pln=True`` a
    per-location normalization of the input (channels, axis 1).

    Args:
        model: a ``torch.nn.Module``.
        example_input: one input batch.
        method: ``"dks"`` (target ``zeta``) or ``"tat"`` (``tau`` for smooth activations,
            ``eta`` for the ReLU family); None targets take the solvers' defaults.
        shortcut_weight: in [0, 1], for unweighted skip additions; None refuses them.
        pln: prepend per-location normalization.
        seed: seed of the weight draws (``numpy.random.default_rng``).

    Returns:
        ``(shaped, report)``: the shaped GraphModule and a :class:`Report`.

    Raises:
        ModelError: parts of the model that do not fit (all listed, by module path).
        TransformError: an unknown method, a target the method does not take.

    Example:
        >>> import torch, kernelshape as ks
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(),
        ...                             torch.nn.Linear(16, 16), torch.nn.Tanh())
        >>> shaped, report = ks.torch.shape(model, torch.zeros(1, 4), zeta=1.5, seed=0)
        >>> [round(r.q, 12) for r in report.layers]   # DKS keeps q = 1
        [1.0, 1.0, 1.0]
    """
    targets = _check_targets(method, zeta, eta, tau)
    w = _check_w(shortcut_weight)
    gm, reader = _read(model, example_input, w)
    for path in reader.scales:
        reason = ("multiplication by a constant outside a normalized sum: DKS/TAT need layers "
                  "that keep q")
        reader.problems.append((path, reason))
    _raise(reader, "cannot shape the model")
    network = _derive._Context(reader, lambda key: None, "shaped").network()
    transforms = {}
    for key in reader.activations:
        if key[0] == "transformed":
            raise ModelError("the model is already shaped", [(reader.activations[key][0],
                                                             "a TransformedActivation")])
        try:
            transforms[key] = _solve(method, key[0], dict(key[1]), network, targets)
        except KernelShapeError as err:
            paths = reader.activations[key]
            where = f"{', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''}"
            raise ModelError(f"cannot shape the model: {method} for {_activation_name(key)} "
                             f"(at {where}): {type(err).__name__}: {err}",
                             [(p, str(err)) for p in paths]) from err
    _check_used(targets, transforms, method)
    _rewrite(gm, reader, transforms, pln)
    _initialize(reader, np.random.default_rng(seed))
    # Read back as predict() and capture() will read the shaped model: the same node names.
    shaped_reader = _Reader(graph_module(gm, example_input)).run()
    _raise(shaped_reader, "internal: the shaped model")
    bind = _binder(shaped_reader)
    report = Report(
        network=_derive._Context(shaped_reader, bind, "shaped").network(),
        transforms={_activation_name(k): t for k, t in transforms.items()},
        layers=_derive.rows(shaped_reader, bind, "shaped", 1.0, 0.0),
        shortcut_weight=w, _reading=(shaped_reader, bind))
    return gm, report


def _check_used(targets, transforms, method):
    if method != "tat":
        return
    used = {"eta" if "eta" in t.targets else "tau" for t in transforms.values()}
    unused = sorted(set(targets) - used)
    if unused:
        raise TransformError(f"{', '.join(unused)} is given but no activation of the model "
                             f"takes it (tau: smooth activations; eta: the ReLU family)")


def _rewrite(gm, reader, transforms, pln):
    graph = gm.graph
    modules = dict(gm.named_modules())
    done = {}
    for node, key in reader.act_nodes:
        module = _vocab.transformed_module(key[0], dict(key[1]), transforms[key])
        if node.op == "call_module":
            target = str(node.target)
            if target not in done:
                done[target] = module
                _set_module(gm, target, module, modules)
            continue
        name = f"ks_{node.name}"
        gm.add_submodule(name, module)
        with graph.inserting_after(node):
            new = graph.call_module(name, (node.args[0],))
        _copy_scope(node, new)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
    for node, skip_index, w in reader.rewrites:
        skip, branch = node.args[skip_index], node.args[1 - skip_index]
        with graph.inserting_before(node):
            a = graph.call_function(torch.mul, (skip, float(w)))
            b = graph.call_function(torch.mul, (branch, float(math.sqrt(1.0 - w * w))))
            new = graph.call_function(torch.add, (a, b))
        for made in (a, b, new):
            _copy_scope(node, made)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
    if pln:
        gm.add_submodule("ks_pln", _vocab.PLN())
        placeholder = next(n for n in graph.nodes if n.op == "placeholder")
        with graph.inserting_after(placeholder):
            new = graph.call_module("ks_pln", (placeholder,))
        placeholder.replace_all_uses_with(new, delete_user_cb=lambda user: user is not new)
    graph.lint()
    gm.recompile()


def _copy_scope(old, new):
    if "nn_module_stack" in old.meta:
        new.meta["nn_module_stack"] = dict(old.meta["nn_module_stack"])


def _set_module(gm, target, module, modules):
    parent_name, _, leaf = target.rpartition(".")
    parent = modules[parent_name] if parent_name else gm
    setattr(parent, leaf, module)


def _blas_one_thread():
    """One BLAS thread for the QRs: beside torch's own thread pool, OpenBLAS's spinning
    threads made each 256 x 256 QR take a second on a busy 2-core machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:   # optional: only the speed differs
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _initialize(reader, rng):
    with torch.no_grad(), _blas_one_thread():
        for _, m, kind in reader.layers:
            if kind == "layer_norm":
                m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()
                continue
            shape = tuple(m.weight.shape)
            odd = kind == "conv" and all(k % 2 == 1 for k in shape[2:])
            if odd:
                w = delta_orthogonal(shape, rng=rng, layout="oi")
            else:
                w = suo(shape, rng=rng, delta=False, layout="oi")
            m.weight.copy_(torch.from_numpy(w).to(m.weight.dtype))
            if m.bias is not None:
                m.bias.zero_()


