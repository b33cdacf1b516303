"""Where an activation is not analytic: breakpoints, branches, kinks and singular points.

An expression built from ``Abs``, ``Max``, ``Min``, ``sign``, ``Heaviside`` and ``Piecewise``
is analytic between the points where one of them switches. Those points are found first
(exactly, with sympy's ``solveset``), and on each interval between them every switch is
resolved at an interior point, which leaves one analytic branch per interval. A sum of n
``abs(x - i)`` terms therefore has n + 1 intervals, not the 2^n sign combinations that
folding the ``Piecewise`` forms would build.

The jumps of phi and its derivatives at a breakpoint are decided exactly: the one-sided
values are evaluated at the exact breakpoint (an algebraic number such as ``sqrt(3)``) on
the expression with every float replaced by its exact binary value, so a continuous kink
like ``Max(x, x**3/3)`` at ``sqrt(3)`` has a value jump of exactly zero. Only when sympy
cannot decide whether a difference is zero, it is evaluated to 50 digits and called zero
below :data:`JUMP_TOLERANCE` relative to the one-sided values.

Poles are found from the expression's denominators and logarithms (``sympy.singularities``
itself can run for minutes on short input such as 20 nested ``tanh``). A pole whose
two-sided limit is finite (``sin(x)/x`` at 0) is *removable*: the activation is defined
there by that limit, and numeric code evaluates it near the point through a Taylor
polynomial (see :func:`removable_patch`), so no 0/0 or cancellation reaches float64.
"""

from __future__ import annotations

import math

import sympy as sp

from .errors import ExpressionError, NotRealError, UnsupportedError
from .parsing import X

__all__ = ["JUMP_TOLERANCE", "MAX_BREAKPOINTS", "MAX_DERIVATIVE_OPS", "MAX_NESTING",
           "Structure", "analyse", "check_size", "classify", "poles", "removable_patch"]

#: Relative size below which a jump that sympy cannot decide exactly counts as zero.
JUMP_TOLERANCE = 1e-30

#: Most breakpoints (points where Abs, Max, Min, sign, Heaviside or Piecewise switch).
MAX_BREAKPOINTS = 64

#: Most switching sub-expressions (each costs one ``solveset``).
MAX_SWITCHES = 256

#: Deepest nesting of function applications (``tanh(tanh(...))``, ``exp(sin(...))``).
MAX_NESTING = 20

#: Largest first derivative of a branch, in sympy operations (``count_ops``). numba compiles
#: phi, phi' and phi'' of every branch, and phi'' grows about as phi' times the nesting:
#: 16 nested tanh (183 operations) take ~25 s to compile on a busy two-core machine,
#: 30 nested tanh (phi'' printed as 119,000 characters) several minutes.
MAX_DERIVATIVE_OPS = 250

_SWITCHES = (sp.Abs, sp.Max, sp.Min, sp.sign, sp.Heaviside, sp.Piecewise)

#: Functions analytic on the whole real line (no poles of their own).
_ENTIRE = (sp.exp, sp.sin, sp.cos, sp.tanh, sp.sinh, sp.cosh, sp.atan, sp.asinh, sp.erf,
           sp.erfc, sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min, sp.Piecewise)


class Structure:
    """The analysis of one (parameter-free) expression.

    Attributes:
        points: exact breakpoints, sorted.
        branches: distinct analytic branch expressions.
        interval_branch: branch index of each of the ``len(points) + 1`` intervals.
        kinks: ``(point index, order, (jump0, jump1, jump2))`` for each real kink.
    """

    def __init__(self, points, branches, interval_branch):
        self.points = points
        self.branches = branches
        self.interval_branch = interval_branch

    @property
    def floats(self):
        return tuple(float(p) for p in self.points)


def check_size(expr: sp.Expr) -> None:
    """Refuse expressions whose derivatives would be too large to compile in bounded time.

    Raises:
        ExpressionError: naming the limit (:data:`MAX_NESTING` or :data:`MAX_DERIVATIVE_OPS`).
    """
    depth = {}
    for node in sp.postorder_traversal(expr):
        inner = max((depth.get(a, 0) for a in node.args), default=0)
        nested = isinstance(node, sp.Function) or (
            isinstance(node, sp.Pow) and not node.args[1].is_Integer)
        depth[node] = inner + nested
        if depth[node] > MAX_NESTING:
            raise ExpressionError(
                f"functions nested more than {MAX_NESTING} deep in {_clip(expr)}; at most "
                f"{MAX_NESTING} nested function applications are supported (the derivatives "
                "the maps need grow with the nesting)")


def check_derivative_size(branch: sp.Expr) -> None:
    """Refuse a branch whose first derivative exceeds :data:`MAX_DERIVATIVE_OPS` operations."""
    ops = sp.count_ops(sp.diff(branch, X))
    if ops > MAX_DERIVATIVE_OPS:
        raise ExpressionError(
            f"the derivative of {_clip(branch)} has {ops} operations; at most "
            f"{MAX_DERIVATIVE_OPS} are supported (phi, phi' and phi'' are compiled to "
            "machine code, and compiling grows with their size)")


def _clip(expr):
    text = sp.sstr(expr)
    return text if len(text) <= 80 else text[:77] + "..."


def analyse(expr: sp.Expr) -> Structure:
    """Breakpoints and one analytic branch per interval between them."""
    check_size(expr)
    points = _breakpoints(expr)
    branches, index, interval_branch = [], {}, []
    for i in range(len(points) + 1):
        x0 = _interior(points, i)
        branch = _resolve(expr, x0)
        if branch.has(*_SWITCHES):
            raise UnsupportedError(f"cannot split {expr} into analytic pieces")
        if branch not in index:
            check_derivative_size(branch)
            index[branch] = len(branches)
            branches.append(branch)
        interval_branch.append(index[branch])
    return Structure(points, tuple(branches), tuple(interval_branch))


def _switch_arguments(node):
    if isinstance(node, (sp.Abs, sp.sign, sp.Heaviside)):
        return [node.args[0]]
    if isinstance(node, (sp.Max, sp.Min)):
        return [a - b for i, a in enumerate(node.args) for b in node.args[i + 1:]]
    rels = set().union(*(c.atoms(sp.Rel) for _, c in node.args))
    return [r.lhs - r.rhs for r in rels if not isinstance(r, (sp.Eq, sp.Ne))]


def _breakpoints(expr):
    arguments = {exact(u) for node in expr.atoms(*_SWITCHES) for u in _switch_arguments(node)}
    arguments = [u for u in arguments if u.has(X)]
    if len(arguments) > MAX_SWITCHES:
        raise ExpressionError(
            f"{len(arguments)} switching sub-expressions (abs, max, min, sign, heaviside, "
            f"piecewise conditions); at most {MAX_SWITCHES} are supported")
    found = []
    for u in arguments:
        sol = sp.solveset(u, X, sp.S.Reals)
        if not isinstance(sol, sp.FiniteSet):
            raise UnsupportedError(
                f"the switch at {u} = 0 in {expr} has no finite set of boundary points "
                f"(got {sol}); only finitely many kinks are supported")
        found.extend(sol)
        if len(found) > 4 * MAX_BREAKPOINTS:
            break
    keyed = {}
    for p in found:
        # points equal to 30 digits are one point (exact forms may differ in spelling)
        keyed.setdefault(str(sp.N(p, 30)), p)
    points = sorted(keyed.values(), key=lambda p: sp.N(p, 30))
    if len(points) > MAX_BREAKPOINTS:
        raise ExpressionError(
            f"{expr} switches at more than {MAX_BREAKPOINTS} points ({len(points)} found); "
            f"at most {MAX_BREAKPOINTS} breakpoints are supported")
    return tuple(points)


def exact(expr):
    """``expr`` with every float replaced by its exact (binary) rational value."""
    floats = expr.atoms(sp.Float)
    return expr.xreplace({f: sp.Rational(f) for f in floats}) if floats else expr


def _interior(points, i):
    """An exact number strictly inside the i-th interval between ``points``."""
    lo = points[i - 1] if i > 0 else None
    hi = points[i] if i < len(points) else None
    if lo is None and hi is None:
        return sp.Integer(0)
    if lo is None:
        return sp.Integer(math.floor(float(hi))) - 1
    if hi is None:
        return sp.Integer(math.ceil(float(lo))) + 1
    mid = sp.Rational((float(lo) + float(hi)) / 2)
    if sp.N(lo - mid, 30) < 0 < sp.N(hi - mid, 30):
        return mid
    return (lo + hi) / 2


def _sign_at(u, x0):
    v = u.xreplace({X: x0})
    if v.is_Rational:
        return 1 if v > 0 else -1 if v < 0 else 0
    n = sp.N(v, 30)
    if not n.is_comparable:
        raise UnsupportedError(f"cannot decide the sign of {u} at x = {x0}")
    return 1 if n > 0 else -1


def _resolve(expr, x0):
    """The analytic branch of ``expr`` around the interior point ``x0``."""
    if not expr.has(*_SWITCHES):
        return expr
    if isinstance(expr, sp.Piecewise):
        for value, cond in expr.args:
            truth = cond.subs(X, x0)
            if truth == sp.true:
                return _resolve(value, x0)
            if truth != sp.false:
                raise UnsupportedError(f"cannot decide the condition {cond} at x = {x0}")
        raise ExpressionError(f"{expr} is undefined at x = {x0} (no branch holds)")
    args = [_resolve(a, x0) for a in expr.args]
    if isinstance(expr, sp.Abs):
        return args[0] if _sign_at(args[0], x0) >= 0 else -args[0]
    if isinstance(expr, sp.sign):
        return sp.Integer(_sign_at(args[0], x0))
    if isinstance(expr, sp.Heaviside):
        s = _sign_at(args[0], x0)
        return sp.Integer(s > 0) if s else (args[1] if len(args) > 1 else sp.S.Half)
    if isinstance(expr, (sp.Max, sp.Min)):
        values = [sp.N(a.xreplace({X: x0}), 30) for a in args]
        pick = max if isinstance(expr, sp.Max) else min
        return args[values.index(pick(values))]
    return expr.func(*args)


# -- kinks ------------------------------------------------------------------------------------
def classify(left, right, point):
    """``(order, jumps)`` of the switch from ``left`` to ``right`` at the exact ``point``.

    ``order`` is the lowest derivative order (0-3) whose jump is nonzero, None when phi is
    analytic across; ``jumps`` are the float jumps (right minus left) of phi, phi', phi''.

    Raises:
        NotRealError: phi itself is infinite at the point.
        UnsupportedError: phi' or phi'' is infinite there (``sqrt(abs(x))`` at 0).
    """
    left, right = exact(left), exact(right)
    jumps, order = [], None
    for d in range(4):
        dl, dr = sp.diff(left, X, d), sp.diff(right, X, d)
        lv, rv = _one_sided(dl, point, "-"), _one_sided(dr, point, "+")
        if lv is None or rv is None:
            if d == 0:
                raise NotRealError(f"phi is infinite at x = {float(point):.17g}")
            if d < 3:
                raise UnsupportedError(
                    f"the {_nth(d)} derivative of phi is infinite at x = {float(point):.17g} "
                    "(one side); maps need phi, phi' and phi'' to have finite one-sided "
                    "limits at every kink")
            order = 3 if order is None else order
            break
        jump = rv - lv
        nonzero = not _is_zero(jump, lv, rv)
        if d < 3:
            jumps.append(float(sp.N(jump, 20)) if nonzero else 0.0)
        if order is None and nonzero:
            order = d
    return order, tuple(jumps)


def _nth(d):
    return {1: "first", 2: "second", 3: "third"}[d]


def _one_sided(expr, point, direction):
    """The exact one-sided limit of an analytic branch at ``point``; None if infinite."""
    value = expr.subs(X, point)
    if value.has(sp.nan):  # 0/0 at the point: the branch itself has a removable pole
        value = sp.limit(expr, X, point, direction)
    if value.has(sp.zoo, sp.oo, -sp.oo, sp.nan) or not value.is_finite:
        return None
    return value


def _is_zero(value, lv, rv):
    zero = value.is_zero
    if zero is None and sp.count_ops(value) <= 200:
        zero = sp.simplify(value).is_zero
    if zero is None:  # undecided: the stated numeric tolerance
        scale = max(1, abs(sp.N(lv, 50)), abs(sp.N(rv, 50)))
        zero = bool(abs(sp.N(value, 50)) <= JUMP_TOLERANCE * scale)
    return bool(zero)


# -- poles ------------------------------------------------------------------------------------
def poles(branch, lo, hi):
    """Points in the open interval (lo, hi) where the analytic ``branch`` may be infinite.

    Returns:
        ``(removable, singular)``: exact points with a finite two-sided limit, and a
        description of the others (empty when there are none).
    """
    removable, singular = [], []
    interval = sp.Interval.open(sp.Rational(lo) if math.isfinite(lo) else -sp.oo,
                                sp.Rational(hi) if math.isfinite(hi) else sp.oo)
    for u in _pole_arguments(branch):
        if u.is_positive or u.is_negative:
            continue
        sol = sp.solveset(u, X, interval)
        if sol is sp.S.EmptySet:
            continue
        if isinstance(sol, sp.ConditionSet):
            continue  # undecidable here; the sampling in Activation._check_real remains
        if not isinstance(sol, sp.FiniteSet):
            singular.append(str(sol))
            continue
        for s in sol:
            left = sp.limit(branch, X, s, "-")
            right = sp.limit(branch, X, s, "+")
            if left == right and left.is_finite:
                removable.append(s)
            else:
                singular.append(str(s))
    return sorted(set(removable), key=lambda p: sp.N(p, 30)), singular


def _pole_arguments(expr):
    """Sub-expressions whose zeros are where ``expr`` may have a pole."""
    out = set()
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Pow) and node.args[0].has(X):
            base, e = node.args
            if not e.is_nonnegative:
                out.add(base)
        elif isinstance(node, sp.log):
            out.add(node.args[0])
        elif isinstance(node, sp.tan):
            out.add(sp.cos(node.args[0]))
        elif (isinstance(node, sp.Function) and not isinstance(node, _ENTIRE)
              and node.has(X)):
            try:
                sing = sp.singularities(node, X, sp.S.Reals)
            except (NotImplementedError, ValueError, TypeError):
                continue
            if isinstance(sing, sp.FiniteSet):
                out.update(X - s for s in sing)
    return [u for u in out if u.has(X)]


# -- removable poles --------------------------------------------------------------------------
#: Degree of the Taylor polynomial used around a removable pole.
PATCH_DEGREE = 24


def removable_patch(branch, point):
    """``(polynomial, halfwidth)``: phi near a removable pole, accurate to float64.

    The Taylor polynomial of degree :data:`PATCH_DEGREE` at ``point`` replaces the branch
    on ``|x - point| < halfwidth``, where the first omitted term is below 1e-20 relative
    to the polynomial's leading size (the branch's own formula loses digits to
    cancellation there, ``sin(x)/x - 1`` at x = 1e-8).
    """
    t = sp.Symbol("t", real=True)
    series = sp.series(branch.subs(X, point + t), t, 0, PATCH_DEGREE + 2).removeO()
    coeffs = [series.coeff(t, k) for k in range(PATCH_DEGREE + 2)]
    scale = max(abs(float(c)) for c in coeffs[:3]) or 1.0
    tail = max(abs(float(c)) for c in coeffs[-2:])
    width = 1.0 if tail == 0 else min(1.0, (1e-20 * scale / tail) ** (1 / PATCH_DEGREE))
    poly = sum(c * (X - point) ** k for k, c in enumerate(coeffs[:PATCH_DEGREE + 1]))
    return sp.expand(poly) if point == 0 else poly, width
