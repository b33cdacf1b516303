"""Finite-width check of a real PyTorch model: empirical q and c per layer beside the theory.

The kernel maps (THEORY.md §1-§3) predict, for every activation output and every sum of a
network, the mean square ``q`` of its features and the cosine similarity ``c`` between two
inputs, exactly at infinite width. :func:`check` runs the model itself on a batch, records
those outputs with forward hooks, and sets what it measures beside the prediction (from a
``report`` of :func:`kernelshape.torch.shape`, or from :func:`kernelshape.torch.predict`).

Definitions (one layer output ``h`` of shape ``(N, C, *positions)`` for convolutions,
``(N, *, C)`` after a dense layer; ``C`` features or channels, ``P`` positions, 1 for dense):

* per position ``p``: ``k_ab(p) = (1/C) sum_i h_a[i, p] h_b[i, p]`` (the empirical kernel);
* ``q = mean over inputs a and positions p of k_aa(p)``: the per-location q averaged over
  locations, as DKS treats convolutions (each location is a dense network under Delta
  init), then over every input of the batch;
* ``c = mean_p k_ab(p) / sqrt(mean_p k_aa(p) mean_p k_bb(p))`` for ONE pair of inputs
  ``(a, b) = pair`` (default the first two): the per-location cosine similarity, weighted by
  ``q``; it equals the plain mean over locations of the per-location ``c`` when ``q`` is the
  same at every location (PLN'd inputs, Delta init).

The prediction is taken at the inputs' own ``q0`` (mean over the batch: exact when every
input has the same q, as after PLN) and ``c0`` (the pair's input cosine similarity).

Monte Carlo error. Given the layer before, the channels of a layer are (nearly)
independent draws, so the error of a layer's estimate is measured by the jackknife over
channels (``q_stderr``, ``c_stderr``: leave one channel out, ``C`` replicates). Finite-width
errors also propagate from layer to layer; the z-scores therefore divide by the
accumulated error ``sqrt(sum over this row and the rows before it of stderr^2)`` (relative
errors for ``q``, whose scale can change by orders of magnitude with depth; absolute
for ``c``). That treats each row as adding fresh noise that later layers neither damp nor
amplify: conservative for the contracting maps of DKS and TAT, so a large ``|z|`` is a real
disagreement and not finite-width noise:

    z_q = ln(q_empirical / q_predicted) / sqrt(sum_k (q_stderr_k / q_empirical_k)^2)
    z_c = (c_empirical - c_predicted) / sqrt(sum_k c_stderr_k^2)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import DomainError, ModelError

__all__ = ["Check", "CheckRow", "check"]


@dataclasses.dataclass(frozen=True)
class CheckRow:
    """One layer output: prediction, measurement, Monte Carlo error and z-scores.

    Attributes:
        path: the module path of the output (as in the report's rows).
        kind: the report's kind of the row (activation, sum, ...).
        q_predicted, q_empirical: mean square of the features (see the module docstring).
        q_stderr: jackknife-over-channels standard error of ``q_empirical`` at this layer
            (NaN with a single channel).
        c_predicted, c_empirical, c_stderr: likewise for the pair's cosine similarity.
        q_z, c_z: z-scores against the accumulated error (module docstring); ``inf`` when
            the accumulated error is 0 and the values differ, or a value is not finite.
    """

    path: str
    kind: str
    q_predicted: float
    q_empirical: float
    q_stderr: float
    q_z: float
    c_predicted: float
    c_empirical: float
    c_stderr: float
    c_z: float

    @property
    def max_abs_z(self) -> float:
        """The larger of ``|q_z|`` and ``|c_z|`` (NaN z-scores count as 0)."""
        return max(_abs(self.q_z), _abs(self.c_z))


@dataclasses.dataclass(frozen=True)
class Check:
    """Empirical against predicted q and c per layer of a model (:func:`check`'s result).

    Attributes:
        rows: one :class:`CheckRow` per output, in the order the model computes them.
        inputs: the number of inputs of the batch.
        pair: the indices of the two inputs whose ``c`` is measured.
        q0: mean input q over the batch (the prediction's starting point).
        c0: input cosine similarity of the pair.
    """

    rows: tuple[CheckRow, ...]
    inputs: int
    pair: tuple[int, int]
    q0: float
    c0: float

    def worst(self) -> CheckRow:
        """The row with the largest ``|z|`` (of q or c)."""
        return max(self.rows, key=lambda r: r.max_abs_z)

    def ok(self, threshold: float = 4.0) -> bool:
        """Whether every row's ``|q_z|`` and ``|c_z|`` is at most ``threshold``."""
        if not (isinstance(threshold, (int, float)) and threshold > 0):
            raise DomainError(f"threshold must be a positive number, got {threshold!r}")
        return all(r.max_abs_z <= threshold for r in self.rows)

    def table(self) -> str:
        """The rows as aligned text: path, kind, q and c predicted, empirical, error, z."""
        width = max([len("path")] + [len(r.path) for r in self.rows])
        head = (f"{'path':<{width}}  {'kind':<10} {'q pred':>10} {'q emp':>10} {'+-':>8} "
                f"{'z':>7}  {'c pred':>8} {'c emp':>8} {'+-':>7} {'z':>7}")
        title = (f"{self.inputs} inputs, q0 = {self.q0:.4g}; c of inputs {self.pair} "
                 f"(c0 = {self.c0:.4f})")
        lines = [title, head, "-" * len(head)]
        for r in self.rows:
            lines.append(
                f"{r.path:<{width}}  {r.kind[:10]:<10} {r.q_predicted:10.4g} "
                f"{r.q_empirical:10.4g} {r.q_stderr:8.2g} {r.q_z:7.2f}  {r.c_predicted:8.4f} "
                f"{r.c_empirical:8.4f} {r.c_stderr:7.1g} {r.c_z:7.2f}")
        worst = self.worst()
        lines.append(f"worst: {worst.path} (|z| = {worst.max_abs_z:.3g})")
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def plot(self):
        """q (log scale) and c against the row index: lines predicted, markers +-2 errors.

        Returns:
            A matplotlib ``Figure`` (not attached to pyplot).
        """
        from ..plot._style import OKABE_ITO, _figure

        fig, axes = _figure(1, 2, width=4.2, height=3.2)
        x = np.arange(len(self.rows))
        for ax, key, scale in ((axes[0, 0], "q", "log"), (axes[0, 1], "c", "linear")):
            pred = np.array([getattr(r, f"{key}_predicted") for r in self.rows])
            emp = np.array([getattr(r, f"{key}_empirical") for r in self.rows])
            err = np.nan_to_num(np.array([getattr(r, f"{key}_stderr") for r in self.rows]))
            ax.plot(x, pred, color=OKABE_ITO[0], label="predicted")
            ax.errorbar(x, emp, yerr=2 * err, color=OKABE_ITO[5], ls="none", marker="o",
                        ms=3, capsize=2, label="empirical (+-2 s.e.)")
            ax.set_yscale(scale)
            ax.set_xlabel("layer output (in order)")
            ax.set_ylabel(key)
        axes[0, 1].legend(loc="best")
        worst = self.worst()
        fig.suptitle(f"{self.inputs} inputs; worst |z| = {worst.max_abs_z:.3g} at {worst.path}")
        return fig


def _abs(z: float) -> float:
    return 0.0 if math.isnan(z) else abs(z)


def _check_inputs(torch, inputs):
    if not isinstance(inputs, torch.Tensor):
        raise DomainError(f"inputs must be a torch.Tensor batch, got {type(inputs).__name__}")
    if inputs.ndim < 2 or inputs.shape[0] < 2:
        raise DomainError(f"inputs must be a batch of at least 2 inputs (first axis), got "
                          f"shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise DomainError(f"inputs must be floating point, got dtype {inputs.dtype}")
    if not bool(torch.isfinite(inputs).all()):
        raise DomainError("inputs must be finite; the batch holds NaN or infinite values")
    return inputs


def _check_pair(pair, n):
    try:
        a, b = (int(i) for i in pair)
    except (TypeError, ValueError) as err:
        raise DomainError(f"pair must be two input indices, got {pair!r}") from err
    if not (0 <= a < n and 0 <= b < n and a != b):
        raise DomainError(f"pair must be two different indices in [0, {n}), got {pair!r}")
    return a, b


def _rows_of(report):
    rows = getattr(report, "layers", None)
    if rows is None:
        raise DomainError(f"report must have .layers rows (from ks.torch.shape or "
                          f"ks.torch.predict), got {type(report).__name__}")
    for row in rows:
        missing = [f for f in ("path", "q", "c") if not hasattr(row, f)]
        if missing:
            raise DomainError(f"report rows need fields path, q, c; a row lacks {missing}")
    return list(rows)


def _features(h, axis: int) -> np.ndarray:
    """``h`` as a float64 array ``(N, C, P)``: inputs, channels, positions."""
    h = h.detach().to("cpu").double().numpy()
    h = np.moveaxis(h, axis, 1)
    return h.reshape(h.shape[0], h.shape[1], -1)


def _kernels(h: np.ndarray, a: int, b: int):
    """q, c and their leave-one-channel-out replicates for ``h`` of shape ``(N, C, P)``."""
    n_ch = h.shape[1]
    per_channel_q = np.mean(h ** 2, axis=(0, 2))                      # (C,)
    q = float(per_channel_q.mean())
    ab = np.sum(h[a] * h[b], axis=1)                                  # (C,) summed over p
    aa, bb = np.sum(h[a] ** 2, axis=1), np.sum(h[b] ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = float(ab.sum() / math.sqrt(aa.sum() * bb.sum())) if aa.sum() * bb.sum() > 0 \
            else math.nan
        if n_ch < 2:
            return q, math.nan, c, math.nan
        q_se = float(per_channel_q.std(ddof=1) / math.sqrt(n_ch))
        loo = (ab.sum() - ab) / np.sqrt((aa.sum() - aa) * (bb.sum() - bb))
        c_se = float(math.sqrt((n_ch - 1) / n_ch * np.sum((loo - loo.mean()) ** 2)))
    return q, q_se, c, c_se


def _predicted(model, inputs, report, weights, q0, c0):
    if report is not None:
        again = getattr(report, "predict", None)
        # A shape() report holds rows at q0 = 1, c0 = 0; ask it for this batch's q0, c0.
        return _rows_of(report if again is None else _Rows(again(q0, c0)))
    from . import predict

    return _rows_of(_Rows(predict(model, inputs[:1], q0=q0, c0=c0, weights=weights)))


class _Rows:
    def __init__(self, rows):
        self.layers = rows


_CONV = ("Conv1d", "Conv2d", "Conv3d", "conv1d", "conv2d", "conv3d")


def _record(torch, model, inputs, rows):
    """Run ``model`` on ``inputs`` once; the outputs the rows name, in call order, as
    ``{key: [array (N, C, P), ...]}`` with the feature axis 1 after a convolution and -1
    after a dense layer. Rows whose path is a module are recorded by forward hooks; rows
    of function calls (``"scope:node"`` paths, e.g. skip sums) by running the model's
    ``torch.fx`` graph and keeping the value of the row's ``node``."""
    named = dict(model.named_modules())
    hooked = all(str(r.path) in named for r in rows)
    if not hooked:
        missing = sorted({str(r.path) for r in rows if not getattr(r, "node", None)
                          and str(r.path) not in named})
        if missing:
            raise ModelError(f"the report names module paths the model does not have: "
                             f"{missing}; pass the report made for this model",
                             [(p, "no such module") for p in missing])
        return _record_graph(torch, model, inputs, {str(r.node) for r in rows})
    layout = {"axis": 1}
    seen: dict[str, list] = {str(r.path): [] for r in rows}
    handles = []

    def track(module, args, out):
        layout["axis"] = 1 if type(module).__name__ in _CONV else -1

    def keep(path):
        def hook(module, args, out):
            seen[path].append(_output(torch, out, path, layout["axis"]))
        return hook

    try:
        for module in named.values():
            if isinstance(module, torch.nn.Linear) or type(module).__name__ in _CONV:
                handles.append(module.register_forward_hook(track))
        for path in seen:
            handles.append(named[path].register_forward_hook(keep(path)))
        _run(torch, model, lambda: model(inputs))
    finally:
        for handle in handles:
            handle.remove()
    return {"path": seen}


def _record_graph(torch, model, inputs, nodes):
    from ._api import node_values
    from ._trace import graph_module

    # The graph predict() and shape() read, so that the rows' node names are its names.
    graph = graph_module(model, inputs[:1])
    names = {n.name for n in graph.graph.nodes}
    missing = sorted(nodes - names)
    if missing:
        raise ModelError(f"the report names graph nodes the model does not have: "
                         f"{missing}; pass the report made for this model",
                         [(n, "no such node") for n in missing])
    values = {}
    _run(torch, model, lambda: values.update(node_values(graph.eval(), inputs)))
    seen: dict[str, list] = {n: [] for n in nodes}
    axis = 1
    for node in graph.graph.nodes:      # execution order: the last dense or conv layer
        target = (type(graph.get_submodule(node.target)).__name__
                  if node.op == "call_module" else getattr(node.target, "__name__", ""))
        if target in _CONV:
            axis = 1
        elif target in ("Linear", "linear"):
            axis = -1
        if node.name in seen:   # a node that gives no tensor is refused by _output
            seen[node.name].append(_output(torch, values.get(node.name), node.name, axis))
    return {"node": seen}


def _output(torch, out, where, axis):
    if not isinstance(out, torch.Tensor) or out.ndim < 2:
        raise ModelError(f"{where!r} gives {type(out).__name__}, not a batch tensor",
                         [(where, "output is not a batch tensor")])
    return _features(out, axis if out.ndim > 2 else 1)


def _run(torch, model, call):
    """``call()`` in eval mode without gradients; the model's mode restored after."""
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            call()
    finally:
        model.train(training)


def check(model, inputs, *, report=None, weights: str = "shaped", pair=(0, 1)) -> Check:
    """Empirical q and c of every activation output and sum of ``model`` beside the theory.

    Runs ``model`` (in eval mode, without gradients; its mode is restored) once on
    ``inputs`` with forward hooks on the modules the prediction names, and measures ``q``
    (mean square per feature and location, averaged over the batch) and ``c`` (cosine
    similarity of the inputs ``pair``), with jackknife standard errors and z-scores as the
    module docstring defines them. A correctly shaped model agrees within a few standard
    errors; a deep network at PyTorch's default initialization does not.

    Args:
        model: a ``torch.nn.Module``; it is not modified.
        inputs: a batch ``(N, ...)`` with ``N >= 2``, as the model takes it.
        report: the report of :func:`kernelshape.torch.shape` (or any object whose
            ``.layers`` rows have ``path``, ``kind``, ``q`` and ``c``); default: the rows of
            :func:`kernelshape.torch.predict` at the batch's ``q0`` and the pair's ``c0``.
            A report with a ``predict(q0, c0)`` method (as :func:`kernelshape.torch.shape`
            returns) is asked for the rows at this batch's ``q0`` and ``c0``.
        weights: for the default prediction: ``"shaped"`` (what DKS/TAT assume:
            q-preserving weights, zero biases; a model that is not in that state is
            flagged) or ``"model"`` (the scales the model's layers hold: the theory's
            finite-width check of the model as it is).
        pair: the two inputs whose cosine similarity is measured.

    Returns:
        A :class:`Check`: ``.rows``, ``.table()``, ``.plot()``, ``.ok(threshold)``,
        ``.worst()``.

    Raises:
        DomainError: inputs not a finite floating batch of >= 2, a bad pair or report.
        ModelError: a row's module path missing from the model, or an output not a tensor.

    Example:
        >>> import torch, kernelshape as ks
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(*[m for _ in range(10) for m in
        ...                               (torch.nn.Linear(256, 256), torch.nn.Tanh())])
        >>> x = torch.randn(8, 256)
        >>> shaped, report = ks.torch.shape(model, x[:1], method="tat", tau=0.3, seed=0)
        >>> ks.torch.check(shaped, x, report=report).ok(), ks.torch.check(model, x).ok()
        (True, False)
    """
    import torch

    if weights not in ("shaped", "model"):
        raise DomainError(f"unknown weights {weights!r}; expected 'shaped' or 'model'")
    if not isinstance(model, torch.nn.Module):
        raise DomainError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = _check_inputs(torch, inputs)
    a, b = _check_pair(pair, inputs.shape[0])
    x = _features(inputs, 1)
    q0, _, c0, _ = _kernels(x, a, b)
    rows = _predicted(model, inputs, report, weights, q0, c0)
    ((by, seen),) = _record(torch, model, inputs, rows).items()
    used: dict[str, int] = {}
    out = []
    q_var = c_var = 0.0
    for row in rows:
        key, path = str(getattr(row, by)), str(row.path)
        calls = seen[key]
        # A graph node runs once; a module may run several times (one row per call), and
        # the model's output row names the module that computed it last.
        k = 0 if by == "node" else len(calls) - 1 if getattr(row, "kind", "") == "output" \
            else used.get(key, 0)
        used[key] = used.get(key, 0) + (by == "path" and getattr(row, "kind", "") != "output")
        if k >= len(calls):
            raise ModelError(f"{path!r} ran {len(calls)} time(s) but the report has "
                             f"more rows for it", [(path, "fewer calls than report rows")])
        q, q_se, c, c_se = _kernels(calls[k], a, b)
        q_pred, c_pred = float(row.q), float(row.c)
        if math.isfinite(q_se) and q > 0:
            q_var += (q_se / q) ** 2
        if math.isfinite(c_se):
            c_var += c_se ** 2
        q_z = _z(math.log(q) - math.log(q_pred) if q > 0 and q_pred > 0 else math.inf,
                 math.sqrt(q_var))
        c_z = _z(c - c_pred, math.sqrt(c_var))
        out.append(CheckRow(path, str(getattr(row, "kind", "")), q_pred, q, q_se, q_z,
                            c_pred, c, c_se, c_z))
    if not out:
        raise ModelError("the prediction has no rows: nothing to check")
    return Check(tuple(out), int(inputs.shape[0]), (a, b), q0, c0)


def _z(diff: float, err: float) -> float:
    if not math.isfinite(diff):
        return math.inf
    if err > 0 and math.isfinite(err):
        return diff / err
    return 0.0 if abs(diff) < 1e-12 else math.copysign(math.inf, diff)
