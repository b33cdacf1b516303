"""The degeneration picture: C maps of deep networks against depth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._style import DEPTHS, METHOD_COLORS, _depth_colors, _figure, _name, _styled
from ._variants import _check_depths, _variants

# -- the degeneration picture -------------------------------------------------------------

@_styled
def degeneration(phi, *, network=None, depths: Sequence[int] = DEPTHS,
                 methods: Sequence | None = None, slope: bool = True, zeta: float = 1.5,
                 tau: float = 0.3, eta: float = 0.9, sigma_b: float | None = None,
                 points: int = 201):
    """C maps of deep networks at several depths, one panel per method, shared axes.

    For each method the per-layer kernel is iterated (THEORY.md §1-§3):
    ``C_f = C o ... o C`` (``L`` times) at the q each layer sees. DKS and TAT are solved for
    ``network`` (their per-layer maps are fixed by it), and the curves show the first ``L``
    layers of a chain built from that layer. With ``slope`` a second row shows ``C_f'(c)``
    (chain rule). Untransformed: fan-in weights ``sigma_w = 1``, no bias, inputs at q = 1;
    EOC: ``sigma_w`` on the edge of chaos for ``sigma_b`` (default ``sigma_b^2 = 0.05``, or 0
    when the activation has no edge of chaos with biases, like ReLU), inputs at ``q*``.

    Args:
        phi: the activation.
        network: the network DKS/TAT are solved for (e.g. ``mlp(100)``).
        depths: the depths ``L`` drawn.
        methods: names from :data:`METHODS` or solved Transform objects; None for all
            of them (the edge of chaos only where the activation has one).
        slope: add the row of ``C_f'(c)``.
        zeta, tau, eta: DKS and TAT targets (TAT of ReLU uses leaky ReLU with ``eta``).
        sigma_b: bias scale of the EOC initialization (None: see above).
        points: number of c values in [-1, 1].

    Returns:
        The Figure (``2 x len(methods)`` axes with ``slope``, else ``1 x len(methods)``).

    Example:
        >>> from kernelshape import activation
        >>> fig = degeneration(activation("relu"), methods=["untransformed"], depths=[1, 10])
        >>> len(fig.axes[0].get_lines())   # two depths and the identity
        3
    """
    depths = _check_depths(depths)
    variants = _variants(phi, network, methods, zeta=zeta, tau=tau, eta=eta, sigma_b=sigma_b)
    c = np.linspace(-1.0, 1.0, points)
    fig, axes = _figure(2 if slope else 1, len(variants), sharex=True, sharey="row",
                        height=2.9)
    colors = _depth_colors(len(depths))
    for j, var in enumerate(variants):
        out = var.chain(c, max(depths))
        ax = axes[0, j]
        ax.plot(c, c, ls="--", color="0.55", lw=1.0, label="identity")
        for d, col in zip(depths, colors):
            ax.plot(c, out[1][:, d], color=col, label=f"L = {d}")
            if slope:
                axes[1, j].plot(c, out[2][:, d], color=col, label=f"L = {d}")
        ax.set_title(var.label, color=var.color)
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1.05, 1.05)
        if slope:
            axes[1, j].axhline(1.0, ls="--", color="0.55", lw=1.0, label="slope 1")
            axes[1, j].set_xlabel("input cosine similarity $c$")
        else:
            ax.set_xlabel("input cosine similarity $c$")
    axes[0, 0].set_ylabel("output $c$ = $C_f(c)$")
    if slope:
        axes[1, 0].set_ylabel("slope $C_f'(c)$")
        axes[1, 0].set_ylim(bottom=0)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="depth")
    fig.suptitle(f"C map of a deep {_name(phi)} network versus depth")
    return fig


@_styled
def c_vs_depth(phi, *, network=None, max_depth: int = 100, c: float = 0.0,
               methods: Sequence | None = None, zeta: float = 1.5, tau: float = 0.3,
               eta: float = 0.9, sigma_b: float | None = None):
    """The degeneration in two numbers per depth: ``C_f(c)`` (default ``c = 0``) and ``C_f'(1)``.

    A degenerate deep network sends ``c = 0`` towards 1 (every pair of inputs looks alike)
    and its slope at ``c = 1`` away from 1; DKS pins ``C_f(0) = 0`` and ``C_f'(1) <= zeta``
    for every subnetwork (THEORY.md §4). Same methods and conventions as
    :func:`degeneration`; depth is on a log axis.

    Example:
        >>> from kernelshape import activation
        >>> fig = c_vs_depth(activation("relu"), methods=["untransformed"], max_depth=20)
        >>> [ax.get_xlabel() for ax in fig.axes]
        ['depth $L$', 'depth $L$']
    """
    max_depth = _check_depths([max_depth])[0]
    variants = _variants(phi, network, methods, zeta=zeta, tau=tau, eta=eta, sigma_b=sigma_b)
    fig, axes = _figure(1, 2, width=3.8, height=3.0)
    layers = np.arange(0, max_depth + 1)
    for var in variants:
        _, cs, ds = var.chain(np.array([c, 1.0]), max_depth)
        axes[0, 0].plot(layers[1:], cs[0, 1:], color=var.color, label=var.label)
        axes[0, 1].plot(layers[1:], ds[1, 1:], color=var.color, label=var.label)
    axes[0, 0].set_ylabel(f"$C_f({c:g})$")
    axes[0, 0].set_ylim(min(-0.05, c - 0.05), 1.05)
    axes[0, 1].set_ylabel("$C_f'(1)$")
    axes[0, 1].axhline(zeta, ls=":", color=METHOD_COLORS["dks"], lw=1.0,
                       label=f"DKS bound $\\zeta$={zeta:g}")
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel("depth $L$")
    axes[0, 1].legend(loc="best")
    fig.suptitle(f"{_name(phi)}: C map at $c$ = {c:g} and slope at $c$ = 1 versus depth")
    return fig


