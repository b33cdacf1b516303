"""Q and C maps of an activation: closed forms, mpmath at N digits, numba float64.

One public entry per quantity (THEORY.md §1; Martens et al. 2021, §3), three routes behind it:

* default: float64 (:mod:`kernelshape.maps.fast`), vectorized, within 1e-13 relative or
  1e-15 absolute, whichever is larger (absolute for small values that come from
  cancellation: docs/guide/maps.md, "How precise, measured");
* ``digits=N``: mpmath quadrature (:mod:`kernelshape.maps.precise`), returning
  :class:`PreciseValue` values (``mpmath.mpf`` showing and carrying the significant digits
  they have: N, or fewer for a value far below its scale; :mod:`kernelshape.maps._value`);
  ``N <= MAX_DIGITS``;
* ``*_expr``: exact sympy closed forms where known (:mod:`kernelshape.maps.closed_forms`).

Arguments are validated once, here. ``c`` may exceed ``[-1, 1]`` by rounding: values within
``C_SLACK`` (about 4 ulp) of the interval are clipped to it, anything further raises
:class:`~kernelshape.errors.DomainError`. A float64 array for an activation with a closed
form (:mod:`kernelshape.maps._closed64`) skips the numpy checks: its compiled loop checks
every value as it goes, and any bad argument sends the call through the checks here, which
report it. Long arrays are checked in chunks (no full-size temporaries).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import DomainError, PrecisionError, UnsupportedError
from ._closed64 import fast_c_map as _closed_c_map
from ._value import PreciseValue

__all__ = ["C_SLACK", "MAX_DIGITS", "PreciseValue", "c_map", "c_map_expr", "q_map",
           "q_map_expr"]

#: Largest ``digits`` the maps accept: mpmath work grows like digits^2 to digits^3 (the
#: double integral of the C map takes minutes at 1000 digits); beyond, a PrecisionError.
MAX_DIGITS = 1000

#: How far beyond [-1, 1] a correlation may stray by rounding and still be accepted (then clipped).
C_SLACK = 1e-15

#: Values per chunk when checking long arrays (bounded temporaries).
_CHUNK = 32768


def q_map(act, q, *, order: int = 0, digits: int | None = None):
    """The Q map ``Q(q) = E[phi(sqrt(q) z)^2]`` or its derivative ``Q'`` / ``Q''`` in q.

    .. math:: Q^{(k)}(q) = \\frac{d^k}{dq^k} E[\\phi(\\sqrt q\\, z)^2]
              = \\frac{E[\\phi(\\sqrt q\\, z)^2 \\, He_{2k}(z)]}{(2q)^k}, \\quad z \\sim N(0, 1)

    (THEORY.md §1; Poole et al. 2016; Martens et al. 2021, §3.1). The density-derivative form
    needs no Dirac terms at kinks or jumps.

    Args:
        act: a fixed :class:`~kernelshape.activations.Activation`.
        q: input second moment ``q > 0``: a number or an array of numbers.
        order: 0 for Q, 1 for Q', 2 for Q''.
        digits: None for float64; an integer N >= 1 for mpmath values correct to N
            significant digits.

    Returns:
        A Python float (scalar q) or a float64 array of q's shape, within 1e-13 relative
        or 1e-15 absolute; with ``digits``, a :class:`PreciseValue` (an ``mpmath.mpf``
        with ``.digits`` and ``.error``; an object array of them for array input).

    Raises:
        DomainError: q not finite and positive, or order not 0, 1, 2.
        PrecisionError: digits not None or an integer in [1, MAX_DIGITS].
        FreeParameterError: a parameter of the activation is free.
        InfiniteMomentError: ``E[phi(sqrt(q) z)^2]`` is infinite.
        ConvergenceError: the quadrature's error estimate is too large.

    Example:
        >>> from kernelshape import activation
        >>> round(q_map(activation("relu"), 3.0), 14)   # q / 2, to about 1e-16
        1.5
    """
    order = _check_order(order)
    digits = _check_digits(digits)
    values, scalar = _check_array("q", q, digits)
    _check_q_values(values)
    act._require_fixed("the Q map")
    if values.size:
        _check_moment(act, float(np.max(values.astype(np.float64))))
    if digits is not None:
        import mpmath

        from . import precise
        from ._value import guaranteed

        def one(v):
            # Q' and Q'' are good to 10^-(d+3) Q / q^k absolute; Q itself relatively
            scale = precise.q_map(act, v, 0, digits) / mpmath.mpf(v) ** order if order else 0
            return guaranteed(lambda d: precise.q_map(act, v, order, d), digits, scale,
                              MAX_DIGITS)
        return _each(values, scalar, one)
    from . import fast
    out = fast.q_map(act, values, order)
    return float(out) if scalar else out


def c_map(act, c, *, q=1.0, q2=None, order: int = 0, digits: int | None = None):
    """The C map ``C(c; q) = E[phi(sqrt(q) u) phi(sqrt(q) v)] / Q(q)`` or its c-derivatives.

    .. math:: C^{(k)}(c) = \\frac{q^k E[\\phi^{(k)}(\\sqrt q\\, u)\\,
              \\phi^{(k)}(\\sqrt q\\, v)]}{Q(q)}, \\quad \\mathrm{corr}(u, v) = c

    (THEORY.md §1; Price's theorem; Martens et al. 2021, §3.2). Derivatives include the
    Dirac masses of ``phi''`` at kinks (``phi'`` at jumps): for ReLU ``C''(c) =
    1 / (pi sqrt(1 - c^2))``. Where those masses meet (``C''(1)`` of a kinked activation,
    ``C'(1)`` of one with jumps) the value is ``inf``. ``C(1) = 1`` exactly.

    Args:
        act: a fixed :class:`~kernelshape.activations.Activation`.
        c: correlation(s) in ``[-1, 1]``: a number or an array; values within
            :data:`C_SLACK` outside the interval (rounding) are clipped to it.
        q: the common input second moment of both inputs, a number ``> 0`` (with ``q2``:
            the first input's).
        q2: the second input's second moment, ``> 0``; None (default) for ``q2 = q``. For
            ``q2 != q`` the value is the two-q C map
            ``E[phi(sqrt(q) u) phi(sqrt(q2) v)] / sqrt(Q(q) Q(q2))`` (THEORY.md §1;
            :mod:`kernelshape.maps.two_q`), float64 and order 0 only; ``C(1) < 1`` there
            unless phi is positively homogeneous.
        order: 0 for C, 1 for C', 2 for C''.
        digits: None for float64; an integer N >= 1 for mpmath values correct to N
            significant digits.

    Returns:
        A Python float (scalar c) or a float64 array of c's shape: within 1e-13 relative
        or 1e-15 absolute, whichever is larger, against 40-digit references (a small C
        from cancelling terms, e.g. at negative c, is good to ~1e-16 absolute only); with
        ``digits``, a :class:`PreciseValue` (an ``mpmath.mpf`` with ``.digits``, the
        significant digits guaranteed, and ``.error``; an object array of them).

    Raises:
        DomainError: c outside [-1, 1], q not finite and positive, NaN/inf, bad order.
        PrecisionError: digits not None or an integer in [1, MAX_DIGITS].
        FreeParameterError: a parameter of the activation is free.
        InfiniteMomentError: ``E[phi(sqrt(q) z)^2]`` is infinite.
        UnsupportedError: the digits=N double integral at ``|c| < 1`` of an activation
            too steep to resolve within its evaluation budget; ``C''`` of an activation that jumps (Heaviside, sign), c < 1;
            ``order`` or ``digits`` with ``q2 != q``.
        ConvergenceError: a quadrature's error check failed, or float64 C'/C'' would lose
            its digits to cancellation (a steep activation).

    Example:
        >>> import math
        >>> from kernelshape import activation
        >>> c_map(activation("relu"), 0.0) * math.pi   # (sqrt(1 - c^2) + (pi - arccos c) c) / pi
        1.0
        >>> round(c_map(activation("relu"), 0.0, q=1.0, q2=9.0) * math.pi, 12)   # homogeneous
        1.0
    """
    if digits is None and q2 is None and type(c) is np.ndarray:
        # closed forms: one compiled loop that checks c itself; None sends every other
        # case (and every bad argument, to be reported) through the checks below
        out = _closed_c_map(act, c, q, order)
        if out is not None:
            return out
    order = _check_order(order)
    digits = _check_digits(digits)
    values, scalar = _check_array("c", c, digits)
    values = _check_c_values(values)
    q_values, q_scalar = _check_array("q", q, digits)
    if not q_scalar:
        raise DomainError(f"q must be a single number for the C map, got an array of shape "
                          f"{q_values.shape}")
    _check_q_values(q_values)
    q = q_values.reshape(()).item()
    if q2 is not None:
        q2 = _check_second_q(q2, digits)
        if float(q2) == float(q):
            q2 = None
    act._require_fixed("the C map")
    _check_moment(act, float(q) if q2 is None else max(float(q), float(q2)))
    if q2 is not None:
        if order != 0 or digits is not None:
            raise UnsupportedError(
                f"the two-q C map (q = {q!r}, q2 = {q2!r}) is provided in float64 for "
                f"order 0 only, got order={order!r}, digits={digits!r}")
        from . import two_q
        out = two_q.c_map(act, values, float(q), float(q2))
        return float(out) if scalar else out
    if digits is not None:
        from . import precise
        from ._value import guaranteed
        return _each(values, scalar, lambda v: guaranteed(
            lambda d: precise.c_map(act, v, q, order, d), digits, 1, MAX_DIGITS))
    from . import fast
    out = fast.c_map(act, values, float(q), order)
    return float(out) if scalar else out


def q_map_expr(act, *, order: int = 0):
    """The exact Q map (or Q', Q'') as a sympy expression in the symbol ``q``, or None.

    Known closed forms come from :mod:`kernelshape.maps.closed_forms` (ReLU family, erf,
    sin, cos, exp, polynomials); None means none is known, not that none exists.

    Example:
        >>> from kernelshape import activation
        >>> q_map_expr(activation("relu"))
        q/2
    """
    order = _check_order(order)
    from . import closed_forms
    return closed_forms.q_map_expr(act, order)


def c_map_expr(act, *, order: int = 0, q=1):
    """The exact C map (or C', C'') at input ``q`` as a sympy expression in ``c``, or None.

    Args:
        act: an activation (parameters may stay symbolic where the closed form allows).
        order: 0, 1 or 2.
        q: a positive number or a sympy expression.

    Example:
        >>> from kernelshape import activation
        >>> c_map_expr(activation("identity"))
        c
    """
    order = _check_order(order)
    if isinstance(q, numbers.Real) or (np.ndim(q) == 0 and isinstance(q, np.generic)):
        _check_q_values(np.asarray([float(q)]))
    from . import closed_forms
    return closed_forms.c_map_expr(act, order, q)


# -- validation ------------------------------------------------------------------------------
def _check_order(order):
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order not in (
            0, 1, 2):
        raise DomainError(f"order must be 0, 1 or 2 (value, first, second derivative), "
                          f"got {order!r}")
    return int(order)


def _check_digits(digits):
    if digits is None:
        return None
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) or digits < 1:
        raise PrecisionError(f"digits must be None (float64) or an integer >= 1, got "
                             f"{digits!r}")
    if digits > MAX_DIGITS:
        raise PrecisionError(f"digits must be at most MAX_DIGITS = {MAX_DIGITS} for the maps "
                             f"(mpmath work grows like digits^2 to digits^3), got {digits!r}")
    return int(digits)


def _check_array(name, value, digits):
    """(array, is_scalar): float64 for the fast path, object (exact inputs) with digits."""
    _refuse_non_numbers(name, value)
    try:
        scalar = np.ndim(value) == 0
        if digits is None:
            arr = np.asarray(value, dtype=np.float64)
        else:
            import mpmath
            obj = np.asarray(value, dtype=object)
            arr = np.empty(obj.shape, dtype=object)
            for idx, v in np.ndenumerate(obj):
                if isinstance(v, (complex, np.complexfloating, mpmath.mpc)):
                    raise TypeError("complex")
                arr[idx] = mpmath.mpf(v)
    except (TypeError, ValueError) as err:
        raise DomainError(f"{name} must be a real number or an array of real numbers, got "
                          f"{value!r}") from err
    if np.iscomplexobj(value):
        raise DomainError(f"{name} must be real, got complex {value!r}")
    if arr.dtype == object:
        all_finite = bool(np.all(np.isfinite(arr.astype(np.float64))))
    else:   # in chunks: a long array costs no full-size temporary
        flat = arr.reshape(-1)
        all_finite = all(np.isfinite(flat[lo:lo + _CHUNK]).all()
                         for lo in range(0, flat.size, _CHUNK))
    if not all_finite:
        finite = np.isfinite(arr.astype(np.float64))
        bad = float(np.asarray(arr.astype(np.float64))[~finite].ravel()[0])
        raise DomainError(f"{name} must be finite, got {bad!r}"
                          + ("" if scalar else f" at index {np.argwhere(~finite)[0].tolist()}"))
    return arr, scalar


def _check_second_q(q2, digits):
    values, scalar = _check_array("q2", q2, digits)
    if not scalar:
        raise DomainError(f"q2 must be a single number for the C map, got an array of shape "
                          f"{values.shape}")
    as_float = float(values.astype(np.float64).reshape(()))
    if as_float <= 0:
        raise DomainError(f"q2 must be > 0 (a second moment), got {as_float!r}")
    return values.reshape(()).item()


def _refuse_non_numbers(name, value):
    """None and text, which numpy would turn into NaN or parse ("0.5"): name them instead."""
    if value is None or isinstance(value, (str, bytes)):
        raise DomainError(f"{name} must be a real number or an array of real numbers, got "
                          f"{value!r}")
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray)
                                            and value.dtype.kind in "OSU"):
        try:
            items = np.asarray(value, dtype=object)
        except ValueError:   # ragged: the float64 conversion reports it
            return
        for idx, v in np.ndenumerate(items):
            if v is None or isinstance(v, (str, bytes)):
                whole = repr(value)
                whole = whole if len(whole) <= 80 else whole[:77] + "..."
                raise DomainError(f"{name} must be real numbers, got {v!r} at index "
                                  f"{list(idx)} of {whole}")


def _check_q_values(q):
    as_float = q.astype(np.float64)
    if np.any(as_float <= 0):
        bad = float(as_float[as_float <= 0].ravel()[0])
        raise DomainError(f"q must be > 0 (a second moment), got {bad!r}")


def _check_c_values(c):
    if c.dtype != object:
        flat = c.reshape(-1)
        outside = False
        for lo in range(0, flat.size, _CHUNK):   # no full-size temporaries
            size = np.abs(flat[lo:lo + _CHUNK])
            if np.any(size > 1.0 + C_SLACK):
                bad = float(flat[lo:lo + _CHUNK][size > 1.0 + C_SLACK][0])
                raise DomainError(f"c must be a correlation in [-1, 1], got {bad!r}")
            outside = outside or bool(np.any(size > 1.0))
        return np.clip(c, -1.0, 1.0) if outside else c
    as_float = c.astype(np.float64)
    outside = np.abs(as_float) > 1.0
    if np.any(np.abs(as_float) > 1.0 + C_SLACK):
        bad = float(as_float[np.abs(as_float) > 1.0 + C_SLACK].ravel()[0])
        raise DomainError(f"c must be a correlation in [-1, 1], got {bad!r}")
    if np.any(outside):
        c = c.copy()
        c[outside & (as_float > 0)] = 1
        c[outside & (as_float < 0)] = -1
        if c.dtype == object:
            import mpmath
            c[outside] = [mpmath.mpf(v) for v in c[outside]]
    return c


def _check_moment(act, q):
    """act.check_moment(sqrt(q)) once per activation and largest q seen (it is monotone)."""
    checked = act.__dict__.get("_moment_checked_q", 0.0)
    if q > checked:
        act.check_moment(math.sqrt(q))
        act.__dict__["_moment_checked_q"] = q


def _each(values, scalar, fn):
    if scalar:
        return fn(values.reshape(()).item())
    out = np.empty(values.shape, dtype=object)
    for idx, v in np.ndenumerate(values):
        out[idx] = fn(v)
    return out
