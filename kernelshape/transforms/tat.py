"""Tailored Activation Transformations (Zhang, Botev & Martens 2022, arXiv 2203.08120;
THEORY.md §5).

* Smooth activations: ``phi_hat(x) = gamma (phi(alpha x + beta) + delta)`` with, at q = 1,

      Q(1) = 1,   Q'(1) = 1,   C'(1) = 1,   C''(1) = tau_local,

  ``tau_local`` solving ``M_{f, y -> t + y}(0) = tau`` (the maximal curvature function).
  ``gamma`` follows from Q(1) = 1. Several branches of solutions exist for some
  activations (asinh, softsign, elu, ...); to return the one ``dks`` returns,
  ``(alpha, beta, delta)`` are searched as ``dks`` searches them: MINPACK's hybrid Powell
  method (``scipy.optimize.root(method="hybr")``, with the analytic Jacobian) from dks's
  starting values in its order, rejecting ``alpha * gamma >= 2`` (unstable Q maps); the
  first success is polished by damped Newton to float64 precision. Where phi''^2 jumps
  (elu), dks's own quadrature error steers its search, so that search is rerun on dks's
  rule (:mod:`._dks_rule`) to pick the branch before polishing. If that finds nothing,
  a Newton multi-start from the same values decides (or names the closest value reached).
  The conditions are ratios of moments of order one (:func:`local_maps`) in the unknowns
  ``(alpha, beta, e = phi(beta) + delta)``, so small ``tau`` (``alpha -> 0``, where
  ``phi + delta ~ alpha``) keeps full precision.
* Leaky ReLU: ``phi_hat = sqrt(2 / (1 + a^2)) LReLU_a`` with ``a`` solving
  ``M_{f, C_a}(0) = eta``.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from ..errors import TransformError, UnreachableTargetError
from . import _common as cm
from ._leaky import leaky_residuals
from ._targets import local_curvature, tat_negative_slope
from .dks import residuals_float
from .result import Transform

__all__ = ["tat"]

#: dks's starting points in its order: input_scale (1, 0.1) x input_shift (0, 1, -1) x
#: output_shift (0, 1, -1); then 32 uniform draws after ``np.random.seed(123)`` (dks 0.1.2).
_DKS_STARTS = [*itertools.product((1.0, 0.1), (0.0, 1.0, -1.0), (0.0, 1.0, -1.0))]
#: Fallback Newton multi-start (when hybr finds nothing): the same values, output shifts
#: taken relative to -E[phi(alpha z + beta)] (from raw values Newton stalls where Q(1) is
#: far from 1).
_STARTS = _DKS_STARTS
_NUDGE = 0.1
#: Newton steps are taken in (input_scale, input_shift, output_shift) while the input scale
#: is at least this, in (input_scale, input_shift, e) below (see :func:`_mover`).
SHIFT_STEPS_ABOVE = 0.01
#: Where phi''^2 jumps, the polished solution must lie this close (relative to
#: ``1 + |value|``) to the point dks's search found on its own quadrature (off by ~1e-5
#: for elu): farther, Newton has left dks's branch.
BRANCH_DISTANCE = 0.02


def local_maps(moments, a, b, e, *, level=0, coarse=False, shift=None, gradients=True):
    r"""``Q'(1)``, ``C'(1)``, ``C''(1)`` at input scale ``a``, input shift ``b`` and output
    shift ``e - phi(b)`` (or ``shift``, given instead of ``e``), output scale from
    Q(1) = 1; their gradients in ``(a, b, e)`` (None without ``gradients``); and
    ``(phi(b), E[v^2], phi'(b))``.

    With ``u = (phi(a z + b) - phi(b)) / a`` (:meth:`~kernelshape.maps.gauss.Moments.frame`)
    and ``v = e / a + u`` (so ``phi + output_shift = a v``), ``S = E[v^2]``:

        Q'(1) = E[v phi' z] / S,   C'(1) = E[phi'^2] / S,   C''(1) = a^2 E[phi''^2] / S,

    ratios of quantities of order one even as ``a -> 0`` (where ``e ~ a^2``). Gradients by
    the chain rule (``d phi'/da = phi'' z``), except those of ``E[phi''^2]``, by the score
    identities ``d/da E[g] = E[g (z^2 - 1)] / a`` and ``d/db E[g] = E[g z] / a`` (no third
    derivative needed; the factor ``a^2`` keeps them accurate as ``a -> 0``). Returns None
    where a value is not finite.
    """
    if not math.isfinite(a + b + (e if shift is None else shift)) or a == 0.0:
        return None
    fr = moments.frame(a, b, level=level, coarse=coarse, gradients=gradients)
    z, w = fr.z, fr.w
    if shift is not None:   # the output shift given instead of e
        e = fr.pb + shift
    c = e / a
    v = c + fr.u
    if not gradients:
        vw, f1w = v * w, fr.f1 * w
        S, N, e11, e22 = v @ vw, vw @ (fr.f1 * z), fr.f1 @ f1w, fr.f2 @ (fr.f2 * w)
        if not (S > 0 and math.isfinite(S + N + e11 + e22)):
            return None
        return (N / S, e11 / S, a * a * e22 / S), None, (fr.pb, S, fr.p1b)
    f2z = fr.f2 * z
    G = cm.gram([np.ones_like(z), v, fr.f1, fr.f1 * z, fr.ua - c / a, fr.ub, fr.f2, f2z,
                 f2z * z], w)
    S, N, e11, e22 = G[1][1], G[1][3], G[2][2], G[6][6]
    if not (S > 0 and math.isfinite(S + N + e11 + e22 + G[7][7])):
        return None
    dS = (2 * G[1][4], 2 * G[1][5], 2 * G[0][1] / a)
    dN = (G[4][3] + G[1][8], G[5][3] + G[1][7], G[0][3] / a)
    de = (2 * G[2][7], 2 * G[2][6], 0.0)
    a2 = a * a
    d22 = (a * (e22 + G[7][7]), a * G[6][7], 0.0)
    values = (N / S, e11 / S, a2 * e22 / S)
    grads = ([(dN[j] - N * dS[j] / S) / S for j in range(3)],
             [(de[j] - e11 * dS[j] / S) / S for j in range(3)],
             [(d22[j] - a2 * e22 * dS[j] / S) / S for j in range(3)])
    return values, grads, (fr.pb, S, fr.p1b)


def _tat_system(maps, tau_local, level):
    """``fun(x) -> (F, J)`` for Newton, ``x = (a, b, e)``; ``J`` in the coordinates of
    the step (see :func:`_mover`)."""
    targets = (1.0, 1.0, tau_local)

    def fun(x):
        a, b, e = x
        if not math.isfinite(a + b + e) or a == 0.0 or abs(a) > cm.MAX_SCALE:
            return None, None
        out = maps(a, b, e, level=level)
        if out is None:
            return None, None
        values, J, (_, _, p1b) = out
        if abs(a) >= SHIFT_STEPS_ABOVE:   # e = phi(b) + d: de/db = phi'(b) at fixed d
            J = [[row[0], row[1] + p1b * row[2], row[2]] for row in J]
        if not math.isfinite(sum(J[0]) + sum(J[1]) + sum(J[2])):
            return None, None
        return [v - t for v, t in zip(values, targets)], J
    return fun


def _mover(moments):
    """Newton steps in ``(a, b, output_shift)`` while ``|a| >= SHIFT_STEPS_ABOVE`` (the path,
    and so the branch found, of a solver in dks's coordinates), the iterate being kept as
    ``(a, b, e = phi(b) + output_shift)``: ``e`` moves by the shift's step plus
    ``phi(b + db) - phi(b)``, computed without cancellation. Below, steps in ``e`` itself:
    as ``a -> 0``, ``phi + output_shift ~ a`` and the b- and shift-columns of the Jacobian
    in dks's coordinates become parallel."""
    def move(x, step, t):
        a, b, e = x
        if abs(a) < SHIFT_STEPS_ABOVE:
            return [a + t * step[0], b + t * step[1], e + t * step[2]]
        db = t * step[1]
        return [a + t * step[0], b + db, e + t * step[2] + moments.difference(b, b + db)]
    return move


def _converge(maps, moments, x, tau_local):
    """Newton from ``x``, then the embedded-rule check at the converged point (refining
    the panels and resuming Newton until the 16- and 24-point rules agree there)."""
    scale = (2.0, 2.0, 1.0 + tau_local)
    level = 0
    while True:
        x, F, ok = cm.newton(_tat_system(maps, tau_local, level), x,
                             move=_mover(moments))
        if not ok or level == cm.MAX_LEVEL:
            return x, F, ok, level
        fine = maps(*x, level=level)
        coarse = maps(*x, level=level, coarse=True)
        if coarse is not None and cm.rule_agrees(fine[0], coarse[0], scale):
            return x, F, ok, level
        level += 1


#: Default targets (the ``dks`` package's): curvature ``tau`` for smooth activations,
#: ``eta`` = M_{f, C_a}(0) for leaky ReLU.
DEFAULT_TAU = 0.3
DEFAULT_ETA = 0.9


def tat(phi, *, network, tau: float | None = None, eta: float | None = None,
        digits: int | None = None, start=None) -> Transform:
    """Solve the TAT transform of ``phi`` for ``network`` (Zhang et al. 2022, §4).

    Smooth activations use ``tau`` (maximal ``C_f''(1)`` over subnetworks); the leaky ReLU
    family (``activation("leaky_relu")``, slope left free) uses ``eta`` (maximal
    ``C_f(0)``).

    Args:
        phi: an Activation, built-in name or expression text.
        network: a network or a ``dks``-style ``subnet_max_func(x, r_fn)``.
        tau: curvature target, ``> 0`` (smooth activations only; default 0.3).
        eta: C(0) target in ``(0, 1)`` (leaky ReLU only; default 0.9). A target given
            for the other kind of activation is an error, never ignored.
        digits: None for float64; N in [16, 200] solves in mpmath to N digits (the cost
            is logged up front, progress shown on stderr for long solves).
        start: optional ``(input_scale, input_shift, output_shift)`` from which Newton is
            tried first (smooth activations), to pick one of several solutions (asinh and
            softsign have several); if it does not converge to an accepted solution, the
            default search follows.

    Returns:
        A :class:`~kernelshape.transforms.result.Transform`; targets hold ``tau`` and
        ``tau_local`` (smooth) or ``eta`` (leaky ReLU).

    Raises:
        TransformError: bad tau / eta / start; tau for leaky ReLU or eta for a smooth
            activation; ReLU (use leaky ReLU); a start for leaky ReLU.
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
        if tau is not None:
            raise TransformError(
                f"TAT for leaky ReLU targets eta (M_(f,C)(0)), not the curvature tau; got "
                f"tau={tau!r}: pass eta=... (default {DEFAULT_ETA}) instead")
        eta = DEFAULT_ETA if eta is None else eta
        if start is not None:
            raise TransformError("TAT: start= is for smooth activations; leaky ReLU's "
                                 "negative slope is found by bisection")
        eta = cm.check_real("eta", eta, low=0.0, high=1.0)
        act = cm.check_activation(act, "TAT", solvable=("negative_slope",))
        if "negative_slope" not in act.free:
            raise TransformError(
                "TAT solves the negative slope of leaky ReLU; leave it free "
                "(activation('leaky_relu')) instead of fixing it to "
                f"{act.values.get('negative_slope')!r}")
        return _tat_leaky(act, net, eta, digits)
    if eta is not None:
        raise TransformError(
            f"TAT targets eta only for leaky ReLU (activation('leaky_relu'), slope left "
            f"free); {act.expr} is solved for the curvature tau, so eta={eta!r} would be "
            f"ignored: pass tau=... (default {DEFAULT_TAU}) instead")
    tau = cm.check_real("tau", DEFAULT_TAU if tau is None else tau, low=0.0)
    act = cm.check_activation(act, "TAT")
    if cm.info(act)["relu"]:
        raise TransformError("TAT does not support ReLU (its C''(1) is infinite); use "
                             "activation('leaky_relu') with eta instead")
    cm.check_not_linear(act, "TAT")
    if any(order <= 1 for order in cm.info(act)["kink_orders"]):
        cm.unsupported_kink(act, "TAT", "C''(1)")
    if start is not None:
        start = cm.check_start("TAT", start, ("input_scale", "input_shift", "output_shift"))
    tau_local = local_curvature(net, tau, digits)   # an mpf with digits
    if digits:
        from ._precise import announce
        announce("TAT", act, digits)
    params, level = _solve_smooth(act, tau_local, digits, start)
    conditions = {"Q(1)": 1.0, "Q'(1)": 1.0, "C'(1)": 1.0, "C''(1)": tau_local}
    if digits:
        from ._precise import residuals_mp
        residuals = residuals_mp(act, params, conditions, digits)
    else:
        residuals = residuals_float(act, params, conditions, level=level)
    return Transform(method="tat", base=act, params=params,
                     targets={"tau": tau, "tau_local": tau_local}, network=repr(net),
                     residuals=residuals, digits=digits)


def _dks_random_starts():
    rng = np.random.RandomState(123)
    return [tuple(rng.uniform(lo, hi) for lo, hi in ((0.0, 2.0), (-3.0, 3.0), (-3.0, 3.0)))
            for _ in range(50 - len(_DKS_STARTS))]


def _hybr_branch(moments, maps, tau_local, center):
    """The solution ``dks`` finds: MINPACK's hybrid Powell method (``scipy.optimize.root``,
    ``method="hybr"``, as dks uses it) from dks's starts in its order, on the same
    conditions in dks's coordinates ``(input_scale, input_shift, output_shift)`` (with the
    analytic Jacobian instead of dks's forward differences); the first success that is
    not rejected (``alpha * gamma >= 2``) is polished by Newton to float64 precision.
    Returns ``(a, b, e, gamma, level)``, or None (then the Newton multi-start decides;
    also without scipy, a branch that may differ from dks's)."""
    try:
        from scipy.optimize import root
    except ImportError:   # pragma: no cover - scipy is installed with kernelshape
        return None

    targets = (1.0, 1.0, tau_local)
    nan3 = np.full(3, np.nan)

    def fun(p):
        a, b, d = (float(v) for v in p)
        if abs(a) > cm.MAX_SCALE:
            return nan3
        out = local_maps(moments, a, b, 0.0, shift=d, gradients=False)
        if out is None:
            return nan3
        return np.array([v - t for v, t in zip(out[0], targets)])

    def jac(p):
        a, b, d = (float(v) for v in p)
        out = local_maps(moments, a, b, 0.0, shift=d) if abs(a) <= cm.MAX_SCALE else None
        if out is None:
            return np.full((3, 3), np.nan)
        p1b = out[2][2]
        return np.array([[r[0], r[1] + p1b * r[2], r[2]] for r in out[1]])

    tried = set()
    for start in itertools.chain(_DKS_STARTS, _dks_random_starts()):
        if center is not None and (start[0], -start[1], -2.0 * center - start[2]) in tried:
            continue   # phi odd about (0, c): the mirror image of a start already tried
        tried.add(start)
        with np.errstate(all="ignore"):
            sol = root(fun, np.array(start), jac=jac, method="hybr")
        if not sol.success:
            continue
        a, b, d = (float(v) for v in sol.x)
        out = local_maps(moments, a, b, 0.0, shift=d, gradients=False)
        if out is None or abs(a) >= 2.0 * math.sqrt(a * a * out[2][1]):
            continue   # dks's rejection: input_scale * output_scale >= 2
        hit = _polish(moments, maps, (a, b, d), tau_local)
        if hit is not None:
            return hit
    return None


def _polish(moments, maps, point, tau_local, *, near=None):
    """Newton on the exact maps from ``point = (alpha, beta, delta)``: ``(a, b, e, gamma,
    level)`` when it converges to a solution with ``|a| gamma < 2`` (and, given ``near``,
    within ``near * (1 + |coordinate|)`` of ``point`` in every coordinate), else None."""
    a0, b0, d0 = point
    x, _, ok, level = _converge(maps, moments, (a0, b0, moments.derivatives(b0)[0] + d0),
                                tau_local)
    if not ok:
        return None
    a, b, e = x
    pb, S, _ = maps(a, b, e, level=level)[2]
    gamma = cm.output_scale(a * a * S)
    if gamma is None or abs(a) * gamma >= 2.0:
        return None
    if near is not None and any(abs(u - v) > near * (1.0 + abs(v))
                                for u, v in zip((a, b, e - pb), point)):
        return None
    return a, b, e, gamma, level


def _steers_dks(act, moments):
    """True where phi''^2 jumps (elu, not softsign, whose phi'' only changes sign): there
    dks's unsplit quadrature misses C''(1) by O(h) ~ 1e-4, enough to change its branch."""
    for kink in act.kinks:
        if kink.order == 2:
            left, jump = moments.derivatives(kink.location)[2], kink.jumps[2]
            if abs(jump * (2.0 * left + jump)) > 1e-12 * (1.0 + left * left):
                return True
    return False


def _emulated_branch(act, moments, maps, tau_local):
    """Where phi''^2 jumps: the branch dks's search reaches on dks's quadrature
    (:mod:`._dks_rule`), polished on the exact maps; None when it finds none."""
    from ._dks_rule import tat_branch

    for point in tat_branch(act, tau_local,
                            itertools.chain(_DKS_STARTS, _dks_random_starts())):
        hit = _polish(moments, maps, point, tau_local, near=BRANCH_DISTANCE)
        if hit is not None:
            return hit
    return None


def _solve_smooth(act, tau_local, digits, first=None):
    tau_mp, tau_local = tau_local, float(tau_local)
    moments = cm.moments_of(act)
    maps = cm.LastCall(functools.partial(local_maps, moments))
    center = cm.info(act)["odd_center"]
    best, found, rejected, degenerate = None, None, [], []
    # the caller's start, then dks's branch (emulated search where phi''^2 jumps, hybr)
    hit = None if first is None else _polish(moments, maps, first, tau_local)
    if hit is None and _steers_dks(act, moments):
        hit = _emulated_branch(act, moments, maps, tau_local)
    if hit is None:
        hit = _hybr_branch(moments, maps, tau_local, center)
    if hit is not None:
        a, b, e, gamma, level = hit
        found = (a, b, e - maps(a, b, e, level=level)[2][0], gamma)
    for start in _STARTS if found is None else ():
        if center is not None and start[1] == 0.0 and start[2] == -center:
            # phi odd about (0, c): the start is a fixed point of the symmetry and J is
            # singular there; nudge beta (the sign is immaterial, results are canonical).
            start = (start[0], _NUDGE, start[2])
        a0, b0, d0 = start
        fr = moments.frame(a0, b0)
        # e = phi(b) + output_shift, d0 taken relative to -E[phi] = -phi(b) - a E[u]
        e0 = d0 - a0 * float(fr.u @ fr.w)
        x, F, ok, level = _converge(maps, moments, (a0, b0, e0), tau_local)
        if F is not None and (best is None or max(map(abs, F)) < max(map(abs, best[1]))):
            best = (x, F)
        if ok:
            a, b, e = x
            pb, S, _ = maps(a, b, e, level=level)[2]
            gamma = cm.output_scale(a * a * S)
            if gamma is None:
                degenerate.append((a, b))
                continue
            if abs(a) * gamma >= 2.0:
                rejected.append((a, b, e - pb, gamma))
                continue
            found = (a, b, e - pb, gamma)
            break
    if found is None:
        if degenerate and not rejected:
            cm.raise_degenerate(f"TAT for {act.expr}", degenerate)
        _fail(act, moments, best, rejected, tau_local)
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
            # from (a, b, e) to (a, b, d): e = phi(b) + d, so de/db = phi'(b)
            pb, p1b, _ = moments.derivatives(bv)
            J = local_maps(moments, av, bv, pb + dv, level=level)[1]
            return [[row[0], row[1] + p1b * row[2], row[2]] for row in J]
        params = polish_tat(act, params, tau_mp, digits, jac)
    return params, level


def _fail(act, moments, best, rejected, tau_local):
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
    out = local_maps(moments, *x)
    # the value at the reported point, computed (target + F cancels for large targets)
    reached = out[0][i] if out is not None else targets[i] + F[i]
    d = x[2] - moments.derivatives(x[1])[0]
    raise UnreachableTargetError(
        f"TAT: the condition {names[i]} = {targets[i]!r} cannot be met for {act.expr}; "
        f"closest value reached {names[i]} = {float(reached)!r} at input_scale="
        f"{float(x[0])!r}, input_shift={float(x[1])!r}, output_shift={float(d)!r}")


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

