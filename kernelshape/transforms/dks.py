"""Deep Kernel Shaping (Martens et al. 2021, arXiv 2110.01765; THEORY.md §4).

The transformed activation is ``phi_hat(x) = gamma * (phi(alpha x + beta) + delta)``
(``dks`` names: input_scale, input_shift, output_shift, output_scale). Every nonlinear layer
gets, at q = 1,

    Q(1) = 1,   Q'(1) = q_slope,   C(0) = 0,   C'(1) = xi,   with mu(xi) = zeta,

``mu`` the network's maximal slope function. Given ``(alpha, beta)``, ``delta = -E[phi]`` and
``gamma = Var[phi]^(-1/2)`` (``x = alpha z + beta``); the Q'(1) and C'(1) conditions fix
``(alpha, beta)``, solved by damped Newton with an analytic Jacobian (:func:`local_maps`)
from the starting values ``dks`` uses (input_scale 0.1 then 1; input_shift 0, 1, -1); the
first converged start wins. The conditions are written as ratios of Gaussian moments of
order one (``C'(1) = E[phi'^2] / Var[u]``, ``u`` the difference quotient of phi), so targets
next to their limits (``zeta = 1 + 1e-9``: ``alpha ~ 1e-5``) solve to float64 precision.
Results are canonical: ``alpha > 0`` (the maps are even in alpha) and, for phi odd about
``(0, c)``, ``beta >= 0`` (``(beta, delta) -> (-beta, -2c - delta)`` keeps the maps). Special cases as in
``dks``: ReLU keeps ``input_shift = +-1`` and drops the Q'(1) condition; leaky ReLU solves the
negative slope and input shift (input scale 1).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from ..errors import TransformError
from . import _common as cm
from ._leaky import leaky_residuals, solve_leaky_dks
from ._targets import local_slope
from .result import Residual, Transform

__all__ = ["ReluWarning", "dks"]

#: Largest C'(1) a ReLU reaches with input_shift = +1 (the ``dks`` package's constant).
RELU_SHIFT_LIMIT = 1.466942206924260361


class ReluWarning(UserWarning):
    """DKS with ReLU works (one degree of freedom less) but leaky ReLU is much better."""


def local_maps(moments, a, b, *, level=0, coarse=False):
    """``Q'(1)``, ``C'(1)`` at ``(a, b)`` with output shift ``-E[phi]`` and scale
    ``Var[phi]^(-1/2)``, their gradients in ``(a, b)``, and ``(E[phi], Var[phi] / a^2)``.

    With ``u = (phi(a z + b) - phi(b)) / a`` (:meth:`~kernelshape.maps.gauss.Moments.frame`)
    and ``u_c = u - E[u]``: ``Var[phi] = a^2 V``, ``V = E[u_c^2]``, and

        Q'(1) = E[u_c phi' z] / V,     C'(1) = E[phi'^2] / V,

    ratios of quantities of order one for every ``a`` (no cancellation as ``a -> 0``).
    Gradients by the chain rule (``d phi'/da = phi'' z``, ``d phi'/db = phi''``), with the
    Dirac masses of ``phi''`` at kinks added. Returns None where a value is not finite.
    """
    if not (math.isfinite(a) and math.isfinite(b)) or a == 0.0:
        return None
    fr = moments.frame(a, b, level=level, coarse=coarse)
    z, w = fr.z, fr.w
    ubar = float(fr.u @ w)
    # rows 1, u - E[u], f1, f1 z, ua, ub, f2, f2 z, f2 z^2, filled in place
    R = np.empty((9, z.shape[0]))
    R[0] = 1.0
    np.subtract(fr.u, ubar, out=R[1])
    R[2], R[4], R[5], R[6] = fr.f1, fr.ua, fr.ub, fr.f2
    np.multiply(fr.f1, z, out=R[3])
    np.multiply(fr.f2, z, out=R[7])
    np.multiply(R[7], z, out=R[8])
    G = ((R * w) @ R.T).tolist()
    duz2 = duz = dmz = dm = 0.0
    for zk, om, uk, m in fr.diracs:
        duz += om * (uk - ubar) * zk
        duz2 += om * (uk - ubar) * zk * zk
        dmz += om * m * zk
        dm += om * m
    V, N, e11 = G[1][1], G[1][3], G[2][2]
    if not (V > 0 and math.isfinite(V) and math.isfinite(N) and math.isfinite(e11)):
        return None
    dV = (2 * G[1][4], 2 * G[1][5])
    dN = (G[4][3] - G[0][4] * G[0][3] + G[1][8] + duz2,
          G[5][3] - G[0][5] * G[0][3] + G[1][7] + duz)
    de = (2 * (G[2][7] + dmz), 2 * (G[2][6] + dm))
    values = (N / V, e11 / V)
    grads = ([(dN[j] - N * dV[j] / V) / V for j in range(2)],
             [(de[j] - e11 * dV[j] / V) / V for j in range(2)])
    return values, grads, (fr.pb + a * ubar, V)


def _dks_system(maps, targets, level, fixed_b=None):
    """``fun(x) -> (F, J)`` for Newton over ``(a, b)``, or ``a`` alone with ``b`` fixed
    (then only C'(1) is imposed); ``maps`` is :func:`local_maps` bound to the activation."""
    q_slope, xi = targets

    def fun(x):
        a, b = (x[0], fixed_b) if fixed_b is not None else x
        if not (math.isfinite(a) and math.isfinite(b)) or a == 0.0 or abs(a) > cm.MAX_SCALE:
            return None, None
        out = maps(a, b, level=level)
        if out is None:
            return None, None
        (qs, cs), (jq, jc), _ = out
        if fixed_b is not None:
            F, J = [cs - xi], [[jc[0]]]
        else:
            F, J = [qs - q_slope, cs - xi], [jq, jc]
        if not math.isfinite(sum(sum(row) for row in J)):
            return None, None
        return F, J
    return fun


def _converge(maps, x, targets, fixed_b=None):
    """Newton from ``x`` with the embedded-rule check at the converged point; the panels
    are refined (and Newton resumed) until the 16- and 24-point rules agree there.

    Returns ``(x, F, ok, level)``."""
    scale = [1.0 + abs(t) for t in targets]
    level = 0
    while True:
        x, F, ok = cm.newton(_dks_system(maps, targets, level, fixed_b), x)
        if not ok or level == cm.MAX_LEVEL:
            return x, F, ok, level
        b = fixed_b if fixed_b is not None else x[1]
        fine = maps(x[0], b, level=level)
        coarse = maps(x[0], b, level=level, coarse=True)
        if coarse is not None and cm.rule_agrees(fine[0], coarse[0], scale):
            return x, F, ok, level
        level += 1


def dks(phi, *, network, zeta: float = 1.5, q_slope: float | None = None,
        digits: int | None = None, start=None) -> Transform:
    """Solve the DKS transform of ``phi`` for ``network`` (Martens et al. 2021, §4-5).

    Args:
        phi: an Activation, a built-in name or expression text. Leaky ReLU must leave its
            ``negative_slope`` free (DKS solves it); other parameters must be fixed.
        network: a network (:func:`~kernelshape.networks.mlp`, ``resnet``, ...) or a
            ``dks``-style ``subnet_max_func(x, r_fn)``.
        zeta: the global slope target ``max_f C_f'(1)``, ``> 1``.
        q_slope: the local Q'(1) target, ``> 0`` (default 1). ReLU drops the Q'(1)
            condition (as ``dks`` does), so a q_slope other than 1 given for ReLU is an
            error.
        digits: None for float64 (residuals about 1e-15); N in [16, 200] solves in mpmath to N
            digits (residuals below 10^-(N-5)).
        start: optional ``(input_scale, input_shift)`` tried before the default starts,
            to pick one of several solutions (selu has two on most networks; see
            docs/coming-from-dks.md). If Newton does not converge from it, the default
            starts follow. Not for the ReLU family, whose search is one-dimensional.

    Returns:
        A :class:`~kernelshape.transforms.result.Transform` with ``dks``-named params,
        targets ``zeta``, ``q_slope``, ``xi`` and residuals of every local condition,
        re-evaluated from the final parameters.

    Raises:
        TransformError: bad zeta / q_slope / start, leaky ReLU with a fixed slope, a
            start for the ReLU family, q_slope for ReLU.
        UnreachableTargetError: linear activations; targets no parameters reach (names the
            condition and the closest value).
        FreeParameterError: free parameters DKS does not solve.

    Example:
        >>> from kernelshape.networks import mlp
        >>> t = dks("tanh", network=mlp(10), zeta=1.5)
        >>> round(t.targets["xi"], 12) == round(1.5 ** 0.1, 12), t.max_residual < 1e-13
        (True, True)
    """
    zeta = cm.check_real("zeta", zeta, low=1.0)
    q_slope_given = q_slope is not None
    q_slope = cm.check_real("q_slope", 1.0 if q_slope is None else q_slope, low=0.0)
    digits = cm.check_digits(digits)
    net = cm.network_of(network)
    act = cm.as_activation(phi)
    leaky = cm.info(act)["leaky"]
    act = cm.check_activation(act, "DKS", solvable=("negative_slope",) if leaky else ())
    if leaky and "negative_slope" not in act.free:
        raise TransformError(
            "DKS solves the negative slope of leaky ReLU; leave it free "
            "(activation('leaky_relu')) instead of fixing it to "
            f"{act.values.get('negative_slope')!r}")
    if not leaky:
        cm.check_not_linear(act, "DKS")
        if 0 in cm.info(act)["kink_orders"]:
            raise TransformError(
                f"DKS: {act.expr} jumps at {[k.location for k in act.kinks if k.order == 0]}; "
                "C'(1) is infinite for discontinuous activations")
    if start is not None:
        if leaky or cm.info(act)["relu"]:
            raise TransformError("DKS: start= is for activations whose input scale and "
                                 "shift are both solved, not the ReLU family")
        start = cm.check_start("DKS", start, ("input_scale", "input_shift"))
    # the exact target at the requested precision (an mpf with digits); the float64
    # stages solve for its rounding, the mpmath polish for the target itself
    xi = local_slope(net, zeta, digits)
    targets = {"zeta": zeta, "q_slope": q_slope, "xi": xi}
    if leaky:
        params = solve_leaky_dks(q_slope, xi, digits)
        residuals = leaky_residuals(params, {"Q(1)": 1.0, "Q'(1)": q_slope, "C(0)": 0.0,
                                             "C'(1)": xi}, digits)
    elif cm.info(act)["relu"]:
        # q_slope = 1 (the default, which the CLI passes explicitly) asks for nothing
        if q_slope_given and q_slope != 1.0:
            raise TransformError(
                f"DKS with ReLU drops the Q'(1) condition (its input shift is fixed at +-1), "
                f"so q_slope={q_slope!r} would be ignored; leave it out, or use leaky ReLU")
        warnings.warn("DKS with ReLU is highly discouraged (input_shift is fixed and the "
                      "Q'(1) condition dropped); leaky ReLU is recommended instead",
                      ReluWarning, stacklevel=2)
        if digits:
            from ._precise import announce
            announce("DKS", act, digits)
        moments = cm.FrameMemo(cm.moments_of(act))
        params, level = _solve_relu(act, xi, digits, moments)
        targets = {"zeta": zeta, "xi": xi}
        residuals = _residuals(act, params, {"Q(1)": 1.0, "C(0)": 0.0, "C'(1)": xi}, digits,
                               level, moments)
    else:
        if digits:
            from ._precise import announce
            announce("DKS", act, digits)
        moments = cm.FrameMemo(cm.moments_of(act))
        params, level = _solve_smooth(act, q_slope, xi, digits, start, moments)
        residuals = _residuals(act, params, {"Q(1)": 1.0, "Q'(1)": q_slope, "C(0)": 0.0,
                                             "C'(1)": xi}, digits, level, moments)
    return Transform(method="dks", base=act, params=params, targets=targets,
                     network=repr(net), residuals=residuals, digits=digits)


# dks's starting values (input_scale 1, 0.1; input_shift 0, 1, -1), small input scale first.
_STARTS = [(a, b) for a in (0.1, 1.0) for b in (0.0, 1.0, -1.0)]


def _solve_smooth(act, q_slope, xi, digits, start=None, moments=None):
    moments = moments if moments is not None else cm.moments_of(act)
    maps = cm.LastCall(functools.partial(local_maps, moments))
    center = cm.info(act)["odd_center"]
    starts = [start, *_STARTS] if start is not None else _STARTS
    xi_f = float(xi)
    tries = (_converge(maps, x0, (q_slope, xi_f)) for x0 in starts
             # phi odd about (0, c): F is even in beta, its Jacobian singular at beta = 0
             # (a start the caller gave is tried all the same)
             if center is None or x0[1] != 0.0 or x0 is start)
    a, b, mean, gamma, level = _first_solution(
        act, moments, maps, tries, ("Q'(1)", "C'(1)"), (q_slope, xi_f),
        fold_shift=center is not None)
    params = {"input_scale": a, "input_shift": b, "output_shift": -mean, "output_scale": gamma}
    if digits:
        from ._precise import polish_dks
        params = polish_dks(act, params, q_slope, xi, digits,
                            fun_float=lambda a, b: maps(a, b, level=level)[1])
    return params, level


def _solve_relu(act, xi, digits, moments=None):
    moments = moments if moments is not None else cm.moments_of(act)
    maps = cm.LastCall(functools.partial(local_maps, moments))
    xi_f = float(xi)
    b = 1.0 if xi_f < RELU_SHIFT_LIMIT else -1.0
    runs = (_converge(maps, [a0], (1.0, xi_f), fixed_b=b) for a0 in (1.0, 0.1))
    tries = (([x[0], b], F, ok, level) for x, F, ok, level in runs)
    a, b, mean, gamma, level = _first_solution(act, moments, maps, tries, ("C'(1)",),
                                               (xi_f,), fold_shift=False)
    delta = -mean
    if digits:
        from ._precise import output_params, polish_relu
        a = polish_relu(act, a, b, xi, digits)
        import mpmath
        b = mpmath.mpf(b)
        delta, gamma = output_params(act, a, b, digits)
    return {"input_shift": b, "input_scale": a, "output_shift": delta,
            "output_scale": gamma}, level


def _first_solution(act, moments, maps, tries, names, targets, *, fold_shift):
    """The first converged try ``(x, F, ok, level)`` with a representable output scale, as
    ``(a, b, mean, gamma, level)``; else the degenerate-solution or unreachable-target error
    (reporting the try with the smallest residual). ``x = [a, b]`` up to the sign of ``a``
    (and of ``b`` with ``fold_shift``: phi odd about a point)."""
    best, degenerate = None, []
    for x, F, ok, level in tries:
        if F is not None and (best is None or max(map(abs, F)) < max(map(abs, best[1]))):
            best = (x, F)
        if ok:
            a, b = abs(float(x[0])), (abs(x[1]) if fold_shift else x[1])
            mean, V = maps(a, b, level=level)[2]
            gamma = cm.output_scale(a * a * V)
            if gamma is not None:
                return a, b, mean, gamma, level
            degenerate.append((a, b))
    if degenerate:
        cm.raise_degenerate(f"DKS for {act.expr}", degenerate)
    _fail(act, moments, best, names, targets)


def _fail(act, moments, best, names, targets):
    """UnreachableTargetError naming the worst condition and its value at the reported
    parameters, evaluated there (``target + F`` would cancel for huge targets)."""
    at = None
    if best is not None:
        out = local_maps(moments, best[0][0], best[0][1])
        if out is not None:
            a = best[0][0]
            mean, V = out[2]
            # the full parameter set, so the reported value can be reproduced
            at = ([*best[0], -mean, 1.0 / math.sqrt(a * a * V)], best[1])
            values = dict(zip(("Q'(1)", "C'(1)"), out[0]))
    cm.raise_stalled(f"DKS for {act.expr}", names, targets, at or best,
                     ("input_scale", "input_shift", "output_shift", "output_scale"),
                     values=(lambda x: [values[n] for n in names]) if at else None)


def _residuals(act, params, conditions, digits, level, moments=None):
    if digits:
        from ._precise import residuals_mp
        return residuals_mp(act, params, conditions, digits)
    return residuals_float(act, params, conditions, level=level, moments=moments)


def residuals_float(act, params, conditions, *, level=None, moments=None):
    """Float64 evaluation of the local maps of the transformed activation, afresh from the
    final parameters.

    With ``e = phi(b) + output_shift`` and ``v = e / a + u`` (``u`` the difference quotient
    of :meth:`~kernelshape.maps.gauss.Moments.frame`), ``phi_hat = g a v`` and

        Q(1) = g^2 a^2 E[v^2],   Q'(1) = g^2 a^2 E[v phi' z],   C(0) = (g a E[v])^2 / Q(1),
        C'(1) = E[phi'^2] / E[v^2],   C''(1) = a^2 E[phi''^2] / E[v^2],

    with no cancellation for small input scales. ``level``: the panel level the solver
    accepted; None refines from level 0 until the embedded rule agrees. ``moments``: the
    solver's (a :class:`~._common.FrameMemo` holds the frame of its last step).
    """
    a, b = params.get("input_scale", 1.0), params.get("input_shift", 0.0)
    d, g = params["output_shift"], params["output_scale"]
    moments = moments if moments is not None else cm.moments_of(act)

    def maps(lev, coarse=False):
        fr = moments.frame(a, b, level=lev, coarse=coarse)
        v = (fr.pb + d) / a + fr.u
        vw = v * fr.w
        # numpy scalars: a zero or overflowing value gives inf/nan, never an exception
        S, m, n1 = v @ vw, vw.sum(), vw @ (fr.f1 * fr.z)
        ga2 = np.float64(g) ** 2 * a * a
        q1 = ga2 * S
        return {"Q(1)": q1, "Q'(1)": ga2 * n1, "C(0)": ga2 * m * m / q1,
                "C'(1)": (fr.f1 @ (fr.f1 * fr.w)) / S,
                "C''(1)": a * a * (fr.f2 @ (fr.f2 * fr.w)) / S}

    with np.errstate(all="ignore"):
        if level is None:
            for lev in range(cm.MAX_LEVEL + 1):
                values, coarse = maps(lev), maps(lev, coarse=True)
                names = list(conditions)
                if cm.rule_agrees([values[k] for k in names], [coarse[k] for k in names],
                                  [1.0 + abs(values[k]) for k in names]):
                    break
        else:
            values = maps(level)
    return tuple(Residual(name, float(target), float(values[name]))
                 for name, target in conditions.items())
