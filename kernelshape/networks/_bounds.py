"""What the DKS theorems bound, measured on any network (Martens et al. 2021).

Theorem 13 (the DKS talk, ``shared/seeds/004_*``), for any subnetwork ``f`` with C map
``C_f`` on ``[-1, 1]``:

.. math:: \\tfrac14 (1 - C_f'(0)) \\le \\max_c |C_f(c) - c| \\le 2 (1 - C_f'(0)), \\qquad
          \\max_c |C_f'(c) - 1| \\le 2 (1 - C_f'(0)) + (C_f'(1) - 1),

and when ``C_f(0) = 0`` also ``max |C_f(c) - c| <= 2 (C_f'(1) - 1)`` and ``max |C_f'(c) - 1|
<= 3 (C_f'(1) - 1)``. Theorem 27: after DKS with global slope bound ``zeta`` the per-layer
NTK of every layer satisfies ``|Theta_i(x, x') - x.x' / d_0| <= 11 (zeta - 1)``. Each
``Theta_i`` is compared after dividing by ``lambda_i``, its value in the same network with
identity activations: that is the normalization under which the linear network (``zeta =
1``) meets the bound with equality to 0. Unnormalized, a layer inside a residual branch
with shortcut weight ``w`` has ``Theta_i -> (1 - w^2) c`` as ``zeta -> 1``, which no bound
of the form ``11 (zeta - 1)`` can hold; :attr:`Bounds.ntk_deviation_raw` reports that value.

:func:`bounds` evaluates each side on a grid of ``c`` (maxima over the grid, so measured
maxima are lower estimates of the true ones by at most the grid's resolution times the
slope) at ``q = 1``. A measured value above its bound is reported in
:attr:`Bounds.violations`, never hidden.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DomainError

#: |C_f(0)| below this counts as C_f(0) = 0 for the second pair of Theorem 13's bounds.
ZERO_TOL = 1e-9


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Measured quantities and the bounds of Theorems 13 and 27, per subnetwork.

    Attributes:
        network: the network's repr.
        subnetworks: one dict per subnetwork (the whole network first) with ``c0``
            (``C_f(0)``), ``slope0`` (``C_f'(0)``), ``slope1`` (``C_f'(1)``), ``deviation``
            (``max |C_f(c) - c|``), ``slope_deviation`` (``max |C_f'(c) - 1|``) and the
            bounds ``lower``, ``upper``, ``slope_upper``, and (when ``C_f(0) = 0``)
            ``upper_zero``, ``slope_upper_zero``.
        zeta: the global slope bound used for Theorem 27 (given, or the largest
            ``C_f'(1)`` measured).
        ntk_deviation: ``max_i max_c |Theta_i(c) / lambda_i - c|`` over the per-layer NTKs
            (None when the network has no dense or conv layer), each normalized by
            ``lambda_i``, its value in the same network with identity activations (see
            :meth:`Network.layer_ntks`): the quantity Theorem 27 bounds.
        ntk_deviation_raw: the same without the normalization; in networks with weighted
            sums it does not go to 0 as ``zeta -> 1`` (a layer in a residual branch with
            shortcut weight ``w`` contributes ``(1 - w^2) c`` to the NTK of the linear
            network), so it is reported, not compared with the bound.
        ntk_bound: ``11 (zeta - 1)``.
        violations: each measured value above its bound, as text (empty: none).
    """

    network: str
    subnetworks: tuple
    zeta: float
    ntk_deviation: float | None
    ntk_bound: float
    ntk_deviation_raw: float | None
    violations: tuple


def bounds(phi, network, *, zeta=None, points: int = 401, ntk: bool = True) -> Bounds:
    """Measure the quantities of DKS Theorems 13 and 27 for ``network`` and activation ``phi``.

    Args:
        phi: an Activation or a Transform (its transformed activation), for unbound layers;
            None when every nonlinear layer is bound.
        network: a network description.
        zeta: the global slope bound the network was transformed for (Theorem 27); None
            takes the largest measured ``C_f'(1)``.
        points: grid size on ``[-1, 1]`` (odd, so ``c = 0`` is on it).
        ntk: also measure the per-layer NTKs (Theorem 27).

    Returns:
        A :class:`Bounds`.

    Example:
        >>> import kernelshape as ks
        >>> net = ks.chain(*[ks.linear(), ks.nonlinear()] * 4, ks.linear())
        >>> t = ks.dks(ks.activation("tanh"), network=net, zeta=1.5)
        >>> b = ks.networks.bounds(t, net, zeta=1.5, points=101)
        >>> b.violations
        ()
    """
    from ._nodes import as_network
    network = as_network(network)
    act = getattr(phi, "activation", phi)
    if isinstance(points, bool) or not isinstance(points, int) or points < 3 or points % 2 == 0:
        raise DomainError(f"points must be an odd integer >= 3, got {points!r}")
    grid = np.linspace(-1.0, 1.0, points)
    grid[points // 2] = 0.0
    rows, violations = [], []
    for i, sub in enumerate((network, *network._subnetworks)):
        row = _theorem13(sub, act, grid)
        rows.append(row)
        name = "the network" if i == 0 else f"subnetwork {i} ({sub!r})"
        violations += [f"{name}: {what}" for what in _broken13(row)]
    measured = max(row["slope1"] for row in rows)
    zeta = measured if zeta is None else float(zeta)
    ntk_bound = 11.0 * (zeta - 1.0)
    deviation = raw = None
    if ntk and network._n_parameterized():
        per_layer = network.layer_ntks(act, grid)
        raw = float(np.max(np.abs(per_layer - grid)))
        scale = network._linear_ntk_scales(act)[:, None]
        deviation = float(np.max(np.abs(per_layer / scale - grid)))
        if deviation > ntk_bound:
            violations.append(f"Theorem 27: max |Theta_i / lambda_i - c| = {deviation:.6g} > "
                              f"11 (zeta - 1) = {ntk_bound:.6g}")
    return Bounds(network=repr(network), subnetworks=tuple(rows), zeta=zeta,
                  ntk_deviation=deviation, ntk_bound=ntk_bound, ntk_deviation_raw=raw,
                  violations=tuple(violations))


def _theorem13(sub, act, grid):
    value = np.asarray(sub.c_map(act, grid), dtype=np.float64)
    slope = np.asarray(sub.c_map(act, grid, order=1), dtype=np.float64)
    mid = len(grid) // 2
    c0, slope0, slope1 = float(value[mid]), float(slope[mid]), float(slope[-1])
    row = {
        "c0": c0, "slope0": slope0, "slope1": slope1,
        "deviation": float(np.max(np.abs(value - grid))),
        "slope_deviation": float(np.max(np.abs(slope - 1.0))),
        "lower": 0.25 * (1.0 - slope0), "upper": 2.0 * (1.0 - slope0),
        "slope_upper": 2.0 * (1.0 - slope0) + (slope1 - 1.0),
    }
    if abs(c0) <= ZERO_TOL:
        row["upper_zero"] = 2.0 * (slope1 - 1.0)
        row["slope_upper_zero"] = 3.0 * (slope1 - 1.0)
    return row


def _broken13(row):
    # A little slack for rounding of maps accurate to ~1e-14.
    slack = 1e-12
    out = []
    if row["deviation"] < row["lower"] - slack:
        out.append(f"max|C - c| = {row['deviation']:.6g} < (1/4)(1 - C'(0)) = {row['lower']:.6g}")
    checks = [("deviation", "upper", "2 (1 - C'(0))"),
              ("slope_deviation", "slope_upper", "2 (1 - C'(0)) + (C'(1) - 1)"),
              ("deviation", "upper_zero", "2 (C'(1) - 1)"),
              ("slope_deviation", "slope_upper_zero", "3 (C'(1) - 1)")]
    for measured, bound, text in checks:
        if bound in row and row[measured] > row[bound] + slack:
            out.append(f"{measured} = {row[measured]:.6g} > {text} = {row[bound]:.6g}")
    return out
