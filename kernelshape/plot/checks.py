"""Checks and experiments: predicted vs empirical kernels, training curves, transformed activations."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..empirical import KernelComparison
from ..errors import DomainError
from ._style import METHOD_COLORS, OKABE_ITO, _figure, _name, _styled
from .maps import _as_list

# -- checks and experiments ---------------------------------------------------------------

@_styled
def predicted_vs_empirical(results, *, every: int | None = None):
    """Predicted kernel maps against sampled finite-width networks, per layer.

    One column per :class:`~kernelshape.empirical.KernelComparison`: top the cosine
    similarity ``c_l`` of each input pair, bottom ``q_l``; lines are the maps' predictions,
    markers the empirical mean over seeds with ``+-2`` standard errors.

    Args:
        results: a KernelComparison or a sequence of them.
        every: draw every ``every``-th layer's marker (default: about 12 per curve).

    Example:
        >>> from kernelshape import activation
        >>> from kernelshape.empirical import compare
        >>> from kernelshape.networks import mlp
        >>> r = compare(activation("relu"), network=mlp(4), width=128, seeds=3,
        ...             sigma_w=2 ** 0.5)
        >>> len(predicted_vs_empirical(r).axes)
        2
    """
    from matplotlib.lines import Line2D

    results = _as_list(results)
    if not results or not all(isinstance(r, KernelComparison) for r in results):
        raise DomainError("expected one or more KernelComparison results (from "
                          f"kernelshape.empirical.compare), got {results!r}")
    fig, axes = _figure(2, len(results), sharex="col", sharey="row", height=2.6, width=3.2)
    for j, r in enumerate(results):
        step = every or max(1, len(r.layers) // 12)
        sel = r.layers[::step]
        for i, c0 in enumerate(r.c0):
            col = OKABE_ITO[[5, 6, 3, 1, 7, 2][i % 6]]
            axes[0, j].plot(r.layers, r.c_predicted[i], color=col, label=f"$c_0$ = {c0:g}")
            axes[0, j].errorbar(sel, r.c_empirical[i, ::step], yerr=2 * r.c_stderr[i, ::step],
                                fmt="o", ms=3.5, color=col, mfc="white", capsize=2, lw=0.9)
        axes[1, j].plot(r.layers, r.q_predicted, color="k")
        axes[1, j].errorbar(sel, r.q_empirical[::step], yerr=2 * r.q_stderr[::step], fmt="o",
                            ms=3.5, color="k", mfc="white", capsize=2, lw=0.9)
        axes[0, j].set_title(r.label, fontsize=9)
        axes[1, j].set_xlabel("layer $l$")
    axes[0, 0].set_ylabel("cosine similarity $c_l$")
    axes[1, 0].set_ylabel("$q_l$")
    axes[1, 0].set_ylim(bottom=0)
    r = results[0]
    style = [Line2D([], [], color="0.3", label="predicted (maps)"),
             Line2D([], [], color="0.3", marker="o", mfc="white", ls="none",
                    label=f"empirical ± 2 s.e. (width {r.width}, {r.seeds} seeds)")]
    handles, _ = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles=handles + style, loc="outside lower center", ncols=len(handles) + 2)
    fig.suptitle("Kernel maps versus finite-width networks")
    return fig


@_styled
def training_curves(runs: Mapping[str, Mapping[str, Sequence[float]]], *,
                    colors: Mapping[str, str] | None = None, title: str | None = None):
    """Training loss and test accuracy versus optimisation steps, one line per run.

    Args:
        runs: ``{label: {"step": [...], "train_loss": [...], "test_step": [...],
            "test_accuracy": [...]}}`` (``test_step`` defaults to ``step``).
        colors: optional colour per label (default: Okabe-Ito in order).
        title: figure title.

    Example:
        >>> fig = training_curves({"a": {"step": [0, 1], "train_loss": [2.3, 1.0],
        ...                              "test_accuracy": [0.1, 0.5]}})
        >>> fig.axes[0].get_yscale()
        'log'
    """
    if not isinstance(runs, Mapping) or not runs:
        raise DomainError(f"runs must be a non-empty mapping label -> curves, got {runs!r}")
    fig, axes = _figure(1, 2, width=4.2, height=3.2)
    palette = [OKABE_ITO[i] for i in (6, 1, 5, 3, 7, 2, 0, 4)]
    for k, (label, run) in enumerate(runs.items()):
        missing = {"step", "train_loss", "test_accuracy"} - set(run)
        if missing:
            raise DomainError(f"run {label!r} lacks {sorted(missing)}; it has {sorted(run)}")
        col = (colors or {}).get(label, palette[k % len(palette)])
        axes[0, 0].plot(run["step"], run["train_loss"], color=col, label=label)
        axes[0, 1].plot(run.get("test_step", run["step"]), run["test_accuracy"], color=col,
                        label=label, marker="o", ms=2.5)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel("training loss (cross-entropy)")
    axes[0, 1].set_ylabel("test accuracy")
    axes[0, 1].set_ylim(0, 1.0)
    for ax in axes[0]:
        ax.set_xlabel("optimisation step")
    axes[0, 1].legend(loc="lower right")
    if title:
        fig.suptitle(title)
    return fig


@_styled
def transformed_activations(transforms, *, x_range: tuple[float, float] = (-4.0, 4.0),
                            ncols: int = 4):
    """Each transformed activation ``phi_hat`` next to its original ``phi`` (THEORY.md §4-§5).

    ``phi_hat(x) = output_scale * (phi(input_scale * x + input_shift) + output_shift)``;
    the parameters are printed in each panel. The x range covers the pre-activations of a
    q = 1 layer (standard normal).

    Args:
        transforms: a Transform or a sequence of them.
        x_range: plotted interval.
        ncols: panels per row.

    Example:
        >>> from kernelshape import activation
        >>> from kernelshape.networks import mlp
        >>> from kernelshape.transforms import dks
        >>> fig = transformed_activations(dks(activation("tanh"), network=mlp(10)))
        >>> len(fig.axes[0].get_lines())
        2
    """
    items = _as_list(transforms)
    if not items or not all(hasattr(t, "activation") and hasattr(t, "base") for t in items):
        raise DomainError(f"expected one or more Transform objects, got {transforms!r}")
    ncols = max(1, min(int(ncols), len(items)))
    nrows = math.ceil(len(items) / ncols)
    fig, axes = _figure(nrows, ncols, width=2.9, height=2.6)
    x = np.linspace(*x_range, 400)
    symbols = {"input_scale": "\\alpha", "input_shift": "\\beta", "output_shift": "\\delta",
               "output_scale": "\\gamma", "negative_slope": "a"}
    for ax, t in zip(axes.ravel(), items):
        base = t.base
        if getattr(base, "free", ()):
            base = base.fix(**{k: float(t.params[k]) for k in base.free if k in t.params})
        key = t.method if t.method in METHOD_COLORS else "other"
        ax.plot(x, base(x), color="0.45", ls="--", lw=1.3, label=f"{_name(t.base)}")
        ax.plot(x, t.activation(x), color=METHOD_COLORS[key], label=f"{t.method.upper()}")
        text = "\n".join(f"${symbols.get(k, k)}$ = {float(v):.4g}" for k, v in t.params.items())
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=7,
                family="monospace")
        ax.set_title(f"{t.method.upper()} {_name(t.base)}")
        ax.set_xlabel("$x$")
        ax.legend(loc="lower right")
    for ax in axes.ravel()[len(items):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("$\\phi(x)$")
    fig.suptitle("Transformed activations (solid) next to the originals (dashed)")
    return fig

