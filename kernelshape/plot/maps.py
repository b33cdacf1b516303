"""One activation's maps: C and Q maps, and the edge-of-chaos phase diagram."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import DomainError
from ._style import OKABE_ITO, _figure, _name, _styled
from ._variants import _CTable

# -- one activation's maps ----------------------------------------------------------------

def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _act_and_label(item):
    act = getattr(item, "activation", None)
    if act is not None and hasattr(item, "method"):
        return act, f"{item.method.upper()} {_name(item.base)}"
    return item, _name(item)


@_styled
def c_map(phi, *, q: float | Sequence[float] = 1.0, points: int = 201):
    """The C map ``C(c; q)`` and its slope ``C'(c; q)`` on ``[-1, 1]`` (THEORY.md §1).

    Args:
        phi: an Activation or Transform, or a list of them (one colour each).
        q: one q or several (line styles).
        points: number of c values.

    Example:
        >>> from kernelshape import activation
        >>> fig = c_map(activation("relu"))
        >>> fig.axes[1].get_ylabel()
        "slope $C'(c)$"
    """
    items = [_act_and_label(p) for p in _as_list(phi)]
    qs = [float(v) for v in np.atleast_1d(q)]
    styles = ["-", "--", ":", "-."]
    c = np.linspace(-1.0, 1.0, points)
    fig, axes = _figure(1, 2, width=3.6)
    axes[0, 0].plot(c, c, color="0.55", lw=1.0, ls="--", label="identity")
    for i, (act, label) in enumerate(items):
        col = OKABE_ITO[(i + 5) % len(OKABE_ITO)] if len(items) > 1 else OKABE_ITO[5]
        for k, qv in enumerate(qs):
            tag = label + (f", q = {qv:g}" if len(qs) > 1 else "")
            ls = styles[k % len(styles)]
            axes[0, 0].plot(c, act.c_map(c, q=qv), color=col, ls=ls, label=tag)
            axes[0, 1].plot(c, act.c_map(c, q=qv, order=1), color=col, ls=ls, label=tag)
    axes[0, 0].set_ylabel("$C(c)$")
    axes[0, 1].set_ylabel("slope $C'(c)$")
    axes[0, 1].axhline(1.0, color="0.55", lw=1.0, ls="--")
    for ax in axes[0]:
        ax.set_xlabel("input cosine similarity $c$")
        ax.set_xlim(-1, 1)
    axes[0, 0].legend(loc="upper left")
    fig.suptitle("C map and its slope" + (f" at q = {qs[0]:g}" if len(qs) == 1 else ""))
    return fig


@_styled
def q_map(phi, *, sigma_w: float = 1.0, sigma_b: float = 0.0, q_max: float = 3.0,
          starts: Sequence[float] = (0.1, 2.5), depth: int = 30):
    """The layer Q map ``q -> sigma_w^2 Q(q) + sigma_b^2`` and its fixed point (THEORY.md §3).

    Left: the map against the diagonal with cobweb iterations from ``starts``; right: the
    iterates ``q_l`` versus layer ``l`` converging to the fixed point ``q*``.

    Example:
        >>> from kernelshape import activation
        >>> fig = q_map(activation("tanh"), sigma_w=1.3)
        >>> fig.axes[0].get_xlabel()
        'input $q$'
    """
    act, label = _act_and_label(phi)
    if not (q_max > 0 and depth >= 1):
        raise DomainError(f"q_max must be > 0 and depth >= 1, got {q_max!r}, {depth!r}")
    sw2, sb2 = float(sigma_w) ** 2, float(sigma_b) ** 2
    fig, axes = _figure(1, 2, width=3.6)
    qs = np.linspace(q_max * 1e-3, q_max, 200)
    ax = axes[0, 0]
    ax.plot(qs, sw2 * np.asarray(act.q_map(qs)) + sb2, color=OKABE_ITO[5],
            label=f"$\\sigma_w^2 Q(q) + \\sigma_b^2$ ({label})")
    ax.plot(qs, qs, color="0.55", ls="--", lw=1.0, label="identity")
    for k, q0 in enumerate(starts):
        traj = [float(q0)]
        for _ in range(depth):
            traj.append(sw2 * float(act.q_map(traj[-1])) + sb2)
        col = OKABE_ITO[(k + 1) % len(OKABE_ITO)]
        # Cobweb: (q0, q0) -> (q0, q1) -> (q1, q1) -> (q1, q2) -> ...
        xs, ys = np.repeat(traj, 2)[:-1], np.repeat(traj, 2)[1:]
        ax.plot(xs, ys, color=col, lw=0.9, alpha=0.9, label=f"iterates from q = {q0:g}")
        axes[0, 1].plot(np.arange(depth + 1), traj, color=col, marker="o", ms=2.5,
                        label=f"$q_0$ = {q0:g}")
    q_star = traj[-1]
    ax.plot([q_star], [q_star], "o", color="k", ms=5, label=f"fixed point q* ≈ {q_star:.4g}")
    axes[0, 1].axhline(q_star, color="k", lw=0.8, ls=":", label="q*")
    ax.set_xlabel("input $q$")
    ax.set_ylabel("output $q$")
    ax.set_xlim(0, q_max)
    ax.set_ylim(0, None)
    axes[0, 1].set_xlabel("layer $l$")
    axes[0, 1].set_ylabel("$q_l$")
    ax.legend(loc="upper left")
    axes[0, 1].legend(loc="best")
    fig.suptitle(f"Q map of {label}: $\\sigma_w^2$ = {sw2:.3g}, $\\sigma_b^2$ = {sb2:.3g}")
    return fig


# -- edge of chaos ------------------------------------------------------------------------

def _phase_grid(act, sigma_w_max, sigma_b_max, resolution, q_nodes=161):
    """chi_1 and the depth scale xi_c on a regular (sigma_w, sigma_b) grid.

    At each grid point the layer's fixed point ``q* = sigma_w^2 Q(q*) + sigma_b^2`` is
    solved by bisection in log q (the bracket keeps ``f(q) = sigma_w^2 Q(q) + sigma_b^2 - q``
    positive below and negative above, so the root found is the attracting one; Poole et al.
    2016). ``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]`` with ``E[phi'^2] = C'(1; q*) Q(q*) / q*``.
    In the ordered phase ``c* = 1`` and ``xi_c = -1 / log chi_1``; in the chaotic phase
    ``c* < 1`` solves ``c = a C(c; q*) + 1 - a`` with ``a = sigma_w^2 Q(q*) / q*`` (bisection
    again) and ``xi_c = -1 / log(a C'(c*; q*))`` (Schoenholz et al. 2017). Points without a
    finite fixed point below ``q_hi`` are NaN.

    ``Q`` is interpolated between exact values at ``q_nodes`` log-spaced q (cubic Hermite
    with the exact ``Q'``), C maps by a :class:`_CTable`: plotting accuracy, and smooth in
    (sigma_w, sigma_b), so contours are smooth. (An earlier version swept q* on a grid shared
    by every row and drew on the resulting curvilinear grid: its left edge followed the
    first sampled q* of each row (a sawtooth), masked points parked at the right edge left
    holes, and c* came from a 161-point scan without refinement, so xi_c contours jagged.)

    Returns:
        ``(sigma_w, sigma_b, chi_1, xi_c)``, arrays of shape ``(resolution, 3 * resolution)``
        (rows: sigma_b from 0 to ``sigma_b_max``; columns: sigma_w from 0 to
        ``sigma_w_max``).
    """
    sws = np.linspace(0.0, sigma_w_max, 3 * resolution)
    sbs = np.linspace(0.0, sigma_b_max, resolution)
    sw, sb = np.meshgrid(sws, sbs)
    sw2, sb2 = sw**2, sb**2
    q_lo, q_hi = 1e-6, 1.2 * (sigma_w_max**2 + sigma_b_max**2) + 1.0
    big_q = _LogHermite(act, q_lo, q_hi, q_nodes)

    def f(log_q):
        return sw2 * big_q(log_q) + sb2 - np.exp(log_q)

    lo = np.log(np.maximum(sb2, q_lo))
    hi = np.full_like(lo, math.log(q_hi))
    none = f(hi) > 0                   # no fixed point below q_hi (q grows without bound)
    tiny = f(lo) < 0                   # q* below q_lo: the q -> 0 limit
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        up = f(mid) >= 0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    log_q = np.where(tiny, math.log(q_lo), 0.5 * (lo + hi))
    q_star = np.exp(log_q)
    a = sw2 * big_q(log_q) / q_star                # sigma_w^2 Q(q*) / q*
    table = _CTable(act, 1e-3, q_hi, max_tables=24)
    w = table.weights(q_star)                      # (rows, cols, tables)
    _, slope_one = table.hermite(1.0)
    chi = a * (w @ slope_one)
    chi[none] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.where(chi < 1.0, -1.0 / np.log(chi), np.nan)
    chaotic = np.flatnonzero((chi > 1.0).ravel())
    if len(chaotic):
        xi.ravel()[chaotic] = _chaotic_depth_scale(table, w.reshape(-1, w.shape[-1])[chaotic],
                                                   a.ravel()[chaotic])
    return sw, sb, chi, xi


class _LogHermite:
    """``Q(q)`` from exact values and slopes at log-spaced q, cubic Hermite in log q."""

    def __init__(self, act, q_lo, q_hi, n):
        self.log_q = np.linspace(math.log(q_lo), math.log(q_hi), n)
        q = np.exp(self.log_q)
        self.val = np.asarray(act.q_map(q), dtype=np.float64)
        self.der = np.asarray(act.q_map(q, order=1), dtype=np.float64) * q   # dQ / dlog q

    def __call__(self, log_q):
        x = self.log_q
        i = np.clip(np.searchsorted(x, log_q, side="right") - 1, 0, len(x) - 2)
        h = x[i + 1] - x[i]
        t = (np.clip(log_q, x[0], x[-1]) - x[i]) / h
        t2, t3 = t * t, t * t * t
        return ((2 * t3 - 3 * t2 + 1) * self.val[i] + (t3 - 2 * t2 + t) * h * self.der[i]
                + (3 * t2 - 2 * t3) * self.val[i + 1] + (t3 - t2) * h * self.der[i + 1])


def _chaotic_depth_scale(table, w, a):
    """``xi_c = -1 / log(a C'(c*))`` at the fixed point ``c* < 1`` of ``c -> a C(c) + 1 - a``.

    ``g(c) = a C(c) + 1 - a - c`` is >= 0 at c = -1 and < 0 just below 1 (chi_1 > 1); the
    scan puts points ever closer to 1 so that c* near 1 (chi_1 just above 1) is bracketed,
    then bisection refines c* to far below plotting accuracy.
    """
    scan = np.concatenate([np.linspace(-1.0, 0.9, 96), 1.0 - np.geomspace(0.1, 1e-9, 96)])
    values, _ = table.hermite(scan)                       # (tables, scan)
    g = a[:, None] * (w @ values) + (1.0 - a)[:, None] - scan
    change = (g[:, :-1] >= 0) & (g[:, 1:] < 0)
    found = change.any(axis=1)
    j = change.shape[1] - 1 - np.argmax(change[:, ::-1], axis=1)     # the last sign change
    lo, hi = scan[j], scan[j + 1]

    def g_at(c):
        value, _ = table.hermite(c)                      # (tables, points)
        return a * np.einsum("pk,kp->p", w, value) + 1.0 - a - c

    for _ in range(50):
        mid = 0.5 * (lo + hi)
        up = g_at(mid) >= 0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    _, slopes = table.hermite(0.5 * (lo + hi))
    slope_c = a * np.einsum("pk,kp->p", w, slopes)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.where(found & (slope_c > 0) & (slope_c < 1), -1.0 / np.log(slope_c), np.nan)
    return xi


@_styled
def eoc_phase(phi, *, sigma_w_max: float = 3.0, sigma_b_max: float = 1.0,
              resolution: int = 40, levels: Sequence[float] = (3, 10, 30)):
    """Phase diagram of ``h = W phi(h) + b`` over ``(sigma_w, sigma_b)`` (THEORY.md §3).

    Colour: ``chi_1``, the slope of the layer C map at ``c = 1`` (ordered below 1, chaotic
    above); black line: the edge of chaos ``chi_1 = 1``; thin lines: contours of the
    correlation depth scale ``xi_c`` (diverges at the edge of chaos). See
    :func:`_phase_grid` for how the grid is built.

    Args:
        phi: activation (or Transform).
        sigma_w_max, sigma_b_max: plotted ranges (from 0).
        resolution: grid rows (sigma_b values); there are three times as many sigma_w
            columns.
        levels: the xi_c contour levels (layers).

    Example:
        >>> from kernelshape import activation
        >>> fig = eoc_phase(activation("erf"), resolution=8)
        >>> fig.axes[0].get_xlabel()
        '$\\\\sigma_w$'
    """
    import matplotlib as mpl
    from matplotlib.lines import Line2D

    act, label = _act_and_label(phi)
    if not (sigma_w_max > 0 and sigma_b_max > 0 and resolution >= 4):
        raise DomainError(f"need sigma_w_max > 0, sigma_b_max > 0, resolution >= 4; got "
                          f"{sigma_w_max!r}, {sigma_b_max!r}, {resolution!r}")
    sw, sb, chi, xi = _phase_grid(act, float(sigma_w_max), float(sigma_b_max), int(resolution))
    fig, axes = _figure(1, 1, width=5.0, height=3.9)
    ax = axes[0, 0]
    chi_m = np.ma.masked_invalid(chi)
    x = sw
    hi = max(2.0, float(np.nanmax(chi)))
    norm = mpl.colors.TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=hi)
    filled = ax.contourf(x, sb, chi_m, levels=np.concatenate(
        [np.linspace(0, 1, 11), np.linspace(1, hi, 11)[1:]]), cmap="PuOr_r", norm=norm)
    cbar = fig.colorbar(filled, ax=ax, ticks=[0, 0.25, 0.5, 0.75, 1.0]
                        + [round(v, 1) for v in np.linspace(1, hi, 5)[1:]])
    cbar.set_label("$\\chi_1$ (slope of the C map at $c$ = 1)")
    # The grid covers the whole plot; what shows through is where q has no finite
    # fixed point (it grows without bound, e.g. ReLU with sigma_w^2 > 2).
    ax.set_facecolor("0.85")
    ax.contour(x, sb, chi_m, levels=[1.0], colors="k", linewidths=2.0)
    # xi_c diverges at the edge of chaos, where a contour of it interpolated between grid
    # points wobbles; 1 / xi_c = -log(slope) is smooth there, so its contours are drawn.
    with np.errstate(divide="ignore"):
        inverse = np.ma.masked_invalid(1.0 / xi)
    levels = sorted(float(v) for v in levels)
    lines = ax.contour(x, sb, inverse, levels=[1.0 / v for v in reversed(levels)],
                       colors="0.15", linewidths=0.8, linestyles="--")
    ax.clabel(lines, fmt=lambda v: f"$\\xi_c$={1.0 / v:.3g}", fontsize=7)
    ax.set_xlim(0, sigma_w_max)
    ax.set_ylim(0, sigma_b_max)
    ax.set_xlabel("$\\sigma_w$")
    ax.set_ylabel("$\\sigma_b$")
    handles = [Line2D([], [], color="k", lw=2.0, label="edge of chaos $\\chi_1$ = 1"),
               Line2D([], [], color="0.15", lw=0.8, ls="--", label="depth scale $\\xi_c$")]
    if np.isnan(chi).any():
        handles.append(mpl.patches.Patch(color="0.85", label="no finite fixed point $q^*$"))
    ax.legend(handles=handles, loc="upper left", frameon=True, framealpha=0.85)
    ax.text(0.04 * sigma_w_max, 0.6 * sigma_b_max, "ordered", fontsize=9, color="white")
    ax.text(0.8 * sigma_w_max, 0.1 * sigma_b_max, "chaotic", fontsize=9, ha="right")
    ax.set_title(f"Edge-of-chaos phase diagram of {label}")
    return fig


