"""Figures of the kernel theory: C-map degeneration, Q/C maps, the EOC phase diagram, checks.

Every function returns a :class:`matplotlib.figure.Figure` (not registered with pyplot, so
notebooks show it once and scripts never accumulate open figures); save it with
``fig.savefig(path)``. matplotlib is imported inside the functions: importing kernelshape
stays fast. Colours are the Okabe-Ito palette for categories (methods, inputs) and viridis
for depth, both readable with the common forms of colour blindness.

The central picture (DKS paper, Fig. 1; the DKS talk, "C map degeneration in deep
networks"): the C map of a deep network ``C_f = C o C o ... o C`` flattens with depth (every
input ``c`` is sent near one value ``c_0``) for an untransformed activation and even at the
edge of chaos, while DKS and TAT keep it close to the identity at any depth (THEORY.md §3-§5).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .empirical import KernelComparison
from .errors import DomainError

__all__ = [
    "DEPTHS",
    "METHODS",
    "METHOD_COLORS",
    "OKABE_ITO",
    "c_map",
    "c_vs_depth",
    "degeneration",
    "eoc_phase",
    "predicted_vs_empirical",
    "q_map",
    "training_curves",
    "transformed_activations",
]

#: Okabe & Ito (2008) colour-blind-safe palette (black first).
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
             "#CC79A7")
#: One colour per method, used by every figure.
METHOD_COLORS = {"untransformed": "#D55E00", "eoc": "#E69F00", "dks": "#0072B2",
                 "tat": "#009E73", "he": "#CC79A7", "other": "#56B4E9"}
#: Default depths of the degeneration figure.
DEPTHS = (1, 2, 5, 10, 20, 50, 100)
#: Method names understood by :func:`degeneration` and :func:`c_vs_depth`.
METHODS = ("untransformed", "eoc", "dks", "tat")
#: sigma_b^2 of the EOC initialization when none is given (THEORY.md §3's tanh example).
EOC_BIAS_VARIANCE = 0.05

_RC = {"font.size": 10, "axes.titlesize": 10.5, "axes.labelsize": 10, "legend.fontsize": 8,
       "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "axes.grid": True,
       "grid.alpha": 0.25, "grid.linewidth": 0.6, "lines.linewidth": 1.6,
       "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
       "figure.dpi": 100, "savefig.dpi": 110, "mathtext.fontset": "dejavusans"}


def _figure(nrows=1, ncols=1, *, width=3.3, height=3.0, **kw):
    """A pyplot-free Figure with the package style and a grid of axes (always 2-D)."""
    import matplotlib as mpl
    from matplotlib.figure import Figure

    with mpl.rc_context(_RC):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _styled(fn):
    """Run a figure builder under the package rc settings (fonts, grid, line widths)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib as mpl
        with mpl.rc_context(_RC):
            return fn(*args, **kwargs)
    return wrapper


def _depth_colors(n):
    import matplotlib as mpl
    cmap = mpl.colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.0, 0.9, n)]


def _name(act):
    return getattr(act, "name", None) or str(getattr(act, "expr", act))


# -- the per-layer kernels of each method -------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Variant:
    """One way to build a deep network from an activation: its per-layer kernel."""

    key: str
    label: str
    act: object
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    q0: float = 1.0

    @property
    def color(self):
        return METHOD_COLORS.get(self.key, METHOD_COLORS["other"])

    def chain(self, c, depth):
        """``(q_l, C_l(c), C_l'(c))`` for ``l = 0..depth``: the first ``l`` layers composed.

        Layer ``l`` maps ``c -> g_l C(c; q_l) + sigma_b^2 / q_{l+1}`` with
        ``g_l = sigma_w^2 Q(q_l) / q_{l+1}``; slopes multiply (chain rule).
        """
        sw2, sb2 = self.sigma_w**2, self.sigma_b**2
        qs = [float(self.q0)]
        for _ in range(depth):
            qs.append(sw2 * float(self.act.q_map(qs[-1])) + sb2)
        # Below 1e-8 q_max the C map of an analytic activation has reached its q -> 0
        # limit to far better than plotting accuracy: clamp, so tables stay few.
        q_hi = max(qs[:-1])
        table = _CTable(self.act, max(min(qs[:-1]), 1e-8 * q_hi), q_hi)
        cs = [np.asarray(c, dtype=np.float64)]
        ds = [np.ones_like(cs[0])]
        for q_in, q_out in itertools.pairwise(qs):
            gain = (q_out - sb2) / q_out
            value, slope = table(cs[-1], q_in)
            cs.append(np.clip(gain * value + sb2 / q_out, -1.0, 1.0))
            ds.append(ds[-1] * gain * slope)
        return np.array(qs), np.stack(cs, axis=-1), np.stack(ds, axis=-1)


class _CTable:
    """``C(c; q)`` and ``C'(c; q)`` tabulated once, for composing a layer many times.

    Exact map values and slopes at Chebyshev-Lobatto nodes in c (dense near +-1) and at
    log-spaced q; piecewise cubic Hermite interpolation in c, cubic Lagrange in log q.
    For smooth activations the interpolation error is below 1e-6 (tests compare with the
    exact maps); near c = 1 of kinked activations, where C'' diverges, about 1e-4. Used by
    the figures only: ``predict`` and the solvers evaluate the maps exactly.
    """

    def __init__(self, act, q_lo, q_hi, *, nodes=33, q_step=0.35, max_tables=16):
        span = math.log(q_hi / q_lo)
        k = 1 if span < 1e-12 else int(min(max_tables, max(2, math.ceil(span / q_step) + 1)))
        self.log_q = np.linspace(math.log(q_lo), math.log(q_hi), k)
        self.x = -np.cos(np.pi * np.arange(nodes) / (nodes - 1))
        self.x[0], self.x[-1] = -1.0, 1.0
        qs = np.exp(self.log_q) if k > 1 else [q_lo]
        self.val = np.stack([np.asarray(act.c_map(self.x, q=float(q))) for q in qs])
        self.der = np.stack([np.asarray(act.c_map(self.x, q=float(q), order=1)) for q in qs])

    def _weights(self, log_q):
        k = len(self.log_q)
        w = np.zeros(k)
        if k == 1:
            w[0] = 1.0
            return w
        m = min(4, k)
        j = int(np.clip(np.searchsorted(self.log_q, log_q) - m // 2, 0, k - m))
        nodes = self.log_q[j:j + m]
        for i in range(m):
            others = np.delete(nodes, i)
            w[j + i] = np.prod((log_q - others) / (nodes[i] - others))
        return w

    def __call__(self, c, q):
        x = self.x
        c = np.asarray(c, dtype=np.float64)
        i = np.clip(np.searchsorted(x, c, side="right") - 1, 0, len(x) - 2)
        h = x[i + 1] - x[i]
        t = (c - x[i]) / h
        t2, t3 = t * t, t * t * t
        v0, v1, d0, d1 = self.val[:, i], self.val[:, i + 1], self.der[:, i], self.der[:, i + 1]
        value = ((2 * t3 - 3 * t2 + 1) * v0 + (t3 - 2 * t2 + t) * h * d0
                 + (3 * t2 - 2 * t3) * v1 + (t3 - t2) * h * d1)
        slope = ((6 * t2 - 6 * t) / h * v0 + (3 * t2 - 4 * t + 1) * d0
                 + (6 * t - 6 * t2) / h * v1 + (3 * t2 - 2 * t) * d1)
        w = self._weights(math.log(max(q, math.exp(self.log_q[0]))))
        return w @ value, w @ slope


def _eoc_variant(phi, sigma_b):
    from .errors import KernelShapeError
    from .transforms import eoc
    tries = [sigma_b] if sigma_b is not None else [math.sqrt(EOC_BIAS_VARIANCE), 0.0]
    for i, sb in enumerate(tries):
        try:
            e = eoc(phi, sigma_b=sb)
        except KernelShapeError:
            # Positively homogeneous activations (ReLU) have an edge of chaos only without
            # biases: fall back to sigma_b = 0 when the default bias has none.
            if i == len(tries) - 1:
                raise
            continue
        sw, sb, q_star = float(e.sigma_w), float(e.sigma_b), float(e.q_star)
        if q_star > 0 and math.isfinite(q_star):
            label = f"EOC ($\\sigma_w^2$={sw**2:.3g}, $\\sigma_b^2$={sb**2:.3g})"
            return _Variant("eoc", label, phi, sw, sb, q_star)
    raise DomainError(f"no edge-of-chaos initialization with a positive fixed point q* for "
                      f"{_name(phi)} (tried sigma_b = {tries})")


def _variants(phi, network, methods, *, zeta, tau, eta, sigma_b):
    """Resolve method names (or Transform objects) into per-layer kernels.

    ``methods=None``: all of :data:`METHODS`, leaving out the edge of chaos when the
    activation has none (softplus, for instance, has no chi_1 = 1 at any sigma_w).
    """
    if methods is None:
        from .errors import UnreachableTargetError
        try:
            eoc_variant = _eoc_variant(phi, sigma_b)
        except UnreachableTargetError:
            eoc_variant = None
        methods = [m if m != "eoc" else eoc_variant for m in METHODS]
        methods = [m for m in methods if m is not None]
    out = []
    for m in methods:
        if isinstance(m, _Variant):
            out.append(m)
            continue
        if not isinstance(m, str):
            act = getattr(m, "activation", None)
            if act is None:
                raise DomainError(f"methods: expected names from {METHODS} or Transform "
                                  f"objects, got {m!r}")
            key = getattr(m, "method", "other")
            out.append(_Variant(key if key in METHOD_COLORS else "other",
                                f"{str(key).upper()} {_name(m.base)}", act))
            continue
        if m not in METHODS:
            raise DomainError(f"unknown method {m!r}; valid: {', '.join(METHODS)} "
                              "(or a Transform)")
        if m == "untransformed":
            out.append(_Variant(m, f"{_name(phi)} (untransformed)", phi))
        elif m == "eoc":
            out.append(_eoc_variant(phi, sigma_b))
        else:
            out.append(_transform_variant(phi, network, m, zeta=zeta, tau=tau, eta=eta))
    return out


def _transform_variant(phi, network, method, *, zeta, tau, eta):
    if network is None:
        raise DomainError(f"method {method!r} needs a network (e.g. network=mlp(50))")
    if method == "dks":
        from .transforms import dks
        t = dks(phi, network=network, zeta=zeta)
        return _Variant("dks", f"DKS $\\zeta$={zeta:g}", t.activation)
    if "negative_slope" in getattr(phi, "parameters", ()) or _name(phi) == "relu":
        # TAT covers the ReLU family through leaky ReLU ("TReLU", TAT paper §4).
        from .activations import activation
        from .transforms import tat
        base = activation("leaky_relu")
        t = tat(base, network=network, eta=eta)
        return _Variant("tat", f"TAT leaky ReLU $\\eta$={eta:g}", t.activation)
    from .transforms import tat
    t = tat(phi, network=network, tau=tau)
    return _Variant("tat", f"TAT $\\tau$={tau:g}", t.activation)


def _check_depths(depths):
    ds = tuple(int(d) for d in depths)
    if not ds or any(d < 1 for d in ds):
        raise DomainError(f"depths must be positive integers, got {depths!r}")
    return tuple(sorted(set(ds)))


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
