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

def _phase_grid(act, sigma_w_max, sigma_b_max, resolution, c_points=161):
    """chi_1 and the depth scale xi_c on a curvilinear (sigma_w, sigma_b) grid.

    Each row fixes sigma_b and sweeps the fixed point ``q* > sigma_b^2``; then
    ``sigma_w^2 = (q* - sigma_b^2) / Q(q*)`` puts ``q*`` on the fixed point of the layer Q map
    (Poole et al. 2016). ``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]`` with
    ``E[phi'^2] = C'(1; q*) Q(q*) / q*``. In the ordered phase ``c* = 1`` and
    ``xi_c = -1 / log chi_1``; in the chaotic phase ``c* < 1`` solves
    ``c = (sigma_w^2 Q C(c; q*) + sigma_b^2) / q*`` and ``xi_c = -1 / log`` of that map's
    slope at ``c*`` (Schoenholz et al. 2017). Points whose ``q*`` is an unstable fixed
    point (``sigma_w^2 Q'(q*) >= 1``) or lie past ``sigma_w_max`` are masked. C values come
    from a :class:`_CTable` (plotting accuracy).
    """
    n_q = 3 * resolution
    sbs = np.linspace(0.0, sigma_b_max, resolution)
    sbs[0] = sigma_b_max * 1e-3    # sigma_b = 0 exactly has q* = 0 for sigma_w < 1 (tanh)
    q_hi = 1.2 * (sigma_w_max**2 + sigma_b_max**2) + 1.0
    q_star = np.geomspace(1e-6, q_hi, n_q)    # shared by every row: maps evaluated once
    big_q = np.asarray(act.q_map(q_star), dtype=np.float64)
    slope_q = np.asarray(act.q_map(q_star, order=1), dtype=np.float64)
    # Below q* = 1e-3 the C map is within plotting accuracy of its q -> 0 limit: the
    # table starts there, so its log-q spacing stays fine where the phases differ.
    table = _CTable(act, 1e-3, q_hi, max_tables=18)
    cs = np.linspace(-1.0, 1.0, c_points)
    per_q = [table(cs, q) for q in q_star]      # C(c; q*) and C'(c; q*) on the c grid
    slope_one = np.array([float(table(1.0, q)[1]) for q in q_star])
    sw = np.full((resolution, n_q), np.nan)
    chi = np.full_like(sw, np.nan)
    xi = np.full_like(sw, np.nan)
    for k, sb in enumerate(sbs):
        s = q_star - sb**2
        sw2 = np.where(s > 0, s, np.nan) / big_q
        with np.errstate(invalid="ignore"):
            ok = (s > 0) & (sw2 * slope_q < 1.0) & (np.sqrt(sw2) <= sigma_w_max * 1.05)
        for i in np.flatnonzero(ok):
            a = s[i] / q_star[i]                        # a = sigma_w^2 Q / q*
            chi1 = a * slope_one[i]                     # sigma_w^2 Q C'(1) / q*
            sw[k, i], chi[k, i] = math.sqrt(sw2[i]), chi1
            if chi1 < 1.0:
                xi[k, i] = -1.0 / math.log(chi1)
                continue
            value, slope = per_q[i]
            g = (a * value + (1 - a) - cs)[:-1]
            j = np.flatnonzero((g[:-1] >= 0) & (g[1:] < 0))
            if len(j):
                j = j[-1]
                frac = g[j] / (g[j] - g[j + 1])
                slope_c = a * (slope[j] + frac * (slope[j + 1] - slope[j]))
                if 0 < slope_c < 1:
                    xi[k, i] = -1.0 / math.log(slope_c)
    return sw, np.broadcast_to(sbs[:, None], sw.shape), chi, xi


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
        resolution: grid rows (sigma_b values); the q* sweep has twice as many points.
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
    # contour needs finite coordinates: park masked points at a harmless finite place.
    x = np.where(np.isfinite(sw), sw, np.nan)
    x = np.where(np.isnan(x), np.nanmax(x), x)
    hi = max(2.0, float(np.nanmax(chi)))
    norm = mpl.colors.TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=hi)
    filled = ax.contourf(x, sb, chi_m, levels=np.concatenate(
        [np.linspace(0, 1, 11), np.linspace(1, hi, 11)[1:]]), cmap="PuOr_r", norm=norm)
    cbar = fig.colorbar(filled, ax=ax, ticks=[0, 0.25, 0.5, 0.75, 1.0]
                        + [round(v, 1) for v in np.linspace(1, hi, 5)[1:]])
    cbar.set_label("$\\chi_1$ (slope of the C map at $c$ = 1)")
    # Left of the sampled fixed points (sigma_w -> 0) lies deep ordered territory.
    ax.set_facecolor(filled.cmap(0.0))
    ax.contour(x, sb, chi_m, levels=[1.0], colors="k", linewidths=2.0)
    xi_m = np.ma.masked_invalid(xi)
    lines = ax.contour(x, sb, xi_m, levels=sorted(levels), colors="0.15", linewidths=0.8,
                       linestyles="--")
    ax.clabel(lines, fmt=lambda v: f"$\\xi_c$={v:g}", fontsize=7)
    ax.set_xlim(0, sigma_w_max)
    ax.set_ylim(0, sigma_b_max)
    ax.set_xlabel("$\\sigma_w$")
    ax.set_ylabel("$\\sigma_b$")
    handles = [Line2D([], [], color="k", lw=2.0, label="edge of chaos $\\chi_1$ = 1"),
               Line2D([], [], color="0.15", lw=0.8, ls="--", label="depth scale $\\xi_c$")]
    ax.legend(handles=handles, loc="upper left", frameon=True, framealpha=0.85)
    ax.text(0.04 * sigma_w_max, 0.6 * sigma_b_max, "ordered", fontsize=9, color="white")
    ax.text(0.8 * sigma_w_max, 0.1 * sigma_b_max, "chaotic", fontsize=9, ha="right")
    ax.set_title(f"Edge-of-chaos phase diagram of {label}")
    return fig


