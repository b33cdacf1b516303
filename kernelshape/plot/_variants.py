"""Per-layer kernels of each method (untransformed, EOC, DKS, TAT) tabulated for the figures."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from ..errors import DomainError
from ._style import EOC_BIAS_VARIANCE, METHOD_COLORS, METHODS, _name

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

    def hermite(self, c):
        """Value and slope of every tabulated q at ``c``: two arrays ``(tables, *c.shape)``."""
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
        return value, slope

    def weights(self, q):
        """Interpolation weights in log q: an array ``(*q.shape, tables)``; q below the
        table uses its first entry (the q -> 0 limit, to plotting accuracy)."""
        q = np.asarray(q, dtype=np.float64)
        floor = math.exp(self.log_q[0])
        rows = [self._weights(math.log(max(float(v), floor))) for v in q.ravel()]
        return np.array(rows).reshape(*q.shape, len(self.log_q))

    def __call__(self, c, q):
        value, slope = self.hermite(c)
        w = self._weights(math.log(max(q, math.exp(self.log_q[0]))))
        return w @ value, w @ slope


def _eoc_variant(phi, sigma_b):
    from ..errors import KernelShapeError
    from ..transforms import eoc
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


def _variants(phi, network, methods, *, zeta, tau, eta, sigma_b, chain=True):
    """Resolve method names (or Transform objects) into per-layer kernels.

    ``methods=None``: all of :data:`METHODS`, leaving out the edge of chaos when the
    activation has none (softplus, for instance, has no chi_1 = 1 at any sigma_w) or the
    network is not a chain (the EOC is a property of ``W phi(h) + b`` chains), and DKS for
    plain ReLU (discouraged by the DKS paper, which recommends leaky ReLU; asking for
    ``"dks"`` by name still draws it, with the solver's ReluWarning).
    ``chain=False``: the variants are drawn on a network that is not an MLP.
    """
    if methods is None:
        from ..errors import UnreachableTargetError
        eoc_variant = None
        if chain:
            try:
                eoc_variant = _eoc_variant(phi, sigma_b)
            except UnreachableTargetError:
                pass
        methods = [m if m != "eoc" else eoc_variant for m in METHODS
                   if not (m == "dks" and _is_plain_relu(phi))]
        methods = [m for m in methods if m is not None]
    elif not chain and "eoc" in methods:
        raise DomainError("method 'eoc' is drawn for chains (mlp) only: the edge of chaos "
                          "is a property of the layer h = W phi(h) + b repeated; got a "
                          f"network that is not an mlp ({network!r})")
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


def _is_plain_relu(phi):
    from ..activations import Activation
    from ..transforms import _common
    return isinstance(phi, Activation) and _common.info(phi)["relu"] and not _common.info(
        phi)["leaky"]


def _transform_variant(phi, network, method, *, zeta, tau, eta):
    if network is None:
        raise DomainError(f"method {method!r} needs a network (e.g. network=mlp(50))")
    if method == "dks":
        from ..transforms import dks
        t = dks(phi, network=network, zeta=zeta)
        return _Variant("dks", f"DKS $\\zeta$={zeta:g}", t.activation)
    if "negative_slope" in getattr(phi, "parameters", ()) or _name(phi) == "relu":
        # TAT covers the ReLU family through leaky ReLU ("TReLU", TAT paper §4).
        from ..activations import activation
        from ..transforms import tat
        base = activation("leaky_relu")
        t = tat(base, network=network, eta=eta)
        return _Variant("tat", f"TAT leaky ReLU $\\eta$={eta:g}", t.activation)
    from ..transforms import tat
    t = tat(phi, network=network, tau=tau)
    return _Variant("tat", f"TAT $\\tau$={tau:g}", t.activation)



