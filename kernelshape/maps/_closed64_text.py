"""The text of the closed-form numba module (:mod:`kernelshape.maps._closed64` loads it).

kernelshape's own source, never user text: scalar closed forms per kind (``_erf``,
``_gelu``, ``_sin``, ``_gauss``, ``_slopes``: ``C^(order)`` at one ``x`` from a row of
constants), branch-free ``asin``/``acos``/``exp`` so the loops over them vectorize, and
loops generated per kind (and order): ``loop_K_O`` (a C map over an array, checking it),
``layer_K`` (one network layer, chain rule), ``dual_K`` and ``pairs_K`` (element-wise
layers of kernels on inputs), plus ``start``, ``affine``, ``window_upper``,
``mirror_upper``, ``mehler_sum`` and ``pairs_erf_two_q``. Constants
(the asin fit, Taylor coefficients) are printed into the text, so its hash names them.
"""

from __future__ import annotations

import hashlib
import math

#: The largest |c| accepted (then clipped): 1 + maps.C_SLACK.
C_LIMIT = 1.0 + 1e-15

SOURCE = '''
_TWO_PI = 2.0 * math.pi
_R0, _R1, _R2, _R3, _R4, _R5, _R6, _R7, _R8, _R9 = RELU_SERIES
_PIO2_HI = 1.5707963267948966
_PIO2_LO = 6.123233995736766e-17
_PI_HI = 3.141592653589793
_PI_LO = 1.2246467991473532e-16


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _asin_small(w):
    """asin(w) for 0 <= w <= 1/2 as ``w + w^3 P(w^2)``, P the degree-14 Chebyshev fit of
    ``(asin(sqrt t) - sqrt t) / t^(3/2)`` on [0, 1/4] (mpmath, 40 digits; fit error 6e-20):
    within 2 ulp, and a polynomial without branches, so loops over it vectorize."""
    t = w * w
    acc = {ASIN_HORNER}
    return w + w * t * acc


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _exp(y):
    """exp(y) for |y| <= 700: ``2^k exp(r)``, ``k = round(y / log 2)``, ``r`` reduced with a
    two-part log 2, exp(r) (|r| <= 0.35) by its Taylor polynomial to r^13 (next term below
    5e-18), 2^k from a table: within 2 ulp, branch-free (vectorizes)."""
    k = math.floor(y * 1.4426950408889634 + 0.5)
    r = (y - k * 0.6931471803691238) - k * 1.9082149292705877e-10
    poly = {EXP_HORNER}
    return poly * _POW2[min(max(int(k) + 1022, 0), 2045)]


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _asin(z):
    """asin(z), |z| <= 1: ``pi/2 - 2 asin(sqrt((1 - |z|) / 2))`` above 1/2 (1 - |z| is exact
    there), the polynomial below; the sign restored. Branch-free (selects only)."""
    a = abs(z)
    r = _asin_small(min(a, math.sqrt(0.5 * (1.0 - a))))
    big = (_PIO2_HI - 2.0 * r) + _PIO2_LO
    return math.copysign(big if a > 0.5 else r, z)


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _asin_near(z, comp):
    """asin(z), |z| <= 1, given ``comp = 1 - |z|`` computed without cancellation (steep
    kernels: z = r x with r within 1e-12 of 1, where 1 - |z| from the rounded z loses
    eps / sqrt(comp) relative); otherwise as :func:`_asin`."""
    a = abs(z)
    r = _asin_small(min(a, math.sqrt(0.5 * comp)))
    big = (_PIO2_HI - 2.0 * r) + _PIO2_LO
    return math.copysign(big if a > 0.5 else r, z)


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _acos_minus(x):
    """acos(-x) without cancellation: 2 asin(sqrt((1 - |x|) / 2)) for x < -1/2,
    pi - that for x > 1/2, pi/2 + asin(x) between."""
    a = abs(x)
    r = _asin_small(min(a, math.sqrt(0.5 * (1.0 - a))))
    if a <= 0.5:
        return (_PIO2_HI + math.copysign(r, x)) + _PIO2_LO
    return 2.0 * r if x < 0.0 else (_PI_HI - 2.0 * r) + _PI_LO


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _relu_r(x, p):
    """R(c) = sqrt(1 - c^2) + c acos(-c), p = acos(-c); for p < 1 (where it cancels)
    sin p - p cos p = p^3 sum_j (-1)^j (2j + 2) / (2j + 3)! p^(2j), to p^21."""
    p2 = p * p
    acc = _R9
    acc = acc * p2 + _R8
    acc = acc * p2 + _R7
    acc = acc * p2 + _R6
    acc = acc * p2 + _R5
    acc = acc * p2 + _R4
    acc = acc * p2 + _R3
    acc = acc * p2 + _R2
    acc = acc * p2 + _R1
    acc = acc * p2 + _R0
    series = acc * p2 * p
    direct = math.sqrt((1.0 - x) * (1.0 + x)) + x * p
    return series if p < 1.0 else direct


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _gelu_kt(x, order, big):
    """Kt^(order)(x; P) of the GELU kind, P = big."""
    one_p = 1.0 + big
    dd = (1.0 + big * (1.0 - x)) * (1.0 + big * (1.0 + x))
    d = math.sqrt(dd)
    om = (1.0 - x) * (1.0 + x)
    angle = _asin_near(big * x / one_p, (1.0 + big * (1.0 - abs(x))) / one_p)
    if order == 0:
        return (big * x * angle
                + big * big * (one_p + x * x * (1.0 - big)) / (one_p * d)) / _TWO_PI
    if order == 1:
        return (big * angle
                + x * big * big * (2.0 * big * big * om + 5.0 * big + 3.0)
                / (one_p * dd * d)) / _TWO_PI
    b2 = big * big
    poly = b2 * b2 * om * om + (6.0 * b2 * big + 2.0 * b2) * om + 11.0 * b2 + 12.0 * big + 4.0
    return b2 * poly / (_TWO_PI * dd * dd * d)


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _erf(order, p, x):
    """ERF, p = (A, r, h, 2 w^2, B): A asin(r x) + B and its derivatives (1 - r x and
    1 + r x written without cancellation)."""
    if order == 0:
        return p[0] * _asin_near(p[1] * x, p[2] * (1.0 + p[3] * (1.0 - abs(x)))) + p[4]
    lo = p[2] * (1.0 + p[3] * (1.0 - x))
    hi = p[2] * (1.0 + p[3] * (1.0 + x))
    root = math.sqrt(lo * hi)
    if order == 1:
        return p[0] * p[1] / root
    return p[0] * p[1] * p[1] * p[1] * x / (lo * hi * root)


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _gelu(order, p, x):
    """GELU, p = (L, M, P): L x + M Kt(x; P) and its derivatives."""
    v = p[1] * _gelu_kt(x, order, p[2])
    if order == 0:
        return p[0] * x + v
    if order == 1:
        return p[0] + v
    return v


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _sin(order, p, x):
    """SIN, p = (s, M, shift, w_even, w_odd, large, e^-s): M s^j e^-s (sinh(s x) +
    w_j e^(-s x)) (+ shift at j = 0)."""
    s = p[0]
    y = s * x
    w = p[3] if order % 2 == 0 else p[4]
    if p[5] != 0.0:   # s > 300: exp(-s) underflows against sinh(s c)
        a = math.exp(-s * (1.0 - x))
        b = math.exp(-s * (1.0 + x))
        k = 0.5 * (a - b) + w * b
    else:
        e = _exp(-y)
        y2 = y * y
        series = y * (1.0 + y2 / 6.0 * (1.0 + y2 / 20.0 * (1.0 + y2 / 42.0 * (
            1.0 + y2 / 72.0 * (1.0 + y2 / 110.0 * (1.0 + y2 / 156.0 * (
                1.0 + y2 / 210.0)))))))
        sh = series if abs(y) < 0.5 else 0.5 * (1.0 / e - e)
        k = p[6] * (sh + w * e)
    if order == 0:
        return p[1] * k + p[2]
    return p[1] * k * (s if order == 1 else s * s)


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _gauss(order, p, x):
    """GAUSS, p = (v, M, shift): M ((1 + v (1 - x)) (1 + v (1 + x)))^(-1/2) + shift."""
    v = p[0]
    t = 1.0 / math.sqrt((1.0 + v * (1.0 - x)) * (1.0 + v * (1.0 + x)))
    if order == 0:
        return p[1] * t + p[2]
    t3 = t * t * t
    if order == 1:
        return p[1] * v * v * x * t3
    return p[1] * v * v * t3 * (1.0 + 3.0 * v * v * x * x * t * t)


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM, inline="always")
def _slopes(order, p, x):
    """SLOPES, p = (s_l s_r / qn, (s_r - s_l)^2 / (2 pi qn)): p0 x + p1 R(x)."""
    if order == 2:
        return p[1] / math.sqrt((1.0 - x) * (1.0 + x)) if p[1] != 0.0 else 0.0
    acos_minus = _acos_minus(x)
    if order == 1:
        return p[0] + p[1] * acos_minus
    return p[0] * x + p[1] * _relu_r(x, acos_minus)


{LOOPS}

{LAYERS}


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def start(c, order, x, d1, d2):
    """x = c clipped to [-1, 1], d1 = 1, d2 = 0 (to ``order``); 1 when some c is NaN or
    beyond [-1, 1] by more than the slack, else 0."""
    bad = 0
    for i in range(c.shape[0]):
        v = c[i]
        bad |= not (abs(v) <= _LIMIT)
        x[i] = min(max(v, -1.0), 1.0)
    if order > 0:
        d1[:] = 1.0
    if order > 1:
        d2[:] = 0.0
    return bad


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def window_upper(k, t1, t2, norm, w2, b2, add, out, half):
    """A stride-1 convolution followed by its dense part, on the upper triangle of a kernel
    over (input, position) pairs (kernelshape.networks._kernels): with
    s = sum over taps (u, v) of k[a, i + u, j + v, b, p + u, m + v] (entries outside k
    count 0), out = (s / norm) w2 + b2, or add + (s / norm) w2 when ``add`` has out's
    shape (the NTK: add is the new NNGP). Only entries whose (b, p, m) >= (a, i, j)
    (row-major order) are read or written: the shifts keep that order, so the upper
    triangle needs the upper triangle alone. Separable: the first axis pair into ``half``
    (shape ``(n, o1, s2, n, o1, s2)``), then the second; each sum in tap order from 0."""
    n, s1, s2 = k.shape[0], k.shape[1], k.shape[2]
    o1, o2 = out.shape[1], out.shape[2]
    ntk = add.shape[0] == n
    kf = k.reshape(n, s1, s2, n, s1 * s2)
    hf = half.reshape(n, o1, s2, n, o1 * s2)
    for a in range(n):
        for i in range(o1):
            for j in range(s2):
                h = hf[a, i, j]
                for b in range(a, n):
                    first = i * s2 + j if b == a else 0
                    for f in range(first, o1 * s2):
                        h[b, f] = 0.0
                for u in t1:
                    ii = i + u
                    if 0 <= ii < s1:
                        src = kf[a, ii, j]
                        hi = min(o1, s1 - u) * s2
                        shift = u * s2
                        for b in range(a, n):
                            first = i * s2 + j if b == a else 0
                            for f in range(max(max(0, -u) * s2, first), hi):
                                h[b, f] += src[b, f + shift]
    for a in range(n):
        for i in range(o1):
            for j in range(o2):
                row = out[a, i, j]
                for b in range(a, n):
                    for p in range(i if b == a else 0, o1):
                        first = j if b == a and p == i else 0
                        for m in range(first, o2):
                            row[b, p, m] = 0.0
                for v in t2:
                    jj = j + v
                    if 0 <= jj < s2:
                        src = half[a, i, jj]
                        hi = min(o2, s2 - v)
                        for b in range(a, n):
                            for p in range(i if b == a else 0, o1):
                                first = j if b == a and p == i else 0
                                for m in range(max(max(0, -v), first), hi):
                                    row[b, p, m] += src[b, p, m + v]
                for b in range(a, n):
                    for p in range(i if b == a else 0, o1):
                        first = j if b == a and p == i else 0
                        if ntk:
                            plus = add[a, i, j, b, p]
                            for m in range(first, o2):
                                row[b, p, m] = plus[m] + (row[b, p, m] / norm) * w2
                        else:
                            for m in range(first, o2):
                                row[b, p, m] = (row[b, p, m] / norm) * w2 + b2


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def pairs_erf_two_q(amp, big, shift, k, diag, t, k_out, t_out):
    """The ERF kind at unequal second moments on the upper triangle (r <= c) of a kernel
    matrix (kernelshape.networks._dual._erf_two_q, the same formulas): value
    amp atan2(big k, root) + shift, slope amp big / root, root = sqrt(1 + big (d_r + d_c)
    + big^2 max(d_r d_c - k^2, 0)); the NTK t (when it has k's size) times the slope."""
    size = k.shape[0]
    ntk = t.shape[0] == size
    for r in range(size):
        dr = diag[r]
        kr = k[r]
        ko = k_out[r]
        if ntk:
            tr = t[r]
            to = t_out[r]
            for c in range(r, size):
                x = kr[c]
                det = max(dr * diag[c] - x * x, 0.0)
                root = math.sqrt(1.0 + big * (dr + diag[c]) + big * big * det)
                ko[c] = amp * math.atan2(big * x, root) + shift
                to[c] = tr[c] * (amp * big / root)
        else:
            for c in range(r, size):
                x = kr[c]
                det = max(dr * diag[c] - x * x, 0.0)
                root = math.sqrt(1.0 + big * (dr + diag[c]) + big * big * det)
                ko[c] = amp * math.atan2(big * x, root) + shift


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def mehler_sum(rows, i1, i2, need, c, out):
    """out[e] = sum over n < need[e] of rows[i1[e], n] rows[i2[e], n] c[e]^n, by Horner from
    the highest term as numpy's polyval (kernelshape.maps.two_q.cross_moments: Mehler's
    series of many pairs of second moments, one row of Hermite coefficients per moment)."""
    for e in range(c.shape[0]):
        a = rows[i1[e]]
        b = rows[i2[e]]
        x = c[e]
        acc = 0.0
        for k in range(need[e] - 1, -1, -1):
            acc = a[k] * b[k] + acc * x
        out[e] = acc


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def mirror_upper(k):
    """k[c, r] = k[r, c] for c > r: a square matrix whose upper triangle holds its values
    made whole, in tiles of 8 x 8 (a cache line of the column written per row)."""
    size = k.shape[0]
    for r0 in range(0, size, 8):
        for c0 in range(r0, size, 8):
            for r in range(r0, min(r0 + 8, size)):
                for c in range(max(c0, r + 1), min(c0 + 8, size)):
                    k[c, r] = k[r, c]


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def affine(a, b, m, order, x, d1, d2):
    """A dense layer on the scalar path: x -> (a x + b) / m, derivatives times a / m."""
    ratio = a / m
    for i in range(x.shape[0]):
        x[i] = (a * x[i] + b) / m
    if order > 0:
        for i in range(x.shape[0]):
            d1[i] *= ratio
    if order > 1:
        for i in range(x.shape[0]):
            d2[i] *= ratio
'''

_LOOP = '''
@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def loop_{kind}_{order}(p, c, out):
    bad = 0
    row = (p[0], p[1], p[2], p[3], p[4], p[5], p[6])
    for i in range(c.shape[0]):
        x = c[i]
        bad |= not (abs(x) <= _LIMIT)
        x = min(max(x, -1.0), 1.0)
        {store}
    return bad
'''

#: The per-kind scalar functions of SOURCE, by kind code.
FUNCTIONS = ("_erf", "_gelu", "_sin", "_gauss", "_slopes")


def _loops():
    value = "out[i] = {fn}({order}, row, x)"
    # C(1) = 1 exactly: a select on the computed value (a branch around the call would
    # keep the loop from vectorizing)
    exact = "v = {fn}({order}, row, x)\n        out[i] = 1.0 if x == 1.0 else v"
    return "\n".join(_LOOP.format(kind=k, order=o, store=(exact if o == 0 else value).format(
        fn=FUNCTIONS[k], order=o)) for k in range(5) for o in range(3))


def _layers():
    return "\n".join(t.format(kind=k, fn=FUNCTIONS[k]) for k in range(5)
                     for t in (_LAYER, _DUAL, _PAIRS))


_LAYER = '''
@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def layer_{kind}(p, order, x, d1, d2):
    row = (p[0], p[1], p[2], p[3], p[4], p[5], p[6])
    n = x.shape[0]
    if order == 0:
        for i in range(n):
            xi = x[i]
            v = {fn}(0, row, xi)
            x[i] = 1.0 if xi >= 1.0 else v
    elif order == 1:
        for i in range(n):
            xi = x[i]
            d1[i] *= {fn}(1, row, xi)
            v = {fn}(0, row, xi)
            x[i] = 1.0 if xi >= 1.0 else v
    else:
        for i in range(n):
            xi = x[i]
            g1 = {fn}(1, row, xi)
            g2 = {fn}(2, row, xi)
            d = d1[i]
            d2[i] = (g2 * d * d + g1 * d2[i]) if d != 0.0 else g1 * d2[i]
            d1[i] = g1 * d
            v = {fn}(0, row, xi)
            x[i] = 1.0 if xi >= 1.0 else v
'''

_DUAL = '''
@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def dual_{kind}(p, q, big_q, k12, value, slope):
    """value = Q C(c), slope = Q C'(c) / q at c = k12 / q clipped to [-1, 1] (slope only
    when it has the size of k12): E[phi(u) phi(v)] and E[phi'(u) phi'(v)] of a layer."""
    row = (p[0], p[1], p[2], p[3], p[4], p[5], p[6])
    n = k12.shape[0]
    for i in range(n):
        x = min(max(k12[i] / q, -1.0), 1.0)
        v = {fn}(0, row, x)
        value[i] = big_q * (1.0 if x == 1.0 else v)
    if slope.shape[0] == n:
        scale = big_q / q
        for i in range(n):
            x = min(max(k12[i] / q, -1.0), 1.0)
            slope[i] = scale * {fn}(1, row, x)
'''

_PAIRS = '''
@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def pairs_{kind}(p, big_q, q, homogeneous, k, diag, t, k_out, t_out):
    """An element-wise layer on the upper triangle (r <= c) of a symmetric kernel matrix k
    (and the NTK t, when it has k's size): c = k / s, value A C(c), slope B C'(c); one
    second moment q (s = q, A = Q(q), B = Q(q) / q), or a positively homogeneous phi
    (s = sqrt(d_r d_c) from the diagonal, A = Q(1) s, B = Q(1)). Entries below the
    diagonal are neither read nor written (mirror_upper makes the matrix whole); rows are
    contiguous, so the loops vectorize. One copy of the loop per (NTK, homogeneous) case:
    with the two tests inside a single loop it does not vectorize (3x slower, measured
    5.1 against 1.7 ms on 512 x 512)."""
    row = (p[0], p[1], p[2], p[3], p[4], p[5], p[6])
    size = k.shape[0]
    ntk = t.shape[0] == size
    scale = big_q if homogeneous else big_q / q
    for r in range(size):
        dr = diag[r]
        kr = k[r]
        ko = k_out[r]
        if ntk:
            tr = t[r]
            to = t_out[r]
            if homogeneous:
                for c in range(r, size):
                    s = math.sqrt(dr * diag[c])
                    x = min(max(kr[c] / s, -1.0), 1.0)
                    v = {fn}(0, row, x)
                    ko[c] = big_q * (1.0 if x == 1.0 else v) * s
                    to[c] = tr[c] * ({fn}(1, row, x) * scale)
            else:
                for c in range(r, size):
                    x = min(max(kr[c] / q, -1.0), 1.0)
                    v = {fn}(0, row, x)
                    ko[c] = big_q * (1.0 if x == 1.0 else v)
                    to[c] = tr[c] * ({fn}(1, row, x) * scale)
        elif homogeneous:
            for c in range(r, size):
                s = math.sqrt(dr * diag[c])
                x = min(max(kr[c] / s, -1.0), 1.0)
                v = {fn}(0, row, x)
                ko[c] = big_q * (1.0 if x == 1.0 else v) * s
        else:
            for c in range(r, size):
                x = min(max(kr[c] / q, -1.0), 1.0)
                v = {fn}(0, row, x)
                ko[c] = big_q * (1.0 if x == 1.0 else v)
'''

#: The Chebyshev fit of _asin_small, lowest power first (see its docstring).
_ASIN_FIT = (0.16666666666666666, 0.07499999999999991, 0.0446428571428834,
             0.030381944441363808, 0.02237215927967998, 0.017352757477819787,
             0.013965009932053607, 0.011549086612987425, 0.009792751320201996,
             0.008135829925501657, 0.00879500607648843, 0.000380853033290726,
             0.022553563638202982, -0.024020544918554605, 0.030718768995191097)


def _horner(coeffs, var):
    text = repr(coeffs[-1])
    for a in reversed(coeffs[:-1]):
        text = f"({text}) * {var} + {a!r}"
    return text


def _asin_horner():
    return _horner(_ASIN_FIT, "t")


def _exp_horner():
    return _horner([1.0 / math.factorial(n) for n in range(14)], "r")


def _relu_series():
    # (-1)^j (2j + 2) / (2j + 3)!, j = 0..9
    return tuple((-1) ** j * (2 * j + 2) / math.factorial(2 * j + 3) for j in range(10))


def module_text():
    """(module name, module text): the name holds a hash of the kernelshape version and the
    text, so any change of either lands in a new module and new cache entries.

    Example:
        >>> name, text = module_text()
        >>> name.startswith("_kernelshape_jit_closed64_"), "def loop_0_0(" in text
        (True, True)
    """
    from .. import __version__
    text = ("# generated by kernelshape (maps/_closed64.py); do not edit\n"
            "import math\nimport numpy as np\nfrom numba import njit\n\n"
            "_FM = False   # no fused multiply-add: compiled and Python runs give the same bits\n"
            "_POW2 = np.array([2.0 ** k for k in range(-1022, 1024)])\n"
            f"_CACHE = False\n_LIMIT = {C_LIMIT!r}\nRELU_SERIES = {_relu_series()!r}\n"
            + SOURCE.replace("{LOOPS}", _loops()).replace("{LAYERS}", _layers())
            .replace("{ASIN_HORNER}", _asin_horner())
            .replace("{EXP_HORNER}", _exp_horner()))
    digest = hashlib.sha256(f"{__version__}\n{text}".encode()).hexdigest()[:24]
    return f"_kernelshape_jit_closed64_{digest}", text
