"""Finite-width check: sample wide random networks and compare their q and c with the maps.

The kernel maps (THEORY.md §1-§3) are exact in the infinite-width limit. At width ``n`` the
empirical values ``q = ||h||^2 / n`` and ``c = <h_a, h_b> / (||h_a|| ||h_b||)`` of a pair of
inputs fluctuate around the predicted ones by roughly ``1 / sqrt(n)`` (DKS paper, §5 and
Appendix on kernel approximation error). :func:`compare` propagates pairs of inputs with
prescribed ``q`` and ``c`` through freshly sampled networks, several seeds, and reports, per
layer, the empirical mean with its standard error next to the prediction.

Networks are the descriptions of :mod:`kernelshape.networks` (``mlp``, ``resnet`` or any tree
of the vocabulary). Sampled, a nonlinear layer is ``h -> W phi(h) + b`` (the activation, then
a fresh dense layer), a linear layer ``h -> W h``, a normalized sum (residual block)
``sum_i w_i branch_i(h)`` (a branch that is a bare linear layer is the identity shortcut).
Weights are scaled uniform orthogonal (SUO; Haar-orthogonal times
``sigma_w``) or Gaussian fan-in (variance ``sigma_w^2 / n``); biases ``b ~ N(0, sigma_b^2)``,
zero by default; every layer has width ``n``.

Sampling shortcut (exact, not an approximation): every layer has fresh weights independent of
everything before it, and only ``W X`` is ever needed for the ``k`` inputs ``X`` (``n x k``)
that flow through it. With ``X = Q R`` (``R^T R = X^T X``), ``W X = (W Q) R`` where ``W Q`` is, in
distribution, a Haar-random ``n x k`` orthonormal frame (orthogonal ``W``) or an ``n x k``
matrix of i.i.d. ``N(0, sigma_w^2 / n)`` entries (Gaussian ``W``). Sampling that frame costs
``O(n k^2)`` instead of ``O(n^3)`` for a full orthogonal matrix, so widths of several
thousand cost milliseconds per layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from .errors import DomainError, NetworkError, UnsupportedError

__all__ = ["INITS", "KernelComparison", "compare", "predict"]

#: Weight distributions :func:`compare` can sample.
INITS = ("orthogonal", "gaussian")


@dataclasses.dataclass(frozen=True)
class KernelComparison:
    """Empirical q and c per layer of sampled networks next to the predicted maps.

    Index ``l`` of every per-layer array is the output of the ``l``-th nonlinear layer (or
    residual block); index 0 is the input.

    Attributes:
        label: what was sampled (activation and network), for legends.
        layers: ``0, 1, ..., depth``.
        c0: the input cosine similarities, one pair of inputs per value.
        q_predicted, q_empirical, q_stderr: shape ``(depth + 1,)``; the empirical q is the
            mean over every input of a network, then over seeds; the standard error is over
            seeds.
        c_predicted, c_empirical, c_stderr: shape ``(len(c0), depth + 1)``.
        width: layer width ``n``.
        seeds: number of independently sampled networks.
        init: ``"orthogonal"`` or ``"gaussian"``.
    """

    label: str
    layers: np.ndarray
    c0: tuple[float, ...]
    q_predicted: np.ndarray
    q_empirical: np.ndarray
    q_stderr: np.ndarray
    c_predicted: np.ndarray
    c_empirical: np.ndarray
    c_stderr: np.ndarray
    width: int
    seeds: int
    init: str

    @property
    def q_z(self) -> np.ndarray:
        """``(empirical - predicted) / stderr`` for q (inf where stderr is 0 and they differ)."""
        return _z(self.q_empirical, self.q_predicted, self.q_stderr)

    @property
    def c_z(self) -> np.ndarray:
        """``(empirical - predicted) / stderr`` for c, shape ``(len(c0), depth + 1)``."""
        return _z(self.c_empirical, self.c_predicted, self.c_stderr)

    @property
    def max_abs_z(self) -> float:
        """Largest ``|z|`` over every layer, pair and both of q and c (layers >= 1)."""
        return float(max(np.max(np.abs(self.q_z[1:])), np.max(np.abs(self.c_z[:, 1:]))))

    def __repr__(self):
        return (f"KernelComparison({self.label}; width {self.width}, {self.seeds} seeds, "
                f"{self.init} init; max |z| = {self.max_abs_z:.2f})")


def _z(emp, pred, err):
    diff = np.asarray(emp) - np.asarray(pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(err > 0, diff / np.where(err > 0, err, 1.0), np.where(diff == 0, 0.0, np.inf))
    return z


# -- validation ---------------------------------------------------------------------------

def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise DomainError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_activation(phi):
    act = getattr(phi, "activation", phi)   # a Transform carries its transformed activation
    if not (callable(act) and hasattr(act, "q_map") and hasattr(act, "c_map")):
        raise DomainError(f"expected an Activation or a Transform, got {type(phi).__name__}")
    return act


def _check_c(c):
    cs = np.atleast_1d(np.asarray(c, dtype=np.float64))
    if cs.ndim != 1 or cs.size == 0 or np.any(~np.isfinite(cs)) or np.any(np.abs(cs) > 1):
        raise DomainError(f"c must be one or more numbers in [-1, 1], got {c!r}")
    return tuple(float(v) for v in cs)


def _check_network(network):
    from .networks import Network, linear, nonlinear
    if not isinstance(network, Network):
        raise NetworkError(f"expected a network description (mlp, resnet, chain, ...), got "
                           f"{type(network).__name__}")

    leaves, seen, stack = (nonlinear(), linear()), set(), [network]
    while stack:                      # explicit stack: any nesting depth
        node = stack.pop()
        if node in leaves or id(node) in seen:
            continue
        seen.add(id(node))
        children = getattr(node, "layers", None) or getattr(node, "branches", None)
        if children is None:
            raise UnsupportedError(
                f"cannot sample {node!r}: finite-width sampling needs a network built from "
                "the vocabulary (nonlinear, linear, chain, normalized_sum, residual, parallel, "
                "mlp, resnet); a dks-style subnet_max callable has no layer structure")
        stack.extend(children)
    return network


def _stages(network):
    """Where q and c are recorded: after each top-level layer of a chain (layers of an MLP,
    blocks of a ResNet), else only at the output."""
    return tuple(getattr(network, "layers", None) or (network,))


# -- prediction ---------------------------------------------------------------------------

class _PredictRules:
    """Infinite-width maps of a layer ``h -> W phi(h) + b`` and of normalized sums."""

    def __init__(self, act, sigma_w, sigma_b):
        self.act, self.w2, self.b2 = act, sigma_w**2, sigma_b**2

    def layer(self, state):
        q, c = state
        big_q = float(self.act.q_map(q))
        q_new = self.w2 * big_q + self.b2
        c_new = (self.w2 * big_q * np.asarray(self.act.c_map(c, q=q), dtype=np.float64)
                 + self.b2) / q_new
        return q_new, np.clip(c_new, -1.0, 1.0)

    def combine(self, node, outs):
        q_new = sum(s * q_i for s, (q_i, _) in zip(node.squares, outs))
        c_new = sum(s * q_i * c_i for s, (q_i, c_i) in zip(node.squares, outs)) / q_new
        return q_new, c_new


def _predict_node(node, act, q, c, sigma_w, sigma_b):
    """Infinite-width maps of one node (see :func:`predict`); any nesting depth."""
    from .networks._walk import _evaluate
    return _evaluate((node,), (q, c), _PredictRules(act, sigma_w, sigma_b))[0]


def predict(phi, *, network, q: float = 1.0, c=(0.0, 0.5, 0.9), sigma_w: float = 1.0,
            sigma_b: float = 0.0):
    """Predicted q and c after every top-level layer of ``network``, infinite width.

    A nonlinear layer is ``h -> W phi(h) + b`` (THEORY.md §3)::

        q' = sigma_w^2 Q(q) + sigma_b^2
        c' = (sigma_w^2 Q(q) C(c; q) + sigma_b^2) / q'

    linear layers keep q and c, and normalized sums (residual blocks) combine their
    branches as ``q' = sum_i w_i^2 q_i``, ``c' = sum_i w_i^2 q_i c_i / q'`` (THEORY.md §2).
    With ``sigma_w = 1, sigma_b = 0`` this is ``network.q_map`` / ``network.c_map``.

    Args:
        phi: an Activation or a Transform (its transformed activation is used).
        network: a network description (``mlp``, ``resnet`` or the vocabulary).
        q: the common q of the inputs.
        c: input cosine similarities.
        sigma_w, sigma_b: weight and bias scales of the layers after each activation
            (1, 0 for DKS/TAT networks; the edge-of-chaos values for EOC networks).

    Returns:
        ``(q, c)``: arrays of shape ``(n + 1,)`` and ``(len(c), n + 1)`` with ``n`` the
        number of top-level layers (blocks), as accurate as the activation's float64 maps.

    Example:
        >>> from kernelshape import activation
        >>> from kernelshape.networks import mlp
        >>> q, c = predict(activation("relu"), network=mlp(2), c=0.0, sigma_w=2 ** 0.5)
        >>> round(float(c[0, 1]) * math.pi, 12)   # ReLU: C(0) = 1/pi
        1.0
    """
    act = _check_activation(phi)
    cs = np.asarray(_check_c(c))
    network = _check_network(network)
    if not (isinstance(q, (int, float, np.floating)) and q > 0):
        raise DomainError(f"q must be a number > 0, got {q!r}")
    qs, c_out = [float(q)], [cs]
    for stage in _stages(network):
        q_new, c_new = _predict_node(stage, act, qs[-1], c_out[-1], float(sigma_w),
                                     float(sigma_b))
        qs.append(float(q_new))
        c_out.append(np.asarray(c_new, dtype=np.float64))
    return np.array(qs), np.stack(c_out, axis=1)


# -- sampling -----------------------------------------------------------------------------

def _frame(rng, n, k, init):
    """``W Q`` for an orthonormal ``n x k`` Q: Haar frame, or i.i.d. N(0, 1/n) entries."""
    g = rng.standard_normal((n, k))
    if init == "gaussian":
        return g / math.sqrt(n)
    # Q of the QR decomposition with a positive diagonal R (the Haar frame), through the
    # Cholesky factor of the k x k Gram matrix: G = Q R with R = chol(G^T G)^T.
    chol = np.linalg.cholesky(g.T @ g)
    return np.linalg.solve(chol, g.T).T


def _dense(rng, x, init, sigma_w, sigma_b):
    """``W x + b`` for fresh weights (see the module docstring for why this is exact)."""
    n, k = x.shape
    # Any R with R^T R = X^T X will do (the frame's law is invariant under k x k rotations);
    # the symmetric square root also covers a singular Gram matrix (identical inputs).
    vals, vecs = np.linalg.eigh(x.T @ x)
    r = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    out = sigma_w * (_frame(rng, n, k, init) @ r)
    if sigma_b:
        out += sigma_b * rng.standard_normal((n, 1))
    return out


def _inputs(rng, n, q, cs):
    """Pairs ``(x_a, x_b)`` with ``||x||^2 / n = q`` and cosine exactly ``c``; shape (n, 2k)."""
    u = _frame(rng, n, 2 * len(cs), "orthogonal")
    scale = math.sqrt(q * n)
    cols = []
    for i, c in enumerate(cs):
        a, b = u[:, 2 * i], u[:, 2 * i + 1]
        cols += [scale * a, scale * (c * a + math.sqrt(max(0.0, 1 - c * c)) * b)]
    return np.stack(cols, axis=1)


def _stats(h, n_pairs):
    q = np.mean(np.sum(h * h, axis=0)) / h.shape[0]
    a, b = h[:, 0::2], h[:, 1::2]
    norms = np.sqrt(np.sum(a * a, axis=0) * np.sum(b * b, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(norms > 0, np.sum(a * b, axis=0) / np.where(norms > 0, norms, 1.0), 1.0)
    return q, c[:n_pairs]


def _sample_node(node, act, h, rng, init, sigma_w, sigma_b):
    """Push the batch ``h`` (n x k) through one node with freshly sampled weights.

    Depth-first with an explicit stack (any nesting depth), branches in order, so the
    random draws come in the same order on every run.
    """
    from .networks import linear, nonlinear
    lin, nonlin = linear(), nonlinear()
    inputs, sums = [], []
    stack = [("node", node)]
    while stack:
        op, arg = stack.pop()
        if op == "node":
            if arg == nonlin:
                h = _dense(rng, act(h), init, sigma_w, sigma_b)
            elif arg == lin:
                h = _dense(rng, h, init, 1.0, 0.0)
            elif getattr(arg, "layers", None) is not None:
                stack.extend(("node", layer) for layer in reversed(arg.layers))
            else:
                ops = [("open", None)]
                for s, branch in zip(arg.squares, arg.branches):
                    ops.append(("restore", None))
                    # A bare linear branch of a sum is a skip connection: the identity.
                    if branch != lin:
                        ops.append(("node", branch))
                    ops.append(("add", math.sqrt(s)))
                ops.append(("close", None))
                stack.extend(reversed(ops))
        elif op == "open":
            inputs.append(h)
            sums.append(0.0)
        elif op == "restore":
            h = inputs[-1]
        elif op == "add":
            sums[-1] = sums[-1] + arg * h
        else:
            inputs.pop()
            h = sums.pop()
    return h


def compare(phi, *, network, width: int = 1024, q: float = 1.0,
            c: float | Sequence[float] = (0.0, 0.5, 0.9), seeds: int = 8,
            init: str = "orthogonal", sigma_w: float = 1.0, sigma_b: float = 0.0,
            seed: int = 0, label: str | None = None) -> KernelComparison:
    """Sample wide random networks and compare empirical q and c per layer with the maps.

    For each seed one network is sampled (see the module docs for what a layer is) and pairs
    of inputs with ``||x||^2 / n = q`` and cosine ``c`` are propagated; q and c are
    measured after every top-level layer (the layers of an MLP, the blocks of a ResNet).
    Predictions come from :func:`predict`. Fluctuations scale like ``1 / sqrt(width)``; the
    standard errors are over seeds, so ``(empirical - predicted) / stderr`` is a z-score
    when the prediction is right, up to the ``O(depth / width)`` finite-width bias.

    Args:
        phi: an Activation or a Transform (its transformed activation is used).
        network: a network description (``mlp``, ``resnet`` or the vocabulary).
        width: layer width ``n`` (input dimension too).
        q: the q of every input.
        c: input cosine similarities, one pair of inputs per value.
        seeds: independently sampled networks (>= 2 for standard errors).
        init: ``"orthogonal"`` (SUO) or ``"gaussian"`` (fan-in).
        sigma_w, sigma_b: scales of the dense layer after each activation (EOC networks;
            1 and 0 for DKS/TAT).
        seed: seed of the NumPy generator (results are reproducible).
        label: legend text (default: the activation and network).

    Returns:
        A :class:`KernelComparison`.

    Raises:
        DomainError: invalid sizes, q, c or init.
        NetworkError, UnsupportedError: not a network built from the vocabulary.

    Example:
        >>> from kernelshape import activation
        >>> from kernelshape.networks import mlp
        >>> r = compare(activation("relu"), network=mlp(3), width=256, seeds=4,
        ...             sigma_w=2 ** 0.5)
        >>> r.c_empirical.shape
        (3, 4)
    """
    act = _check_activation(phi)
    cs = _check_c(c)
    width = _check_int("width", width, 2 * len(cs))
    seeds = _check_int("seeds", seeds, 2)
    if init not in INITS:
        raise DomainError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    q_pred, c_pred = predict(act, network=network, q=q, c=cs, sigma_w=sigma_w,
                             sigma_b=sigma_b)
    stages = _stages(network)
    rng = np.random.default_rng(seed)
    q_all = np.empty((seeds, len(stages) + 1))
    c_all = np.empty((seeds, len(cs), len(stages) + 1))
    for s in range(seeds):
        h = _inputs(rng, width, q, cs)
        q_all[s, 0], c_all[s, :, 0] = _stats(h, len(cs))
        for i, stage in enumerate(stages, start=1):
            h = _sample_node(stage, act, h, rng, init, float(sigma_w), float(sigma_b))
            q_all[s, i], c_all[s, :, i] = _stats(h, len(cs))
    root = math.sqrt(seeds)
    if label is None:
        name = (f"{phi.method.upper()} {phi.base.name or phi.base.expr}" if act is not phi
                else act.name or act.expr)
        label = f"{name}, {network!r}"
    return KernelComparison(
        label=label, layers=np.arange(len(stages) + 1), c0=cs,
        q_predicted=q_pred, q_empirical=q_all.mean(axis=0),
        q_stderr=q_all.std(axis=0, ddof=1) / root,
        c_predicted=c_pred, c_empirical=c_all.mean(axis=0),
        c_stderr=c_all.std(axis=0, ddof=1) / root,
        width=width, seeds=seeds, init=init)
