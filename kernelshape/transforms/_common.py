"""Shared machinery of the DKS / TAT / EOC solvers: Newton, checks, residuals.

Every local condition is a one-dimensional Gaussian expectation at ``q = 1`` of
``phi(a z + b)`` and its derivatives (THEORY.md §4-5). The solvers read them from one
:meth:`~kernelshape.maps.gauss.Moments.frame` per Newton step: node values of ``phi'``,
``phi''`` and the difference quotient ``u = (phi(a z + b) - phi(b)) / a`` (with its ``a``-
and ``b``-derivatives), from which the conditions are ratios such as
``C'(1) = E[phi'^2] / Var[u]`` that keep their digits as ``a -> 0``, and their Jacobians
follow by the chain rule (``d phi'(a z + b) / da = phi'' z``; the Dirac masses of ``phi''``
at kinks come with the frame). All pairwise expectations of the node arrays are one
matrix product (:func:`gram`). Newton works on plain floats (:func:`solve_small`), and the
embedded quadrature check runs once, at the converged point (:func:`rule_agrees`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import (
    ConvergenceError,
    FreeParameterError,
    TransformError,
    UnreachableTargetError,
    UnsupportedError,
)
from ..maps.gauss import MAX_LEVEL, Moments, moments_of, terms_array  # noqa: F401

#: Largest number of Newton iterations from one starting point.
MAX_NEWTON = 60
#: Give up on a starting point still far from a root after this many iterations.
STALL_AFTER = 12
#: Largest |input_scale| a Newton iterate may reach (dks samples input scales in [0, 2]).
MAX_SCALE = 50.0
#: Largest number of step halvings in one Newton line search.
MAX_HALVINGS = 10


def raise_stalled(what, names, targets, best, coords, *, nothing=None, values=None):
    """Raise UnreachableTargetError for a Newton search that met no condition set.

    Args:
        what: the method and activation, e.g. ``"DKS: ... for tanh(x)"``-style prefix.
        names, targets: the conditions and their target values.
        best: ``(x, F)`` at the smallest ``max|F|`` reached, or None when no start gave a
            point where the maps are defined.
        coords: names of the unknowns in ``x`` (``input_scale``, ``input_shift``, ...).
        nothing: the message when ``best`` is None.
        values: ``values(x)`` -> the conditions' values at ``x``, evaluated afresh for the
            message (``target + F`` cancels when the target dwarfs the value); without it
            ``target + F`` is reported.
    """
    if best is None:
        raise UnreachableTargetError(nothing or (
            f"{what}: no parameters meet {', '.join(names)} = {tuple(targets)}; the solver "
            "found no point where the maps are defined"))
    x, F = best
    i = int(np.argmax(np.abs(F)))
    reached = values(x) if values is not None else [t + f for t, f in zip(targets, F)]
    where = ", ".join(f"{c}={float(v)!r}" for c, v in zip(coords, x))
    raise UnreachableTargetError(
        f"{what}: the condition {names[i]} = {targets[i]!r} cannot be met; from every "
        f"starting point the solver stalls; closest value reached {names[i]} = "
        f"{float(reached[i])!r} at {where}")


def newton(fun, x0, *, tol=1e-15, move=None):
    """Damped Newton from ``x0`` for ``fun(x) -> (F, J)``; deterministic, bounded.

    ``x`` is passed to ``fun`` as a list of floats; ``fun`` returns ``(None, None)`` where
    the maps are undefined. Steps are halved (at most MAX_HALVINGS times) until ``max|F|``
    decreases. Stops when ``max|F| <= tol``, when a step no longer reduces it, or when the
    iterate is still far from a root after STALL_AFTER iterations (Newton converges
    quadratically once close). ``move(x, step, t)`` maps the iterate and a (scaled) step
    to the next iterate when ``x`` is stored in other coordinates than the step's (default
    ``x + t step``).

    Returns:
        ``(x, F, success)`` at the iterate with the smallest ``max|F|``; success means
        ``max|F| <= 1e-12``.
    """
    # Trial points may overflow or divide by zero on the way; fun() maps those to None,
    # so numpy's warnings are noise here, not signals for the caller.
    with np.errstate(all="ignore"):
        return _newton(fun, x0, tol, move)


def _newton(fun, x0, tol, move):
    x = [float(v) for v in x0]
    F, J = fun(x)
    if F is None:
        return x, None, False
    norm = max(abs(f) for f in F)
    for it in range(MAX_NEWTON):
        if norm <= tol:
            break
        if it >= STALL_AFTER and norm > 1e-4:
            break
        step = solve_small(J, [-f for f in F])
        if step is None:
            break
        t = 1.0
        for _ in range(MAX_HALVINGS):
            x_new = (move(x, step, t) if move is not None
                     else [xi + t * si for xi, si in zip(x, step)])
            F_new, J_new = fun(x_new)
            if F_new is not None and max(abs(f) for f in F_new) < norm:
                break
            t *= 0.5
        else:
            break
        x, F, J, norm = x_new, F_new, J_new, max(abs(f) for f in F_new)
    return x, F, norm <= 1e-12


def solve_small(J, rhs):
    """``J^-1 rhs`` for a small dense system by Gaussian elimination with partial
    pivoting in plain floats (no LAPACK call per Newton step); None if singular or not
    finite."""
    n = len(rhs)
    M = [[float(v) for v in row] + [float(r)] for row, r in zip(J, rhs)]
    for col in range(n):
        piv = col
        for r in range(col + 1, n):
            if abs(M[r][col]) > abs(M[piv][col]):
                piv = r
        p = M[piv][col]
        if p == 0.0 or not math.isfinite(p):
            return None
        M[col], M[piv] = M[piv], M[col]
        top = M[col]
        for r in range(col + 1, n):
            f = M[r][col] / p
            if f != 0.0:
                row = M[r]
                for c in range(col, n + 1):
                    row[c] -= f * top[c]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        acc = M[r][n]
        for c in range(r + 1, n):
            acc -= M[r][c] * out[c]
        out[r] = acc / M[r][r]
    return out if math.isfinite(sum(out)) else None


class LastCall:
    """``fn`` remembering its two most recent calls (one solve's object: the converged
    Newton iterate is evaluated once for the step test, the rule check and the output)."""

    def __init__(self, fn):
        self.fn, self.memo = fn, {}

    def __call__(self, *args, **kwargs):
        key = (args, tuple(kwargs.items()))
        if key not in self.memo:
            if len(self.memo) >= 2:
                del self.memo[next(iter(self.memo))]
            self.memo[key] = self.fn(*args, **kwargs)
        return self.memo[key]


class FrameMemo:
    """A :class:`~kernelshape.maps.gauss.Moments` whose ``frame`` remembers its three most
    recent results (one solve's object): the residuals, re-evaluated at the solution,
    reuse the frame the last Newton step computed there instead of recomputing the same
    numbers. Other attributes are the wrapped object's."""

    def __init__(self, moments):
        self.moments, self.memo = moments, {}

    def frame(self, a, b, *, level=0, coarse=False, gradients=True):
        key = (a, b, level, coarse, gradients)
        fr = self.memo.get(key)
        if fr is None:
            if len(self.memo) >= 3:
                del self.memo[next(iter(self.memo))]
            fr = self.memo[key] = self.moments.frame(a, b, level=level, coarse=coarse,
                                                      gradients=gradients)
        return fr

    def __getattr__(self, name):
        return getattr(self.moments, name)


def output_scale(q):
    """``q^(-1/2)``, the output scale making the second moment ``q`` one, or None when it
    or its square is not a finite float64 (``q`` underflowed: a degenerate solution)."""
    if q > 0 and math.isfinite(q):
        g = 1.0 / math.sqrt(q)
        if math.isfinite(g * g):
            return g
    return None


def raise_degenerate(what, points):
    """ConvergenceError for solves whose only solutions have no float64 output scale."""
    raise ConvergenceError(
        f"{what}: the only solutions found have a second moment that underflows float64, so "
        f"the output scale is not representable (at input_scale, input_shift = {points})")


def gram(rows, w):
    """``G[i][j] = sum(w * rows[i] * rows[j])`` (all pairwise Gaussian expectations of the
    node arrays ``rows``) as nested lists of floats."""
    R = np.array(rows)
    return ((R * w) @ R.T).tolist()


def rule_agrees(fine, coarse, scale):
    """The embedded-rule test: 16- and 24-point values agree to 1e-10 of ``scale``."""
    return all(abs(f - c) <= 1e-10 * s for f, c, s in zip(fine, coarse, scale))


# -- public-boundary checks --------------------------------------------------------------
def as_activation(phi):
    from ..activations import Activation, activation
    return phi if isinstance(phi, Activation) else activation(phi)


def check_activation(phi, method, *, solvable=()):
    """The Activation for ``phi`` (name, text or Activation), free parameters checked."""
    act = as_activation(phi)
    free = [p for p in act.free if p not in solvable]
    if free:
        hint = ", ".join(f"{p}=..." for p in free)
        raise FreeParameterError(
            f"{method} solves only {list(solvable) or 'the four affine constants'}, but the "
            f"activation has free parameters {free}; fix them with .fix({hint})")
    return act


def check_digits(digits):
    """None, or an integer in ``[16, MAX_DIGITS]`` (PrecisionError naming the limit)."""
    if digits is None:   # the float64 solve: no imports on its per-call path
        return None
    from ..errors import PrecisionError
    from ._precise import MAX_DIGITS, _duration, expected_seconds
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) or digits < 16:
        raise PrecisionError(f"digits must be None (float64) or an integer >= 16, got "
                             f"{digits!r}")
    if digits > MAX_DIGITS:
        raise PrecisionError(
            f"digits={digits} is above the limit for solves, {MAX_DIGITS} digits: the "
            f"mpmath quadrature's cost grows like digits^2.2 (about "
            f"{_duration(expected_seconds(MAX_DIGITS))} at {MAX_DIGITS} digits, "
            f"{_duration(expected_seconds(int(digits)))} at {digits})")
    return int(digits)


def check_real(name, value, *, low=None, high=None, low_open=True, high_open=True):
    """A finite real ``value`` inside the stated interval, else TransformError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)):
        raise TransformError(f"{name} must be a finite real number, got {value!r}")
    v = float(value)
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise TransformError(f"{name} must lie in {interval}, got {value!r}")
    return v


def check_start(method, start, names):
    """A caller's Newton start: finite reals, one per name in ``names`` (the first, the
    input scale, nonzero), as a tuple; else TransformError."""
    try:
        values = tuple(start)
    except TypeError:
        values = None
    if values is None or len(values) != len(names):
        kind = {2: "a pair", 3: "a triple"}.get(len(names), f"{len(names)} numbers")
        raise TransformError(f"{method}: start must be {kind} ({', '.join(names)}), got "
                             f"{start!r}")
    out = tuple(check_real(f"start {name}", v) for name, v in zip(names, values))
    if out[0] == 0.0:
        raise TransformError(f"{method}: start {names[0]} must be nonzero")
    return out


def info(act):
    """Cached facts about ``act`` the solvers branch on (sympy work done once per object)."""
    cached = act.__dict__.get("_transform_info")
    if cached is None:
        fixed = not act.free
        cached = {
            "leaky": is_builtin(act, "leaky_relu"),
            "relu": fixed and is_relu(act),
            "odd_center": odd_center(act) if fixed else None,
            "kink_orders": tuple(k.order for k in act.kinks) if fixed else (),
            "linear": fixed and _is_linear(act),
        }
        act.__dict__["_transform_info"] = cached
    return cached


def _is_linear(act):
    import sympy as sp

    from ..parsing import X
    expr = act.expr
    return not expr.has(sp.Piecewise) and expr.is_polynomial(X) and sp.degree(expr, X) <= 1


def check_not_linear(act, method):
    """Linear activations keep every C map the identity: no DKS/TAT target is reachable."""
    if info(act)["linear"]:
        raise UnreachableTargetError(
            f"{method}: the activation {act.expr} is linear, so every C map is the identity "
            "(C'(1) = 1, C''(1) = 0) and no target other than the identity can be reached")


def is_builtin(act, name):
    """True when ``act``'s template is the built-in ``name`` (parameters may differ)."""
    import sympy as sp

    from ..activations import activation
    if act.is_affine:
        return False
    ref = activation(name, **({"negative_slope": None} if name == "leaky_relu" else {}))
    return sp.srepr(act.template) == sp.srepr(ref.template)


def is_relu(act):
    import sympy as sp

    from ..parsing import X
    if act.is_affine or act.free:
        return False
    return act.expr == sp.Max(0, X) or sp.srepr(act.expr) == sp.srepr(
        sp.Piecewise((0, X < 0), (X, True)))


def odd_center(act):
    """``c`` when ``phi(x) + phi(-x) = 2c`` for all x (odd about ``(0, c)``), else None.

    Then ``(beta, delta) -> (-beta, -2c - delta)`` maps solutions to solutions (the
    transformed activation becomes ``-phi_hat(-x)``, with the same maps). Checked
    numerically at 30 digits on a spread of points.
    """
    import mpmath
    with mpmath.workdps(30):
        c = act.mp(0)
        for x in ("0.3", "0.77", "1.3", "2.9", "6.1"):
            v = act.mp(mpmath.mpf(x))
            w = act.mp(-mpmath.mpf(x))
            if abs(v + w - 2 * c) > mpmath.mpf(10) ** -25 * (1 + abs(v)):
                return None
    return float(c)


def network_of(network):
    """A Network from ``network`` (a Network or a dks-style subnet_max function)."""
    from ..networks import as_network
    if network is None:
        raise TransformError("a network is required: pass network=mlp(...), resnet(...), "
                             "or a dks-style subnet_max_func(x, r_fn)")
    return as_network(network)


def solve_increasing(fn, target, lo, hi, *, name, what, max_iter=400):
    """``x`` in ``[lo, hi)`` with ``fn(x) = target`` for an increasing ``fn``; hi may be inf.

    Bracket by doubling, then bisection and secant steps until the bracket is one ulp.

    Raises:
        UnreachableTargetError: ``target`` is not reached before ``hi`` (names ``what``).
        ConvergenceError: the iteration bound is hit.
    """
    f_lo = fn(lo) - target
    if f_lo > 0:
        raise UnreachableTargetError(
            f"{what}: the target {name} = {target!r} is below the value {fn(lo)!r} reached "
            f"at the lower end {lo!r}")
    if math.isinf(hi):
        step, x = 1.0, lo
        for _ in range(2000):
            x_hi = lo + step
            v = fn(x_hi)
            if not math.isfinite(v):
                raise UnreachableTargetError(
                    f"{what}: {name} = {target!r} not reached before the network's value "
                    f"overflows at {x_hi!r}")
            if v - target >= 0:
                hi = x_hi
                break
            x, step = x_hi, step * 2
        else:
            raise UnreachableTargetError(f"{what}: {name} = {target!r} is never reached")
        lo = x
        f_lo = fn(lo) - target
    else:
        f_hi = fn(hi) - target
        if f_hi < 0:
            raise UnreachableTargetError(
                f"{what}: the target {name} = {target!r} cannot be reached; the closest value "
                f"is {fn(hi)!r} at the end of the range {hi!r}")
    f_hi = fn(hi) - target
    for i in range(max_iter):
        if f_lo == 0:
            return lo
        if f_hi == 0 or hi - lo <= 2 * math.ulp(max(abs(lo), abs(hi))):
            return hi if abs(f_hi) <= abs(f_lo) else lo
        if i % 3 == 2 or f_hi == f_lo:
            mid = 0.5 * (lo + hi)
        else:
            mid = lo - f_lo * (hi - lo) / (f_hi - f_lo)
            if not lo < mid < hi:
                mid = 0.5 * (lo + hi)
        f_mid = fn(mid) - target
        if f_mid < 0:
            lo, f_lo = mid, f_mid
        else:
            hi, f_hi = mid, f_mid
    raise ConvergenceError(f"{what}: solving for {name} did not converge in {max_iter} steps")


def unsupported_kink(act, method, condition):
    raise UnsupportedError(
        f"{method}: the activation {act.expr} has kinks at "
        f"{[k.location for k in act.kinks]}, where phi'' holds Dirac masses, so {condition} "
        "is infinite; use a smooth activation, or leaky ReLU with TAT's eta target")
