"""The built-in activations, as functions of their argument, and name suggestions.

Shared by the parser (where every built-in name works as a function in expression text:
``x*softplus(x)``, ``swish(2*x) - 1``) and :func:`kernelshape.activation` (built-ins by
name). Kept apart from both so that imports flow one way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import sympy as sp

__all__ = ["BUILTIN_ACTIVATIONS", "relu", "sigmoid", "softplus", "suggest"]


def relu(u):
    return sp.Max(0, u)


def sigmoid(u):
    return 1 / (1 + sp.exp(-u))


def softplus(u):
    return sp.log(1 + sp.exp(u))


_SELU_LAMBDA = sp.Float("1.0507009873554804934193349852946", 40)
_SELU_ALPHA = sp.Float("1.6732632423543772848170429916717", 40)


def _elu(u, alpha, scale=1):
    return scale * sp.Piecewise((alpha * (sp.exp(u) - 1), u < 0), (u, True))


#: The built-in activations as functions of their argument ``u``:
#: name -> (builder(u, *parameters), {parameter: default, or None when it has none}).
BUILTIN_ACTIVATIONS = {
    "tanh": (sp.tanh, {}),
    "softplus": (softplus, {}),
    "relu": (relu, {}),
    "leaky_relu": (
        lambda u, negative_slope: sp.Piecewise((negative_slope * u, u < 0), (u, True)),
        {"negative_slope": None}),
    "selu": (lambda u: _elu(u, _SELU_ALPHA, _SELU_LAMBDA), {}),
    "elu": (_elu, {"alpha": 1}),
    "swish": (lambda u: u / (1 + sp.exp(-u)), {}),
    "sigmoid": (sigmoid, {}),
    "erf": (sp.erf, {}),
    "bentid": (lambda u: (sp.sqrt(u**2 + 1) - 1) / 2 + u, {}),
    "atan": (sp.atan, {}),
    "asinh": (sp.asinh, {}),
    "square": (lambda u: u**2, {}),
    "softsign": (lambda u: u / (1 + sp.Abs(u)), {}),
    "gelu": (lambda u: u * (1 + sp.tanh(sp.sqrt(2 / sp.pi)
                                        * (u + sp.Rational(44715, 10**6) * u**3))) / 2, {}),
    "gelu_exact": (lambda u: u * (1 + sp.erf(u / sp.sqrt(2))) / 2, {}),
    "mish": (lambda u: u * sp.tanh(softplus(u)), {}),
    "sin": (sp.sin, {}),
    "cos": (sp.cos, {}),
    "gaussian": (lambda u: sp.exp(-u**2 / 2), {}),
    "identity": (lambda u: u, {}),
}


def suggest(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """Known names closest to ``name``, best first, at most three.

    difflib proposes the candidates; they are ranked by edit distance (a swap of two
    neighbouring letters counts as one edit) and only the closest ones are kept, so
    ``tahn`` suggests ``tanh`` and ``tan``, not every name sharing three letters.

    Example:
        >>> suggest("tahn", ["tanh", "sin", "swish", "tan", "atan"])
        ('tanh', 'tan')
    """
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=6, cutoff=0.6)
    if not close:
        return ()
    ranked = sorted(close, key=lambda c: (_edits(name, c), abs(len(c) - len(name))))
    best = _edits(name, ranked[0])
    return tuple(c for c in ranked if _edits(name, c) == best)[:3]


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein plus adjacent swaps)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]
