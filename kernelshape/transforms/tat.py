"""Tailored Activation Transformations (Zhang, Botev & Martens 2022, arXiv 2203.08120;
THEORY.md §5).

* Smooth activations: ``phi_hat(x) = gamma (phi(alpha x + beta) + delta)`` with, at q = 1,

      Q(1) = 1,   Q'(1) = 1,   C'(1) = 1,   C''(1) = tau_local,

  ``tau_local`` solving ``M_{f, y -> t + y}(0) = tau`` (the maximal curvature function).
  ``gamma`` follows from Q(1) = 1; ``(alpha, beta, delta)`` are solved by damped Newton with
  an analytic Jacobian from the ``dks`` starting values in its order (output shifts taken
  relative to ``-E[phi]``); the first converged start wins, rejecting solutions with
  ``alpha * gamma >= 2`` as ``dks`` does (unstable Q maps).
* Leaky ReLU: ``phi_hat = sqrt(2 / (1 + a^2)) LReLU_a`` with ``a`` solving
  ``M_{f, C_a}(0) = eta``.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import TransformError, UnreachableTargetError
from . import _common as cm
from ._leaky import leaky_residuals
from ._targets import local_curvature, tat_negative_slope
from .dks import residuals_float
from .result import Transform

__all__ = ["tat"]

_ROWS = [(2, 0, 0, 0), (2, 0, 0, 1), (2, 0, 0, 2), (1, 0, 0, 0),
         (1, 1, 0, 0), (1, 1, 0, 1), (1, 1, 0, 2), (1, 1, 0, 3), (0, 1, 0, 1),
         (0, 2, 0, 0), (0, 2, 0, 1), (0, 2, 0, 2),
         (0, 0, 2, 0), (0, 0, 2, 1), (0, 0, 2, 2)]
_TERMS, _I = cm.terms_array(_ROWS)


def _tat_system(moments, tau_local):
    def fun(x):
        a, b, d = x
        if not all(math.isfinite(v) for v in x) or a == 0.0 or abs(a) > cm.MAX_SCALE:
            return None, None
        E = moments(_TERMS, a, b, d, check=False)
        if not np.all(np.isfinite(E)):
            return None, None
        g = lambda *row: E[_I[row]]
        da = lambda row, k: (g(*row, k + 2) - (k + 1) * g(*row, k)) / a
        db = lambda row, k: (g(*row, k + 1) - (k * g(*row, k - 1) if k else 0.0)) / a
        P00, P01, P11, P22 = (2, 0, 0), (1, 1, 0), (0, 2, 0), (0, 0, 2)
        S = g(*P00, 0)
        if not S > 0:
            return None, None
        dS = np.array([da(P00, 0), db(P00, 0), 2 * g(1, 0, 0, 0)])
        N = g(*P01, 1)
        dN = np.array([da(P01, 1), db(P01, 1), g(0, 1, 0, 1)])
        e11, e22 = g(*P11, 0), g(*P22, 0)
        d11 = np.array([da(P11, 0), db(P11, 0), 0.0])
        d22 = np.array([da(P22, 0), db(P22, 0), 0.0])
        ea = np.array([1.0, 0.0, 0.0])
        F = np.array([a * N / S - 1.0, a * a * e11 / S - 1.0, a**4 * e22 / S - tau_local])
        J = np.array([
            (ea * N + a * dN) / S - a * N * dS / S**2,
            (2 * a * ea * e11 + a * a * d11) / S - a * a * e11 * dS / S**2,
            (4 * a**3 * ea * e22 + a**4 * d22) / S - a**4 * e22 * dS / S**2,
        ])
        return F, J
    return fun


_NUDGE = 0.1
# Output-shift starts are offsets from -E[phi(alpha z + beta)] (centred): from raw values
# Newton stalls where Q(1) is far from 1, and the centred starts reach dks's branch more often.
_CENTRED = True
# dks's starting values in its order (input_scale 1, 0.1; input_shift and output_shift
# 0, 1, -1; output shifts centred, see _CENTRED).
_STARTS = [(a, b, d) for a in (1.0, 0.1) for b in (0.0, 1.0, -1.0) for d in (0.0, 1.0, -1.0)]


def tat(phi, *, network, tau: float = 0.3, eta: float = 0.9,
        digits: int | None = None) -> Transform:
    """Solve the TAT transform of ``phi`` for ``network`` (Zhang et al. 2022, §4).

    Smooth activations use ``tau`` (maximal ``C_f''(1)`` over subnetworks); the leaky ReLU
    family (``activation("leaky_relu")``, slope left free) uses ``eta`` (maximal
    ``C_f(0)``).

    Args:
        phi: an Activation, built-in name or expression text.
        network: a network or a ``dks``-style ``subnet_max_func(x, r_fn)``.
        tau: curvature target, ``> 0`` (smooth activations).
        eta: C(0) target in ``(0, 1)`` (leaky ReLU).
        digits: None for float64; N >= 16 solves in mpmath to N digits.

    Returns:
        A :class:`~kernelshape.transforms.result.Transform`; targets hold ``tau`` and
        ``tau_local`` (smooth) or ``eta`` (leaky ReLU).

    Raises:
        TransformError: bad tau / eta; ReLU (use leaky ReLU).
        UnsupportedError: activations with kinks (C''(1) is infinite) other than leaky ReLU.
        UnreachableTargetError: eta above what the network reaches, or a condition the
            activation cannot meet (named, with the closest value).

    Example:
        >>> from kernelshape.networks import mlp
        >>> t = tat("leaky_relu", network=mlp(50), eta=0.9)
        >>> 0 < t.params["negative_slope"] < 1, t.max_residual < 1e-13
        (True, True)
    """
    digits = cm.check_digits(digits)
    net = cm.network_of(network)
    act = cm.as_activation(phi)
    if cm.info(act)["leaky"]:
        eta = cm.check_real("eta", eta, low=0.0, high=1.0)
        act = cm.check_activation(act, "TAT", solvable=("negative_slope",))
        if "negative_slope" not in act.free:
            raise TransformError(
                "TAT solves the negative slope of leaky ReLU; leave it free "
                "(activation('leaky_relu')) instead of fixing it to "
                f"{act.values.get('negative_slope')!r}")
        return _tat_leaky(act, net, eta, digits)
    tau = cm.check_real("tau", tau, low=0.0)
    act = cm.check_activation(act, "TAT")
    if cm.info(act)["relu"]:
        raise TransformError("TAT does not support ReLU (its C''(1) is infinite); use "
                             "activation('leaky_relu') with eta instead")
    cm.check_not_linear(act, "TAT")
    if any(order <= 1 for order in cm.info(act)["kink_orders"]):
        cm.unsupported_kink(act, "TAT", "C''(1)")
    tau_local = local_curvature(net, tau)
    params = _solve_smooth(act, tau_local, digits)
    conditions = {"Q(1)": 1.0, "Q'(1)": 1.0, "C'(1)": 1.0, "C''(1)": tau_local}
    if digits:
        from ._precise import residuals_mp
        residuals = residuals_mp(act, params, conditions, digits)
    else:
        residuals = residuals_float(act, params, conditions)
    return Transform(method="tat", base=act, params=params,
                     targets={"tau": tau, "tau_local": tau_local}, network=repr(net),
                     residuals=residuals, digits=digits)


def _solve_smooth(act, tau_local, digits):
    moments = cm.Moments(act)
    center = cm.info(act)["odd_center"]
    fun = _tat_system(moments, tau_local)
    best, found, rejected = None, None, []
    for start in _STARTS:
        if center is not None and start[1] == 0.0 and start[2] == -center:
            # phi odd about (0, c): the start is a fixed point of the symmetry and J is
            # singular there; nudge beta (the sign is immaterial, results are canonical).
            start = (start[0], _NUDGE, start[2])
        if _CENTRED:
            start = (start[0], start[1], start[2] - moments(_TERMS[3:4], start[0], start[1])[0])
        x, F, ok = cm.newton(fun, start)
        if F is not None and (best is None or np.max(np.abs(F)) < np.max(np.abs(best[1]))):
            best = (x, F)
        if ok:
            a, b, d = (float(v) for v in x)
            gamma = 1.0 / math.sqrt(moments(_TERMS[:1], a, b, d)[0])
            if abs(a) * gamma >= 2.0:
                rejected.append((a, b, d, gamma))
                continue
            found = (a, b, d, gamma)
            break
    if found is None:
        names = ("Q'(1)", "C'(1)", "C''(1)")
        targets = (1.0, 1.0, tau_local)
        if rejected:
            raise UnreachableTargetError(
                f"TAT: the only solutions found for {act.expr} have input_scale * "
                f"output_scale >= 2 (rejected as in dks: unstable Q maps): {rejected}")
        if best is None:
            raise UnreachableTargetError(f"TAT: no parameters of {act.expr} meet the conditions")
        x, F = best
        i = int(np.argmax(np.abs(F)))
        raise UnreachableTargetError(
            f"TAT: the condition {names[i]} = {targets[i]!r} cannot be met for {act.expr}; "
            f"closest value reached {names[i]} = {targets[i] + F[i]!r} at input_scale="
            f"{x[0]!r}, input_shift={x[1]!r}, output_shift={x[2]!r}")
    a, b, d, gamma = found
    # Canonical representative: alpha > 0 (maps are even in alpha); for phi odd about
    # (0, c) also beta >= 0 via (beta, delta) -> (-beta, -2c - delta).
    a = abs(a)
    if center is not None and b < 0:
        b, d = -b, -2.0 * center - d
    params = {"input_scale": a, "input_shift": b, "output_shift": d, "output_scale": gamma}
    if digits:
        from ._precise import polish_tat

        def jac(av, bv, dv):
            return fun(np.array([av, bv, dv]))[1]
        params = polish_tat(act, params, tau_local, digits, jac)
    return params


def _tat_leaky(act, net, eta, digits):
    a = tat_negative_slope(net, eta)
    if digits:
        from ._precise import polish_leaky_tat
        a = polish_leaky_tat(net, a, eta, digits)
        import mpmath
        with mpmath.workdps(digits + 10):
            scale = mpmath.sqrt(2 / (1 + a * a))
    else:
        scale = math.sqrt(2.0 / (1.0 + a * a))
    params = {"output_scale": scale, "negative_slope": a}
    residuals = leaky_residuals(params, {"Q(1)": 1.0, "C'(1)": 1.0, "M(0)": eta}, digits,
                                net=net)
    return Transform(method="tat", base=act, params=params, targets={"eta": eta},
                     network=repr(net), residuals=residuals, digits=digits)

