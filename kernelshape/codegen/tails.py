"""Asymptotic tails: far out, an outer branch is replaced by its exact asymptote.

Why: a branch that is finite in exact arithmetic can fail in floating point far from 0.
Inner terms overflow although the value does not (``u**3`` inside gelu's sigmoid, ``u**2``
inside bentid's square root), and at ``u = +-inf`` forms like ``u * sigmoid(u)`` or
``u / (1 + |u|)`` give ``inf - inf``, ``0 * inf`` or ``inf / inf`` = NaN. Gradients fail
first: automatic differentiation multiplies a derivative that underflowed to 0 by one that
overflowed to inf (gelu's ``sigmoid'(s) * 3 c u**2``).

Most activations approach a constant ``L`` (tanh, erf, sigmoid, softsign, elu's left side)
or a line ``D u + c`` (swish, gelu, mish, softplus, bentid) and get there fast. Beyond some
``|u| >= start`` the branch's value AND derivative equal the asymptote's to float64
rounding; there the emitter evaluates the asymptote instead, as one more piece behind the
usual double ``where``. That piece is exact, cannot overflow except where the true value
does, and has the right limits at ``u = +-inf``: value ``L`` or ``+-inf``, derivative 0 or
``D`` (``D * u`` at ``u = inf`` keeps autodiff's derivative ``D``).

``start`` is found numerically, not by a series: the branch and its derivative are
evaluated in mpmath (40 digits) at ``|u| = 10^k`` for ``k = 0 .. 308`` and at float64's
largest value, the smallest decade from which every probe agrees with the asymptote is
located, and the crossing is refined by bisection in ``log |u|``. Agreement means:

- value: ``|f(u) - A(u)| <= eps * |A(u)|`` (float64's eps), or ``|f(u)|`` below half the
  smallest subnormal where ``A = 0`` (both round to the same float);
- derivative: ``|f'(u) - D| <= eps * max(|D|, |A(u) / u|)`` (relative to the branch's own
  slope scale), or ``|f'(u)|`` below half the smallest subnormal where that scale is 0.

A ``start`` beyond :data:`CAP` cannot be compared against in float32 (its largest value is
3.4e38), so such a tail holds only at ``u = +-inf`` itself. A branch that approaches no
constant and no line (sin, x**2, asinh) gets no tail: its framework functions already give
the limit where one exists (``asinh(inf) = inf``), and NaN where none does (``sin(inf)``).
Branches that are already constant or linear need none.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import mpmath
import sympy as sp

from ..activations import Piece
from ..parsing import X

__all__ = ["CAP", "Tail", "find_tail", "with_tails"]

#: Largest ``start`` a tail may have at finite ``u`` (below float32's largest value).
CAP = 1e38

_EPS = mpmath.mpf(2) ** -52          # float64's eps: the asymptote agrees to rounding
_TINY = mpmath.mpf(2) ** -1075       # below half float64's smallest subnormal: rounds to 0
_BIG = 1.7976931348623157e308        # float64's largest value
_DPS = 40


@dataclasses.dataclass(frozen=True)
class Tail:
    """Beyond ``side * u >= start`` the branch equals ``slope * u + offset`` to rounding.

    Attributes:
        side: -1 for the left tail (``u -> -inf``), +1 for the right one.
        start: ``|u|`` from which the tail holds (``math.inf``: only at ``u = side * inf``).
        slope: ``D``, 0.0 for a constant tail.
        offset: ``c``, the constant ``L`` for a constant tail.
    """

    side: int
    start: float
    slope: float
    offset: float

    @property
    def expr(self) -> sp.Expr:
        """The asymptote as a sympy expression in ``x``.

        Example:
            >>> Tail(1, 40.0, 1.5, -0.5).expr
            1.5*x - 0.5
        """
        slope = X if self.slope == 1.0 else sp.Float(self.slope) * X
        return (slope if self.slope else 0) + sp.Float(self.offset)


def _is_linear(expr: sp.Expr) -> bool:
    return not expr.free_symbols or (expr.is_polynomial(X) and sp.degree(expr, X) <= 1)


def _agrees(f, f1, slope, offset, u) -> bool:
    """Value and derivative of the branch at ``u`` equal the asymptote's to rounding."""
    u = mpmath.mpf(u)
    try:
        value, deriv = f(u), f1(u)
    except (ArithmeticError, ValueError, TypeError):
        return False
    if not (isinstance(value, mpmath.mpf) and isinstance(deriv, mpmath.mpf)):
        return False   # complex, or a sympy object the branch could not evaluate
    target = slope * u + offset
    if target:
        value_ok = abs(value - target) <= _EPS * abs(target)
    else:
        value_ok = abs(value) <= _TINY
    scale = max(abs(slope), abs(target / u))
    if scale:
        return value_ok and abs(deriv - slope) <= _EPS * scale
    return value_ok and abs(deriv) <= _TINY


def _nice_up(value: float) -> float:
    """``value`` rounded up to two significant digits (readable thresholds in the code)."""
    exponent = math.floor(math.log10(value)) - 1
    return float(f"{math.ceil(value / 10.0 ** exponent)}e{exponent}")


@functools.lru_cache(maxsize=256)
def find_tail(branch: sp.Expr, side: int, edge: float) -> Tail | None:
    """The tail of ``branch`` towards ``side * inf``, or None if it has none.

    Args:
        branch: an analytic sympy expression in ``x`` (no free parameters).
        side: -1 or +1.
        edge: the finite end of the branch's piece on the other side (``-inf`` / ``inf``
            when the piece is the whole line); the tail starts beyond it.

    Returns:
        A :class:`Tail` (see the module docstring for the criterion), or None.

    Example:
        >>> find_tail(sp.tanh(X), 1, -math.inf)
        Tail(side=1, start=21.0, slope=0.0, offset=1.0)
        >>> find_tail(sp.sin(X), 1, -math.inf) is None      # no limit: no tail
        True
    """
    if _is_linear(branch):
        return None
    f = sp.lambdify(X, branch, modules="mpmath")
    f1 = sp.lambdify(X, sp.diff(branch, X), modules="mpmath")
    low = max(1.0, side * edge + 1.0) if math.isfinite(edge) else 1.0
    probes = [10.0 ** k for k in range(309) if 10.0 ** k >= low] + [_BIG]
    with mpmath.workdps(_DPS):
        asymptote = _asymptote(f, f1, side)
        if asymptote is None:
            return None
        slope, offset = asymptote
        if not _agrees(f, f1, slope, offset, side * _BIG):
            return None
        passing = None
        for mag in reversed(probes):       # from float64's largest value down
            if not _agrees(f, f1, slope, offset, side * mag):
                break
            passing = mag
        else:
            return Tail(side, _nice_up(low), float(slope), float(offset))
        if passing is None:
            return None
        failing = mag
        for _ in range(40):                # bisection in log |u|
            mid = math.sqrt(failing * passing)
            if _agrees(f, f1, slope, offset, side * mid):
                passing = mid
            else:
                failing = mid
            if passing / failing < 1.001:
                break
        start = _nice_up(passing)
        if start > passing * 1.1 and not _agrees(f, f1, slope, offset, side * start):
            start = passing
    return Tail(side, start if start <= CAP else math.inf, float(slope), float(offset))


def _asymptote(f, f1, side):
    """(slope, offset) as float64 values (in mpmath) read off far out, or None."""
    far, mid = side * mpmath.mpf(_BIG), side * mpmath.mpf(10) ** 30
    # f(u) - D u cancels 30 digits at u = 1e30, hence 40 more; D itself, not D rounded:
    # (D - float(D)) u would swamp c.
    with mpmath.workdps(_DPS + 40):
        try:
            value, slope = f(far), f1(far)
            offset = f(mid) - slope * mid
        except (ArithmeticError, ValueError, TypeError):
            return None
    if not all(isinstance(v, mpmath.mpf) for v in (value, slope, offset)):
        return None
    if abs(value) <= _BIG and abs(slope * far) <= _EPS * max(abs(value), 1):
        return mpmath.mpf(0), mpmath.mpf(float(value))      # a constant L
    if not (0 < abs(slope) <= _BIG and abs(offset) <= _BIG):
        return None
    return mpmath.mpf(float(slope)), mpmath.mpf(float(offset))


def with_tails(branches, pieces):
    """Branches and pieces with each outer branch's tail as a piece of its own.

    Args:
        branches: the analytic branches (sympy expressions in ``x``).
        pieces: :class:`~kernelshape.activations.Piece` objects covering the real line in
            order.

    Returns:
        ``(branches, pieces)``: the tails' asymptotes appended to ``branches``, and pieces
        where a tail takes over ``(-inf, -start]`` / ``(start, inf)``. A tail that holds
        only at infinity is the piece ``(-inf, -inf)`` / ``(inf, inf)``.

    Example:
        >>> from kernelshape import activation
        >>> swish = activation("swish")
        >>> branches, pieces = with_tails(swish.branches, swish.pieces)
        >>> [(p.lo, p.hi, branches[p.branch]) for p in pieces]     # doctest: +ELLIPSIS
        [(-inf, -760.0, 0.0), (-760.0, 40.0, x/(1 + exp(-x))), (40.0, inf, x)]
    """
    branches, pieces = list(branches), list(pieces)
    for side in (-1, 1):
        k = 0 if side < 0 else len(pieces) - 1
        piece = pieces[k]
        edge = piece.hi if side < 0 else piece.lo
        tail = find_tail(branches[piece.branch], side, edge)
        if tail is None:
            continue
        branches.append(tail.expr)
        cut = side * tail.start
        new = Piece(cut if side > 0 else -math.inf, cut if side < 0 else math.inf,
                    len(branches) - 1)
        if side < 0:
            pieces[k:k + 1] = [new, Piece(cut, piece.hi, piece.branch)]
        else:
            pieces[k:k + 1] = [Piece(piece.lo, cut, piece.branch), new]
    return tuple(branches), tuple(pieces)
