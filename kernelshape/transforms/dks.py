"""Deep Kernel Shaping (Martens et al. 2021, arXiv 2110.01765; THEORY.md §4).

The transformed activation is ``phi_hat(x) = gamma * (phi(alpha x + beta) + delta)``
(``dks`` names: input_scale, input_shift, output_shift, output_scale). Every nonlinear layer
gets, at q = 1,

    Q(1) = 1,   Q'(1) = q_slope,   C(0) = 0,   C'(1) = xi,   with mu(xi) = zeta,

``mu`` the network's maximal slope function. Given ``(alpha, beta)``, ``delta = -E[phi]`` and
``gamma = Var[phi]^(-1/2)`` (``x = alpha z + beta``); the Q'(1) and C'(1) conditions fix
``(alpha, beta)``, solved by damped Newton with an analytic Jacobian from the starting values
``dks`` uses (input_scale 0.1 then 1; input_shift 0, 1, -1); the first converged start wins.
Results are canonical: ``alpha > 0`` (the maps are even in alpha) and, for phi odd about
``(0, c)``, ``beta >= 0`` (``(beta, delta) -> (-beta, -2c - delta)`` keeps the maps). Special cases as in
``dks``: ReLU keeps ``input_shift = +-1`` and drops the Q'(1) condition; leaky ReLU solves the
negative slope and input shift (input scale 1).
"""

from __future__ import annotations

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


# Rows (e0, e1, e2, ez) of E[(phi+s)^e0 phi'^e1 phi''^e2 z^ez]; see _common.Moments.
_ROWS = [(1, 0, 0, 0), (1, 0, 0, 1), (1, 0, 0, 2),
         (2, 0, 0, 0), (2, 0, 0, 1), (2, 0, 0, 2),
         (1, 1, 0, 0), (1, 1, 0, 1), (1, 1, 0, 2), (1, 1, 0, 3),
         (0, 1, 0, 0), (0, 1, 0, 1), (0, 1, 0, 2), (0, 1, 0, 3),
         (0, 2, 0, 0), (0, 2, 0, 1), (0, 2, 0, 2)]
_TERMS, _I = cm.terms_array(_ROWS)


def _dks_system(moments, q_slope, xi, shift, use_q_slope=True, fixed_b=None):
    """``fun(x) -> (F, J)`` for Newton; ``shift`` (a one-element list) tracks -E[phi]."""

    def fun(x):
        a, b = (x[0], fixed_b) if fixed_b is not None else (x[0], x[1])
        if not (math.isfinite(a) and math.isfinite(b)) or a == 0.0 or abs(a) > cm.MAX_SCALE:
            return None, None
        E = moments(_TERMS, a, b, shift[0], check=False)
        if not np.all(np.isfinite(E)):
            return None, None
        g = lambda *row: E[_I[row]]
        mu = g(1, 0, 0, 0)
        V = g(2, 0, 0, 0) - mu * mu
        if not V > 0:
            return None, None
        shift[0] -= mu
        da = lambda row, k: (g(*row, k + 2) - (k + 1) * g(*row, k)) / a
        db = lambda row, k: (g(*row, k + 1) - (k * g(*row, k - 1) if k else 0.0)) / a
        P0, P00, P01, P1, P11 = (1, 0, 0), (2, 0, 0), (1, 1, 0), (0, 1, 0), (0, 2, 0)
        dmu = np.array([da(P0, 0), db(P0, 0)])
        dV = np.array([da(P00, 0), db(P00, 0)]) - 2 * mu * dmu
        N = g(*P01, 1) - mu * g(*P1, 1)
        dN = (np.array([da(P01, 1), db(P01, 1)]) - dmu * g(*P1, 1)
              - mu * np.array([da(P1, 1), db(P1, 1)]))
        e11 = g(*P11, 0)
        d11 = np.array([da(P11, 0), db(P11, 0)])
        ea = np.array([1.0, 0.0])
        Fq = a * N / V - q_slope
        Jq = (ea * N + a * dN) / V - a * N * dV / V**2
        Fc = a * a * e11 / V - xi
        Jc = (2 * a * ea * e11 + a * a * d11) / V - a * a * e11 * dV / V**2
        if fixed_b is not None:
            return np.array([Fc]), np.array([[Jc[0]]])
        if not use_q_slope:
            return np.array([Fc]), np.array([[Jc[0]]])
        return np.array([Fq, Fc]), np.array([Jq, Jc])
    return fun


def _output_params(moments, a, b, s):
    E = moments(_TERMS[[0, 3]], a, b, s)
    mu, V = E[0], E[1] - E[0] ** 2
    return float(s - mu), float(1.0 / math.sqrt(V))


def dks(phi, *, network, zeta: float = 1.5, q_slope: float = 1.0,
        digits: int | None = None) -> Transform:
    """Solve the DKS transform of ``phi`` for ``network`` (Martens et al. 2021, §4-5).

    Args:
        phi: an Activation, a built-in name or expression text. Leaky ReLU must leave its
            ``negative_slope`` free (DKS solves it); other parameters must be fixed.
        network: a network (:func:`~kernelshape.networks.mlp`, ``resnet``, ...) or a
            ``dks``-style ``subnet_max_func(x, r_fn)``.
        zeta: the global slope target ``max_f C_f'(1)``, ``> 1``.
        q_slope: the local Q'(1) target, ``> 0`` (ignored for ReLU, as in ``dks``).
        digits: None for float64 (residuals about 1e-15); N >= 16 solves in mpmath to N
            digits (residuals below 10^-(N-5)).

    Returns:
        A :class:`~kernelshape.transforms.result.Transform` with ``dks``-named params,
        targets ``zeta``, ``q_slope``, ``xi`` and residuals of every local condition,
        re-evaluated from the final parameters.

    Raises:
        TransformError: bad zeta / q_slope, leaky ReLU with a fixed slope.
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
    q_slope = cm.check_real("q_slope", q_slope, low=0.0)
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
    xi = local_slope(net, zeta)
    targets = {"zeta": zeta, "q_slope": q_slope, "xi": xi}
    if leaky:
        params = solve_leaky_dks(q_slope, xi, digits)
        residuals = leaky_residuals(params, {"Q(1)": 1.0, "Q'(1)": q_slope, "C(0)": 0.0,
                                             "C'(1)": xi}, digits)
    elif cm.info(act)["relu"]:
        warnings.warn("DKS with ReLU is highly discouraged (input_shift is fixed and the "
                      "Q'(1) condition dropped); leaky ReLU is recommended instead",
                      ReluWarning, stacklevel=2)
        params = _solve_relu(act, xi, digits)
        targets = {"zeta": zeta, "xi": xi}
        residuals = _residuals(act, params, {"Q(1)": 1.0, "C(0)": 0.0, "C'(1)": xi}, digits)
    else:
        params = _solve_smooth(act, q_slope, xi, digits)
        residuals = _residuals(act, params, {"Q(1)": 1.0, "Q'(1)": q_slope, "C(0)": 0.0,
                                             "C'(1)": xi}, digits)
    return Transform(method="dks", base=act, params=params, targets=targets,
                     network=repr(net), residuals=residuals, digits=digits)


# dks's starting values (input_scale 1, 0.1; input_shift 0, 1, -1), small input scale first.
_STARTS = [(a, b) for a in (0.1, 1.0) for b in (0.0, 1.0, -1.0)]


def _solve_smooth(act, q_slope, xi, digits):
    moments = cm.Moments(act)
    center = cm.info(act)["odd_center"]
    best = None
    for start in _STARTS:
        if center is not None and start[1] == 0.0:
            continue  # phi odd about (0, c): F is even in beta, its Jacobian singular here
        shift = [0.0]
        fun = _dks_system(moments, q_slope, xi, shift)
        E0 = moments(_TERMS[:1], start[0], start[1], 0.0, check=False)
        shift[0] = -E0[0]
        x, F, ok = cm.newton(fun, start)
        if F is not None and (best is None or np.max(np.abs(F)) < np.max(np.abs(best[1]))):
            best = (x, F)
        if ok:
            a, b = float(x[0]), float(x[1])
            break
    else:
        _fail(act, best, ("Q'(1)", "C'(1)"), (q_slope, xi))
    a, b = abs(a), (abs(b) if center is not None else b)
    delta, gamma = _output_params(moments, a, b, -moments(_TERMS[:1], a, b, 0.0)[0])
    params = {"input_scale": a, "input_shift": b, "output_shift": delta, "output_scale": gamma}
    if digits:
        from ._precise import polish_dks
        params = polish_dks(act, params, q_slope, xi, digits, fun_float=_float_jacobian(
            moments, q_slope, xi))
    return params


def _float_jacobian(moments, q_slope, xi):
    def jac(a, b):
        shift = [-moments(_TERMS[:1], a, b, 0.0)[0]]
        return _dks_system(moments, q_slope, xi, shift)(np.array([a, b]))[1]
    return jac


def _solve_relu(act, xi, digits):
    moments = cm.Moments(act)
    b = 1.0 if xi < RELU_SHIFT_LIMIT else -1.0
    best = None
    for a0 in (1.0, 0.1):
        shift = [-moments(_TERMS[:1], a0, b, 0.0)[0]]
        fun = _dks_system(moments, 1.0, xi, shift, fixed_b=b)
        x, F, ok = cm.newton(fun, [a0])
        if F is not None and (best is None or abs(F[0]) < abs(best[1][0])):
            best = (np.array([x[0], b]), F)
        if ok:
            break
    else:
        _fail(act, best, ("C'(1)",), (xi,))
    a = abs(float(x[0]))
    if digits:
        from ._precise import polish_relu
        a = polish_relu(act, a, b, xi, digits)
        import mpmath
        b = mpmath.mpf(b)
    delta, gamma = _relu_output(act, moments, a, b, digits)
    return {"input_shift": b, "input_scale": a, "output_shift": delta, "output_scale": gamma}


def _relu_output(act, moments, a, b, digits):
    if digits:
        from ._precise import output_params
        return output_params(act, a, b, digits)
    return _output_params(moments, a, b, -moments(_TERMS[:1], a, b, 0.0)[0])


def _fail(act, best, names, targets):
    cm.raise_stalled(f"DKS for {act.expr}", names, targets, best,
                     ("input_scale", "input_shift"))


def _residuals(act, params, conditions, digits):
    if digits:
        from ._precise import residuals_mp
        return residuals_mp(act, params, conditions, digits)
    return residuals_float(act, params, conditions)


_RES_ROWS, _RI = cm.terms_array([(2, 0, 0, 0), (1, 1, 0, 1), (1, 0, 0, 0), (0, 2, 0, 0),
                                 (0, 0, 2, 0)])


def residuals_float(act, params, conditions):
    """Independent float64 evaluation of the local maps of the transformed activation."""
    a, b = params.get("input_scale", 1.0), params.get("input_shift", 0.0)
    d, g = params["output_shift"], params["output_scale"]
    E = cm.Moments(act)(_RES_ROWS, a, b, d)
    q1 = g * g * E[0]
    values = {"Q(1)": q1, "Q'(1)": g * g * a * E[1], "C(0)": (g * E[2]) ** 2 / q1,
              "C'(1)": g * g * a * a * E[3] / q1, "C''(1)": g * g * a**4 * E[4] / q1}
    return tuple(Residual(name, float(target), float(values[name]))
                 for name, target in conditions.items())

