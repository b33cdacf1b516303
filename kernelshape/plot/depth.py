"""The degeneration picture: C maps of deep networks against depth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DomainError
from ._style import METHOD_COLORS, _depth_colors, _figure, _name, _styled
from ._sweep import _check_depths, network_c_map, sweep
from ._variants import _variants

# -- the degeneration picture -------------------------------------------------------------

@_styled
def degeneration(phi, *, network=None, depths: Sequence[int] | None = None,
                 tuned_depth: int | None = None, methods: Sequence | None = None,
                 slope: bool = True, zeta: float = 1.5, tau: float = 0.3, eta: float = 0.9,
                 sigma_b: float | None = None, points: int = 201):
    """C maps of deep networks at several depths, one panel per method.

    DKS and TAT are solved for ``network`` (their per-layer maps are fixed by it); every
    method is then drawn on the networks of a depth sweep (THEORY.md §1-§4):

    * ``network=mlp(D)`` (or None): chains ``mlp(L)`` for ``L`` in ``depths`` (default
      :data:`DEPTHS` and ``D``); ``C_f = C o ... o C`` at the q each layer sees.
    * ``network=resnet(D, w)``: the ResNets of every depth in ``RESNET_CONFIGS`` (or those
      in ``depths``) at the same shortcut weight.
    * ``network=`` a callable ``depth -> Network``: the networks it builds; the transforms
      are solved for ``network(tuned_depth)`` (default: the largest depth).
    * any other Network: that network alone (``depths`` must be left out).

    The figure says which network the transforms were tuned for; its depth is drawn thicker.
    Deeper networks than the tuned one exceed the DKS slope bound (``zeta^(L/D)`` for
    MLPs), which is why the slope row has one y-axis per panel. With ``slope`` a second
    row shows ``C_f'(c)`` (chain rule). Untransformed: fan-in weights ``sigma_w = 1``, no
    bias, inputs at q = 1; EOC (chains only): ``sigma_w`` on the edge of chaos for
    ``sigma_b`` (default ``sigma_b^2 = 0.05``, or 0 when the activation has no edge of
    chaos with biases, like ReLU), inputs at ``q*``.

    Args:
        phi: the activation.
        network: the network DKS/TAT are solved for (e.g. ``mlp(100)``), or a callable
            ``depth -> Network``.
        depths: the depths ``L`` drawn (None: see above).
        tuned_depth: for a callable ``network``, the depth the transforms are solved for.
        methods: names from :data:`METHODS` or solved Transform objects; None for all
            of them (the edge of chaos only where the activation has one and the network
            is a chain; DKS for plain ReLU only when asked for by name).
        slope: add the row of ``C_f'(c)``.
        zeta, tau, eta: DKS and TAT targets (TAT of ReLU uses leaky ReLU with ``eta``).
        sigma_b: bias scale of the EOC initialization (None: see above).
        points: number of c values in [-1, 1].

    Returns:
        The Figure (``2 x len(methods)`` axes with ``slope``, else ``1 x len(methods)``).

    Raises:
        DomainError: ``depths`` for a network with no depth family, ``"eoc"`` on a network
            that is not a chain, unknown method, ``tuned_depth`` for a fixed network.

    Example:
        >>> from kernelshape import activation
        >>> fig = degeneration(activation("relu"), methods=["untransformed"], depths=[1, 10])
        >>> len(fig.axes[0].get_lines())   # two depths and the identity
        3
    """
    plan = sweep(network, depths, tuned_depth)
    variants = _variants(phi, plan.tuned, methods, zeta=zeta, tau=tau, eta=eta,
                         sigma_b=sigma_b, chain=plan.chain)
    c = np.linspace(-1.0, 1.0, points)
    fig, axes = _figure(2 if slope else 1, len(variants), sharex=True, height=2.9)
    colors = _depth_colors(len(plan.depths))
    for j, var in enumerate(variants):
        curves = _curves(var, plan, c)
        ax = axes[0, j]
        ax.plot(c, c, ls="--", color="0.55", lw=1.0, label="identity")
        tuned = plan.tuned is not None and var.key not in ("untransformed", "eoc")
        for d, col, (value, slope_c) in zip(plan.depths, colors, curves):
            lw = 2.6 if tuned and d == plan.tuned_depth else None
            ax.plot(c, value, color=col, lw=lw, label=f"L = {d}")
            if slope:
                axes[1, j].plot(c, slope_c, color=col, lw=lw, label=f"L = {d}")
        ax.set_title(var.label, color=var.color)
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1.05, 1.05)
        if j:
            ax.tick_params(labelleft=False)
        if slope:
            axes[1, j].axhline(1.0, ls="--", color="0.55", lw=1.0, label="slope 1")
            axes[1, j].set_xlabel("input cosine similarity $c$")
            axes[1, j].set_ylim(bottom=0)
        else:
            ax.set_xlabel("input cosine similarity $c$")
    axes[0, 0].set_ylabel("output $c$ = $C_f(c)$")
    if slope:
        axes[1, 0].set_ylabel("slope $C_f'(c)$")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="depth")
    fig.suptitle(_title(phi, plan, variants))
    return fig


def _curves(var, plan, c):
    """``(C_f(c), C_f'(c))`` of ``var`` on each network of the sweep."""
    if plan.chain:
        _, cs, ds = var.chain(c, max(plan.depths))
        return [(cs[:, d], ds[:, d]) for d in plan.depths]
    if var.sigma_w != 1.0 or var.sigma_b != 0.0:
        raise DomainError(f"{var.label} needs weight and bias scales, drawn for chains only")
    return [network_c_map(var.act, net, c, var.q0) for net in plan.networks]


def _title(phi, plan, variants):
    tuned = any(v.key in ("dks", "tat") for v in variants) and plan.tuned is not None
    if plan.networks is not None and len(plan.networks) == 1:
        head = f"C map of a {_name(phi)} network: {_short(plan.networks[0])}"
        return head + ("\n(DKS / TAT solved for this network)" if tuned else "")
    head = f"C map of a deep {_name(phi)} network versus depth"
    if tuned:
        head += (f"\nDKS / TAT tuned for {_short(plan.tuned)} (thick line); deeper networks "
                 "exceed their targets")
    return head


def _short(net, limit=70):
    text = repr(net)
    return text if len(text) <= limit else f"{text[:limit - 3]}... ({net.n_nonlinear} layers)"


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
    if not sweep(network, None, None).chain:
        raise DomainError(f"c_vs_depth draws chains mlp(L) for L = 1..max_depth and solves "
                          f"the transforms for an mlp; got {network!r} (use degeneration(), "
                          "which draws any network or family)")
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


