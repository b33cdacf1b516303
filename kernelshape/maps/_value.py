"""The value a ``digits=N`` map returns: an ``mpmath.mpf`` that says how precise it is.

A plain ``mpf`` prints as many digits as the global ``mpmath.mp.dps`` (15 by default), so a
40-digit C map looked like a float in a notebook, and a value far below the working scale
(``C = 7e-218`` computed to an absolute ``1e-34``) printed digits it did not have.
:class:`PreciseValue` is an ``mpf`` (arithmetic, comparisons, hashing and every mpmath
function work as on any ``mpf``; results of arithmetic are plain ``mpf``) that carries

* ``digits``: the significant digits guaranteed (the request, or fewer: see below), and
* ``error``: a bound on its absolute error,

and whose ``repr`` and ``str`` show exactly the guaranteed digits (so JSON written through
``str`` keeps them all, and no more).

How precision is guaranteed (:func:`guaranteed`): the quadratures are accurate to an
absolute ``10^-(d+3)`` of the quantity's scale at ``d`` working digits (the C map: 1;
``Q^(k)(q)``: ``Q(q) / q^k``). When a value is so far below its scale that this does not
give ``N`` significant digits, it is recomputed with enough extra digits, up to
``2 N + 50`` digits (and :data:`~kernelshape.maps.MAX_DIGITS`). A value below the bound
itself (exactly 0, e.g. ``C(0)`` of an odd activation, or ``7e-218`` at 30 digits) is not
recomputed: it is returned as 0 with ``digits = 0`` and ``error`` = the bound. Where the
extra digits run out, the value is rounded to the digits it does have and ``digits`` says
how many.
"""

from __future__ import annotations

import math

import mpmath

__all__ = ["PreciseValue", "guaranteed"]


class PreciseValue(mpmath.mpf):
    """An ``mpmath.mpf`` with its guaranteed significant ``digits`` and absolute ``error``.

    Example:
        >>> with mpmath.workdps(30):
        ...     v = PreciseValue(mpmath.mpf(1) / 3, digits=20, error=mpmath.mpf("1e-20"))
        >>> v
        mpf('0.33333333333333333333')
        >>> v.digits, float(v * 3)
        (20, 1.0)
    """

    __slots__ = ("digits", "error")

    def __new__(cls, value=0, digits: int = 15, error=None):
        if hasattr(value, "_mpf_"):     # keep every bit (mpf() would round to mp.prec)
            obj = object.__new__(cls)
            obj._mpf_ = value._mpf_
        else:
            with mpmath.workprec(max(mpmath.mp.prec, _bits(max(digits, 1)) + 10)):
                obj = mpmath.mpf.__new__(cls, value)
        obj.digits = int(digits)
        obj.error = mpmath.mpf(0) if error is None else mpmath.mpf(error)
        return obj

    def __reduce__(self):
        return (_restore, (self._mpf_, self.digits, self.error))

    def _text(self):
        if self.digits < 1 or self == 0:
            return "0.0"
        return mpmath.nstr(self, self.digits, min_fixed=-4, max_fixed=6)

    def __str__(self):
        return self._text()

    def __repr__(self):
        text = f"mpf('{self._text()}')"
        if self.digits < 1:
            return f"{text}  # |value| <= {mpmath.nstr(self.error, 3)}"
        return text


def _restore(mpf_tuple, digits, error):
    """Unpickle: the exact binary value, its digits and bound."""
    value = object.__new__(mpmath.mpf)
    value._mpf_ = mpf_tuple
    return PreciseValue(value, digits, error)


def _bits(digits):
    return math.ceil(digits * math.log2(10)) + 1


def guaranteed(compute, digits: int, scale, max_digits: int) -> PreciseValue:
    """``compute(d)`` (an mpf good to ``10^-(d+3) * scale`` absolute at ``d`` digits) as a
    :class:`PreciseValue` with ``digits`` significant digits, recomputed at more working
    digits when the value is far below ``scale`` (module docs)."""
    cap = min(max_digits, 2 * digits + 50)
    work = digits
    while True:
        value = compute(work)
        if mpmath.isinf(value) or mpmath.isnan(value):
            return PreciseValue(value, digits, 0)
        with mpmath.workdps(work + 20):
            bound = mpmath.mpf(10) ** -(work + 3) * abs(scale)
            if abs(value) * mpmath.mpf(10) ** -digits >= bound:
                return PreciseValue(value, digits, abs(value) * mpmath.mpf(10) ** -digits)
            # below the bound the value is indistinguishable from 0 (an odd activation's
            # C(0)): more digits would only shrink the bound, at a high price
            need = work if abs(value) < bound else (
                digits - 3 + int(mpmath.ceil(mpmath.log10(abs(scale) / abs(value)))) + 1)
            if work < cap and need > work:
                work = min(cap, max(need, work + 1))
                continue
            # as far as it goes: the digits it has (0 when only the bound is known)
            have = 0 if value == 0 else int(mpmath.floor(mpmath.log10(abs(value) / bound)))
            if have < 1:
                return PreciseValue(0, 0, bound + abs(value))
            return PreciseValue(mpmath.mpf(mpmath.nstr(value, have)), have, bound)
