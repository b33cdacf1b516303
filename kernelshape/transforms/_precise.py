"""The ``digits=N`` route: Newton polishing of a float64 solution in mpmath.

The float64 solve gives a point within about 1e-15 of the root and a Jacobian accurate to
many digits; each mpmath Newton step with that fixed Jacobian then gains about 13 digits
(the iteration contracts by the Jacobian's relative error). Expectations come from
:func:`kernelshape.maps.precise.expect` at ``digits + 8`` digits inside ``mpmath.workdps``.
"""

from __future__ import annotations

import logging
import sys

import mpmath

from ..errors import ConvergenceError
from .result import Residual

_GUARD = 8

logger = logging.getLogger("kernelshape.transforms")

#: Most digits a DKS / TAT solve accepts: the mpmath quadrature's cost grows like
#: ``digits^2.2`` (tanh on mlp(50), one core: 11 s at 40 digits, 39 s at 80, 193 s at 160),
#: so 200 digits is ~5 minutes and 5000 would take days.
MAX_DIGITS = 200
#: Seconds of expected work above which the solve shows a progress bar on stderr, and
#: above which its expected cost is logged as a warning (else at INFO level).
PROGRESS_AFTER = 5.0
WARN_AFTER = 30.0


def expected_seconds(digits):
    """Rough wall time of one quadrature-backed DKS / TAT solve at ``digits`` (fitted to
    tanh on mlp(50) on one core; kinks and steep activations cost more)."""
    return 0.0025 * digits ** 2.2


def announce(method, act, digits):
    """Log the expected cost of a ``digits`` solve before it starts."""
    est = expected_seconds(digits)
    text = (f"{method} for {act.expr} at {digits} digits: expected about "
            f"{_duration(est)} (mpmath quadrature, cost ~ digits^2.2; limit "
            f"{MAX_DIGITS} digits)")
    (logger.warning if est >= WARN_AFTER else logger.info)(text)


def _duration(seconds):
    for unit, size in (("days", 172800), ("h", 7200), ("min", 120)):
        if seconds >= size:
            return f"{seconds / (size / 2):.0f} {unit}"
    return f"{seconds:.0f} s"


def _progress(what, digits, total):
    """A tqdm bar on stderr for long polishing (shown when the expected cost is at least
    PROGRESS_AFTER seconds, terminal or not, so logs of batch runs show it too)."""
    from tqdm import tqdm
    return tqdm(total=total, desc=f"{what} polish, {digits} digits", unit="Newton step",
                file=sys.stderr, disable=expected_seconds(digits) < PROGRESS_AFTER,
                leave=False)


def _expect(act, terms, a, b, digits):
    from ..maps.precise import expect
    return expect(act, terms, a, b, digits + _GUARD)


# m1, m2, E[phi phi' z], E[phi' z], E[phi'^2], E[phi''^2]
_TERMS = [(0, -1, 0), (0, 0, 0), (0, 1, 1), (1, -1, 1), (1, 1, 0), (2, 2, 0)]


def _newton(fun, x, jac, digits, what):
    tol = mpmath.mpf(10) ** -(digits + 2)
    J = mpmath.matrix([[mpmath.mpf(float(v)) for v in row] for row in jac])
    steps = 3 + digits // 10
    with _progress(what, digits, steps + 1) as bar:
        for _ in range(steps):
            F = fun(x)
            bar.update()
            if max(abs(f) for f in F) <= tol:
                return x
            step = mpmath.lu_solve(J, -mpmath.matrix(F))
            x = [xi + step[i] for i, xi in enumerate(x)]
        F = fun(x)
        bar.update()
    if max(abs(f) for f in F) <= mpmath.mpf(10) ** -(digits - 3):
        return x
    raise ConvergenceError(f"{what}: mpmath polishing did not reach {digits} digits "
                           f"(residuals {[mpmath.nstr(f, 5) for f in F]})")


def polish_dks(act, params, q_slope, xi, digits, fun_float):
    a0, b0 = params["input_scale"], params["input_shift"]
    with mpmath.workdps(digits + _GUARD + 5):
        def fun(x):
            m1, m2, ppz, p1z, p11 = _expect(act, _TERMS[:5], x[0], x[1], digits)
            V = m2 - m1 * m1
            return [x[0] * (ppz - m1 * p1z) / V - q_slope, x[0] ** 2 * p11 / V - xi]
        a, b = _newton(fun, [mpmath.mpf(a0), mpmath.mpf(b0)], fun_float(a0, b0), digits, "DKS")
        d, g = output_params(act, a, b, digits)
        return {"input_scale": +a, "input_shift": +b, "output_shift": d, "output_scale": g}


def polish_relu(act, a0, b, xi, digits):
    with mpmath.workdps(digits + _GUARD + 5):
        def fun(x):
            m1, m2, p11 = _expect(act, [_TERMS[0], _TERMS[1], _TERMS[4]], x[0], b, digits)
            return [x[0] ** 2 * p11 / (m2 - m1 * m1) - xi]
        h = 1e-7 * a0
        f = lambda v: float(fun([mpmath.mpf(v)])[0])
        jac = [[(f(a0 + h) - f(a0 - h)) / (2 * h)]]
        return +_newton(fun, [mpmath.mpf(a0)], jac, digits, "DKS ReLU")[0]


def output_params(act, a, b, digits):
    """``(delta, gamma) = (-E[phi], Var[phi]^(-1/2))`` in mpmath."""
    with mpmath.workdps(digits + _GUARD + 5):
        m1, m2 = _expect(act, _TERMS[:2], a, b, digits)
        return -m1, 1 / mpmath.sqrt(m2 - m1 * m1)


def polish_tat(act, params, tau_local, digits, jac_float):
    a0, b0, d0 = (params[k] for k in ("input_scale", "input_shift", "output_shift"))
    with mpmath.workdps(digits + _GUARD + 5):
        def fun(x):
            a, b, d = x
            m1, m2, ppz, p1z, p11, p22 = _expect(act, _TERMS, a, b, digits)
            S = m2 + 2 * d * m1 + d * d
            return [a * (ppz + d * p1z) / S - 1, a * a * p11 / S - 1,
                    a**4 * p22 / S - tau_local]
        a, b, d = _newton(fun, [mpmath.mpf(v) for v in (a0, b0, d0)], jac_float(a0, b0, d0),
                          digits, "TAT")
        m1, m2 = _expect(act, _TERMS[:2], a, b, digits)
        g = 1 / mpmath.sqrt(m2 + 2 * d * m1 + d * d)
        return {"input_scale": +a, "input_shift": +b, "output_shift": +d, "output_scale": +g}


def polish_leaky_tat(net, a0, eta, digits):
    from ._targets import leaky_relu_c, leaky_relu_c_mp
    with mpmath.workdps(digits + _GUARD + 5):
        def fun(x):
            return [net.subnet_max(mpmath.mpf(0), lambda c: leaky_relu_c_mp(c, x[0])) - eta]
        h = 1e-7
        f = lambda v: net.subnet_max(0.0, lambda c: leaky_relu_c(c, v))
        jac = [[(f(a0 + h) - f(a0 - h)) / (2 * h)]]
        return +_newton(fun, [mpmath.mpf(a0)], jac, digits, "TAT leaky ReLU")[0]


def residuals_mp(act, params, conditions, digits):
    """Local conditions re-evaluated in mpmath from the final parameters."""
    with mpmath.workdps(digits + _GUARD + 5):
        a, b = params.get("input_scale", 1), params.get("input_shift", 0)
        d, g = mpmath.mpf(params["output_shift"]), mpmath.mpf(params["output_scale"])
        m1, m2, ppz, p1z, p11, p22 = _expect(act, _TERMS, a, b, digits)
        a = mpmath.mpf(a)
        q1 = g * g * (m2 + 2 * d * m1 + d * d)
        values = {"Q(1)": q1, "Q'(1)": g * g * a * (ppz + d * p1z),
                  "C(0)": g * g * (m1 + d) ** 2 / q1, "C'(1)": g * g * a * a * p11 / q1,
                  "C''(1)": g * g * a**4 * p22 / q1}
        return tuple(Residual(name, target, +values[name]) for name, target in conditions.items())
