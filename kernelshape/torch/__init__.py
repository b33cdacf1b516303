"""PyTorch models read and shaped: the model is the network description.

* :func:`trace` — a model's kernelshape :class:`~kernelshape.Network` through ``torch.fx``,
  or one :class:`~kernelshape.ModelError` listing every part that does not fit, by module
  path (``err.problems``: ``(path, reason)`` pairs);
* :func:`predict` — predicted ``q`` and ``c`` after every activation, sum and output, for
  two inputs at second moment ``q0`` and correlation ``c0`` (the scalar path);
* :func:`capture` — the model's intermediate tensors by node name, as the rows name them;
* :func:`shape` — a DKS/TAT-shaped copy (transformed activations, SUO/Delta-orthogonal
  weights, zero biases, normalized skip sums, optional PLN) and a :class:`Report`
  (``network``, ``transforms``, ``layers``, ``summary()``, ``predict(q0, c0)``);
* :func:`check` — empirical per-layer ``q`` and ``c`` of a model on a batch (forward hooks)
  beside the theory's prediction, with jackknife errors and z-scores: a :class:`Check`
  (``table()``, ``plot()``, ``ok()``, ``worst()``), the finite-width check for real models.

**Stable row format** (for :func:`predict`, ``Report.layers`` and tools built on them such
as a finite-width check): each row is a :class:`Row` with fields ``path`` (module path, or
``"scope:node"`` for a function call inside module ``scope``), ``kind`` (``"activation"``,
``"sum"``, ``"cat"``, ``"output"``), ``q``, ``c``, ``node`` (the ``torch.fx`` node name in
``torch.fx.symbolic_trace`` of the model the rows describe; in a shaped model every
activation is a module, so forward hooks on ``path`` see it; ``capture(model, x)[node]``
is the tensor of any row) and ``detail``. The empirical counterparts: ``q = mean(h ** 2)`` over features and positions, ``c = <h, h'> / (|h| |h'|)``
for the outputs ``h, h'`` of a pair of inputs.

What is read (one rule per module class, function and tensor method, in :mod:`._rules`):
``nn.Linear``, ``nn.Conv1d/2d/3d``, activation modules and functions (tanh, sigmoid, relu,
leaky_relu with its slope, elu with alpha, selu, gelu exact and tanh, silu, mish, softplus
with beta, softsign, erf), average and adaptive average pooling, flatten / view / reshape,
mean over spatial axes, layer norm, sums and constant weights (``w1*a + w2*b`` with
``w1^2 + w2^2 = 1`` is a normalized sum), ``torch.cat`` along channels, identity, dropout.
Refused, by path: batch norm, max pooling, unnormalized sums, sums of correlated terms,
products of tensors (gating, attention), data-dependent control flow, unknown modules,
functions and methods.

Example:
    >>> import torch, kernelshape as ks
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8),
    ...                             torch.nn.ReLU(), torch.nn.MaxPool1d(1))
    >>> try:
    ...     ks.torch.trace(model, torch.zeros(2, 4))
    ... except ks.ModelError as err:
    ...     print([path for path, _ in err.problems])
    ['1', '3']
"""

from __future__ import annotations

from ._api import METHODS, TARGETS, Report, capture, predict, shape, trace
from ._check import Check, CheckRow, check
from ._derive import WEIGHTS, Row
from ._vocab import ACTIVATIONS, PLN, TransformedActivation

__all__ = ["ACTIVATIONS", "METHODS", "PLN", "TARGETS", "WEIGHTS", "Check", "CheckRow",
           "Report", "Row", "TransformedActivation", "capture", "check", "predict", "shape",
           "trace"]
