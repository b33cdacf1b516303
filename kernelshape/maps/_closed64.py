"""Closed-form C maps in float64: one fused numba loop per call, no temporaries.

Where the kernel ``K(c) = E[f(U) f(V)]`` has a closed form (THEORY.md §1;
:mod:`kernelshape.maps.closed_forms`), ``C^(k)(c) = K^(k)(c) / Q`` is evaluated in one
compiled loop that also checks the input (NaN, ``|c| > 1 + C_SLACK``) and clips rounding
strays, writing straight into the output. Recognised structures of the base activation
(with its transform ``g (phi(a x + b) + d)``; ``s = a^2 q``):

* ``ERF``: ``mu erf(k x) + e`` (``b = 0``): ``K = mu^2 (2/pi) asin(r c) + E^2``,
  ``r = 2 w^2 / (1 + 2 w^2)``, ``w^2 = k^2 s``;
* ``GELU``: ``lam x + mu x erf(k x)`` (``b = d = 0``; gelu's erf form):
  ``K = lam^2 s c + (2 mu^2 / k^2) Kt(c; P)``, ``P = 2 k^2 s``, with
  ``Kt = P c asin(P c / (1 + P)) / (2 pi) + P^2 (1 + P + c^2 (1 - P)) / (2 pi (1 + P) D)``,
  ``D = sqrt((1 + P (1 - c)) (1 + P (1 + c)))`` (Stein's lemma on ``x Phi(x)``; checked
  against the 40-digit references);
* ``SIN``: ``mu sin(k x + b0) + e`` or ``cos``: ``K^(j) = mu^2 s^j e^-s [sinh(s c) +
  w_j e^(-s c)]`` with ``w_j = sin^2`` or ``cos^2`` of the phase by the parity of j, plus the
  shift terms at j = 0;
* ``GAUSS``: ``mu exp(-kappa x^2) + e`` (``b = 0``): ``Kt = ((1 + v (1 - c))
  (1 + v (1 + c)))^(-1/2)``, ``v = 2 kappa s``;
* ``SLOPES``: ``s_l x 1{x<0} + s_r x 1{x>0}`` (ReLU, leaky ReLU, abs; ``b = d = 0``):
  ``K = s_l s_r c + (s_r - s_l)^2 R(c) / (2 pi)``, ``R = sqrt(1 - c^2) + c acos(-c)`` (a
  series where it cancels, ``acos(-c) < 1``).

The kernels are kernelshape's own text (:data:`SOURCE`), loaded like the generated
activation modules (:mod:`kernelshape._jitcache`): written to the trusted cache directory,
machine code cached on disk with checked entries, and compared once per process against
the same source run by Python before use (code that disagrees is discarded and rebuilt).
"""

from __future__ import annotations

import hashlib
import math
import threading

import numpy as np

__all__ = ["KINDS", "SOURCE", "closed_spec", "compiled", "constants", "fast_c_map",
           "kernels"]

ERF, GELU, SIN, GAUSS, SLOPES = range(5)
KINDS = {"erf": ERF, "gelu": GELU, "sin": SIN, "gauss": GAUSS, "slopes": SLOPES}
#: Length of a constants row (the numba kernels index into it).
WIDTH = 8
_C_LIMIT = 1.0 + 1e-15   # maps.C_SLACK

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
    if order == 0:
        return (big * x * _asin(big * x / one_p)
                + big * big * (one_p + x * x * (1.0 - big)) / (one_p * d)) / _TWO_PI
    if order == 1:
        return (big * _asin(big * x / one_p)
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
        return p[0] * _asin(p[1] * x) + p[4]
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
def _window_axis(k, taps, out):
    """out[a, i, j, b, p, m] = sum over taps u of k[a, i + u, j, b, p + u, m] (entries
    outside k count 0): the window sum along the second axis pair, each output summed in
    a register over its valid taps, the innermost loop contiguous."""
    n, s1, s2 = k.shape[0], k.shape[1], k.shape[2]
    o1 = out.shape[1]
    for a in range(n):
        for i in range(o1):
            for j in range(s2):
                for b in range(n):
                    for p in range(o1):
                        for m in range(s2):
                            out[a, i, j, b, p, m] = 0.0
                        for u in taps:
                            ii, pp = i + u, p + u
                            if 0 <= ii < s1 and 0 <= pp < s1:
                                for m in range(s2):
                                    out[a, i, j, b, p, m] += k[a, ii, j, b, pp, m]


@njit(cache=_CACHE, error_model="numpy", fastmath=_FM)
def window_sum(k, t1, t2, norm, out):
    """out[a, i, j, b, p, m] = sum over taps (u, v) of k[a, i + u, j + v, b, p + u, m + v]
    (entries outside k count 0) / norm: a convolution's aligned window average of a kernel
    over (input, position) pairs, two spatial axes (kernelshape.networks._kernels);
    separable, one axis pair at a time."""
    n, s2 = k.shape[0], k.shape[2]
    o1, o2 = out.shape[1], out.shape[2]
    half = np.empty((n, o1, s2, n, o1, s2))
    _window_axis(k, t1, half)
    # the third axis pair: swap the two spatial axes, sum, swap back
    swapped = np.ascontiguousarray(half.transpose(0, 2, 1, 3, 5, 4))
    done = np.empty((n, o2, o1, n, o2, o1))
    _window_axis(swapped, t2, done)
    out[...] = done.transpose(0, 2, 1, 3, 5, 4)
    flat = out.reshape(-1)
    for i in range(flat.shape[0]):
        flat[i] /= norm


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
    """An element-wise layer on a symmetric kernel matrix k (and the NTK t, when it has k's
    size), entries (r, c) with r <= c computed, mirrored: c = k / s, value A C(c), slope
    B C'(c); one second moment q (s = q, A = Q(q), B = Q(q) / q), or a positively
    homogeneous phi (s = sqrt(d_r d_c) from the diagonal, A = Q(1) s, B = Q(1))."""
    row = (p[0], p[1], p[2], p[3], p[4], p[5], p[6])
    size = k.shape[0]
    ntk = t.shape[0] == size
    for r in range(size):
        for c in range(r, size):
            s = math.sqrt(diag[r] * diag[c]) if homogeneous else q
            x = min(max(k[r, c] / s, -1.0), 1.0)
            v = {fn}(0, row, x)
            v = big_q * (1.0 if x == 1.0 else v) * (s if homogeneous else 1.0)
            k_out[r, c] = v
            k_out[c, r] = v
            if ntk:
                g = {fn}(1, row, x) * (big_q if homogeneous else big_q / q)
                t_out[r, c] = t[r, c] * g
                t_out[c, r] = t[c, r] * g
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


_LOCK = threading.Lock()
_MODULE = []


def _module_text():
    from .. import __version__
    text = ("# generated by kernelshape (maps/_closed64.py); do not edit\n"
            "import math\nimport numpy as np\nfrom numba import njit\n\n"
            "_FM = {'contract'}   # fused multiply-add: as exact or better, and faster\n"
            "_POW2 = np.array([2.0 ** k for k in range(-1022, 1024)])\n"
            f"_CACHE = False\n_LIMIT = {_C_LIMIT!r}\nRELU_SERIES = {_relu_series()!r}\n"
            + SOURCE.replace("{LOOPS}", _loops()).replace("{LAYERS}", _layers())
            .replace("{ASIN_HORNER}", _asin_horner())
            .replace("{EXP_HORNER}", _exp_horner()))
    digest = hashlib.sha256(f"{__version__}\n{text}".encode()).hexdigest()[:24]
    return f"_kernelshape_jit_closed64_{digest}", text


def kernels():
    """The closed-form module (loaded once per process; functions compile on first use,
    or load from the disk cache). Use :func:`compiled` for checked functions."""
    if _MODULE:
        return _MODULE[0]
    with _LOCK:
        if not _MODULE:
            from .._jitcache import cache_dir
            key, text = _module_text()
            _MODULE.append(_load(key, text, cache_dir()))
    return _MODULE[0]


_CHECKED: dict = {}


def compiled(name):
    """The module's function ``name``, its machine code checked on its first use in this
    process against the same source run by Python; code loaded from disk that disagrees is
    discarded (the module reloaded, recompiling) with a CacheWarning."""
    fn = _CHECKED.get(name)
    if fn is not None:
        return fn
    mod = kernels()
    with _LOCK:
        problem = _check(mod, name)
        if problem and sum(getattr(mod, name).stats.cache_hits.values()):
            from .._jitcache import discard, warn
            warn(f"kernelshape discarded the cached machine code of {mod.__file__}: "
                 f"{problem}; recompiled")
            key, text = _module_text()
            path = getattr(mod, "_path", None)
            if path is not None:
                discard(path)
            _CHECKED.clear()
            _MODULE[0] = mod = _load(key, text, path.parent if path is not None else None)
            _check(mod, name)
        fn = _CHECKED[name] = getattr(mod, name)
    return fn


def _load(key, text, directory):
    """Execute ``text`` as module ``key``; with a trusted directory, its numba entries
    cached there (checked entries, :mod:`kernelshape._jitnumba`)."""
    import sys
    import types

    from .._jitcache import _ensure_source, warn
    path = None
    if directory is not None:
        path = directory / f"{key}.py"
        try:
            _ensure_source(path, text)
        except OSError as err:
            warn(f"kernelshape cannot write its numba cache to {directory} ({err}); "
                 "kernels are compiled in memory for this process")
            path = None
    module = types.ModuleType(key)
    module.__file__ = str(path) if path is not None else f"<{key}>"
    module._path = path
    sys.modules[key] = module
    exec(compile(text, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our text
    if path is not None:
        from .._jitnumba import attach_caches
        attach_caches(module, hashlib.sha256(text.encode()).hexdigest())
    return module


#: Sample constants per kind for the first-use checks (any finite values do).
_SAMPLES = {ERF: (0.5, 0.6, 0.4, 1.5, 0.1), GELU: (0.25, 0.5, 1.3), SIN: (
    1.3, 0.7, 0.1, 0.2, 0.8, 0.0, math.exp(-1.3)), GAUSS: (0.7, 0.9, 0.1),
    SLOPES: (0.0, 1.0 / math.pi)}


def _check(module, name):
    """None when compiled ``name`` agrees with its source run by Python, else why not."""
    from .._jitnumba import _interpreted, is_finite_close
    xs = np.array([-1.0, -0.7, -0.3, 0.0, 0.4, 0.95, 1.0])
    fn = getattr(module, name)
    if name == "window_sum":
        k = np.arange(2 * 3 * 2 * 2 * 3 * 2, dtype=np.float64).reshape(2, 3, 2, 2, 3, 2)
        taps = np.array([-1, 0, 1])
        out = np.empty_like(k)
        fn(k, taps, taps, 9.0, out)
        want = np.empty_like(k)
        _interpreted(module)["window_sum"](k, taps, taps, 9.0, want)
        return None if np.array_equal(out, want) else "window_sum disagrees with its source"
    if name in ("start", "affine"):
        x, d1, d2 = np.empty_like(xs), np.empty_like(xs), np.empty_like(xs)
        bad = module.start(np.append(xs[:-1], 1.0 + 4e-16), 2, x, d1, d2)
        module.affine(2.0, 0.5, 2.5, 2, x, d1, d2)
        want = (2.0 * xs + 0.5) / 2.5
        if bad or not np.allclose(x, want, rtol=1e-15) or not np.allclose(d1, 0.8) or \
                np.any(d2 != 0.0):
            return f"{name} gives {x.tolist()}, {d1.tolist()}, {d2.tolist()}"
        return None
    kind = int(name.split("_")[1])
    orders = [int(name.split("_")[2])] if name.startswith("loop") else [0, 1, 2]
    p = np.zeros(WIDTH)
    p[:len(_SAMPLES[kind])] = _SAMPLES[kind]
    if name.startswith("loop"):
        got = [np.empty_like(xs)]
        fn(p, xs, got[0])
    elif name.startswith("pairs"):
        orders = [0, 1]
        k = np.outer(xs, xs)
        got = [np.empty_like(k), np.empty_like(k)]
        fn(p, 3.0, 2.0, False, 2.0 * k, np.full(xs.size, 2.0), np.ones_like(k), *got)
        xs = np.outer(xs, xs).ravel()
        got = [got[0].ravel() / 3.0, got[1].ravel() * 2.0 / 3.0]
    elif name.startswith("dual"):
        orders = [0, 1]
        got = [np.empty_like(xs), np.empty_like(xs)]
        fn(p, 2.0, 3.0, 2.0 * xs, *got)
        got = [got[0] / 3.0, got[1] * 2.0 / 3.0]
    else:
        got = [xs.copy(), np.ones_like(xs), np.zeros_like(xs)]
        fn(p, 2, *got)
    pure = _interpreted(module)[FUNCTIONS[kind]]
    row = tuple(p[:7])
    for order, values in zip(orders, got):
        for x, value in zip(xs, values):
            if kind == SLOPES and order == 2 and abs(x) == 1.0:
                continue   # inf (Python's float division raises instead)
            want = 1.0 if order == 0 and x == 1.0 else pure(order, row, float(x))
            if not is_finite_close(float(value), float(want), 1e-12):
                return f"C^({order}) of kind {kind} at {x!r}: {value!r}, source {want!r}"
    return None


# -- recognising a closed form ------------------------------------------------------------
def closed_spec(act):
    """``(kind, base parameters)`` of the activation's base, or None (kept on the base)."""
    base = act.base
    cached = base.__dict__.get("_closed64_spec", 0)
    if cached == 0:
        import sympy as sp
        try:
            cached = None if base.free else _recognise(base, sp)
        except (TypeError, ValueError, sp.PolynomialError):
            cached = None
        base.__dict__["_closed64_spec"] = cached
    return cached


def _number(e):
    return float(e) if e.is_number and e.is_real else None


def _linear(arg, x, sp):
    if not arg.is_polynomial(x):
        return None
    poly = sp.Poly(arg, x)
    if poly.degree() != 1:
        return None
    return _number(poly.coeff_monomial(x)), _number(poly.coeff_monomial(1))


def _recognise(base, sp):
    from ..parsing import X
    if len(base.pieces) == 2:
        return _slopes(base, X, sp)
    if len(base.pieces) != 1:
        return None
    expr = sp.expand(base.expr)
    const, rest = expr.as_independent(X, as_Add=True)
    e0 = _number(const)
    terms = sp.Add.make_args(rest)
    if e0 is None:
        return None
    if len(terms) == 1:
        mu, f = terms[0].as_independent(X, as_Add=False)
        mu = _number(mu)
        if mu is None or mu == 0.0:
            return None
        if isinstance(f, sp.erf):
            lin = _linear(f.args[0], X, sp)
            if lin and None not in lin and lin[1] == 0.0:
                return ("erf", mu, lin[0], e0)
        if isinstance(f, (sp.sin, sp.cos)):
            lin = _linear(f.args[0], X, sp)
            if lin and None not in lin:
                return ("sin" if isinstance(f, sp.sin) else "cos", mu, lin[0], lin[1], e0)
        if isinstance(f, sp.exp) and f.args[0].is_polynomial(X):
            poly = sp.Poly(f.args[0], X)
            coeffs = [_number(v) for v in poly.all_coeffs()]
            if poly.degree() == 2 and None not in coeffs and coeffs[0] < 0 and \
                    coeffs[1] == 0.0 and coeffs[2] == 0.0:
                return ("gauss", mu, -coeffs[0], e0)
    if e0 != 0.0:
        return None
    lam = mu = k = None
    for term in terms:
        coeff, f = term.as_independent(X, as_Add=False)
        coeff = _number(coeff)
        if coeff is None:
            return None
        if f == X:
            lam = coeff
        elif isinstance(f, sp.Mul) and len(f.args) == 2 and X in f.args:
            (inner,) = [a for a in f.args if a != X]
            lin = _linear(inner.args[0], X, sp) if isinstance(inner, sp.erf) else None
            if not lin or None in lin or lin[1] != 0.0 or mu is not None:
                return None
            mu, k = coeff, lin[0]
        else:
            return None
    if mu is None:
        return None
    return ("gelu", lam or 0.0, mu, k)


def _slopes(base, x, sp):
    left, right = base.pieces
    if left.hi != 0.0:
        return None
    slopes = []
    for piece in (left, right):
        e = sp.expand(base.branches[piece.branch])
        if not e.is_polynomial(x) or sp.degree(e, x) > 1 or e.subs(x, 0) != 0:
            return None
        slopes.append(_number(sp.Poly(e, x).coeff_monomial(x)) if e != 0 else 0.0)
    if None in slopes:
        return None
    return ("slopes", slopes[0], slopes[1])


# -- constants per (activation, q) --------------------------------------------------------
def constants(act, q):
    """``(kind, row, Q)``: the kernel's kind code, its constants at input ``q`` and the Q
    map ``E[phi(sqrt(q) z)^2]``; None when no closed form covers the activation (kept on
    the activation per q)."""
    cache = act.__dict__.get("_closed64_rows")
    if cache is None:
        cache = act.__dict__["_closed64_rows"] = {}
    hit = cache.get(q)
    if hit is None and q not in cache:
        spec = None if act.free else closed_spec(act)
        hit = None if spec is None else _row(spec, act.affine_params, q)
        if len(cache) > 64:
            cache.clear()
        cache[q] = hit
    return hit


def _row(spec, affine, q):
    a, b, d, g = (float(v) for v in affine)
    name = spec[0]
    p = np.zeros(WIDTH)
    if name in ("sin", "cos"):
        _, mu, k, b0, e0 = spec
        w = k * a * math.sqrt(q)
        phase = k * b + b0
        s = w * w
        sin2, cos2 = math.sin(phase) ** 2, math.cos(phase) ** 2
        mean_dir = math.sin(phase) if name == "sin" else math.cos(phase)
        even, odd = (sin2, cos2) if name == "sin" else (cos2, sin2)
        e = e0 + d
        m = mu * mean_dir * math.exp(-0.5 * s)
        big = mu * mu * (-0.5 * math.expm1(-2.0 * s) + even * math.exp(-2.0 * s))
        shift = 2.0 * e * m + e * e
        qn = big + shift
        p[:7] = (s, mu * mu / qn, shift / qn, even, odd, 1.0 if s > 300.0 else 0.0,
                 math.exp(-s))
        return SIN, p, g * g * qn
    if b != 0.0:
        return None
    if name == "erf":
        _, mu, k, e0 = spec
        w2x2 = 2.0 * (k * a) ** 2 * q
        h = 1.0 / (1.0 + w2x2)
        r = w2x2 * h
        e = e0 + d
        amp = mu * mu * 2.0 / math.pi
        qn = amp * math.asin(r) + e * e
        p[:5] = (amp / qn, r, h, w2x2, e * e / qn)
        return ERF, p, g * g * qn
    if name == "gauss":
        _, mu, kappa, e0 = spec
        v = 2.0 * kappa * a * a * q
        e = e0 + d
        mean = 1.0 / math.sqrt(1.0 + v)
        shift = 2.0 * mu * e * mean + e * e
        qn = mu * mu / math.sqrt(1.0 + 2.0 * v) + shift
        p[:3] = (v, mu * mu / qn, shift / qn)
        return GAUSS, p, g * g * qn
    if d != 0.0:
        return None
    if name == "gelu":
        _, lam, mu, k = spec
        s = a * a * q
        big = 2.0 * k * k * s
        one_p = 1.0 + big
        kt1 = (big * math.asin(big / one_p) + big * big * 2.0 / (one_p * math.sqrt(
            1.0 + 2.0 * big))) / (2.0 * math.pi)
        amp = 2.0 * mu * mu / (k * k)
        qn = lam * lam * s + amp * kt1
        p[:3] = (lam * lam * s / qn, amp / qn, big)
        return GELU, p, g * g * qn
    _, sl, sr = spec   # slopes, of f(u) = g phi(a sqrt(q) u): sides swap for a < 0
    t = g * a * math.sqrt(q)
    sl, sr = (sl * t, sr * t) if a > 0 else (sr * t, sl * t)
    qn = 0.5 * (sl * sl + sr * sr)
    if qn == 0.0:
        return None
    p[:2] = (sl * sr / qn, (sr - sl) ** 2 / (2.0 * math.pi * qn))
    return SLOPES, p, qn


_F64 = np.dtype(np.float64)


def fast_c_map(act, c, q, order):
    """``C^(order)`` at a float64 array ``c`` through the closed form, or None (no closed
    form, or an argument the general route must check and report: it raises there).

    The per-call work is a dictionary hit (``(loops, row)`` per activation and q, only
    valid q's stored), the output allocation and the compiled loop, which checks c."""
    if c.dtype != _F64 or type(order) is not int or not 0 <= order <= 2:
        return None
    cache = act.__dict__.get("_closed64_fast")
    hit = None if cache is None else cache.get(q)
    if hit is None:
        if type(q) is not float and type(q) is not int or not 0.0 < q < math.inf:
            return None
        found = constants(act, float(q))
        if found is None:
            return None
        hit = ([None, None, None], found[1], found[0])
        if cache is None or len(cache) > 64:
            cache = act.__dict__["_closed64_fast"] = {}
        cache[q] = hit
    loop = hit[0][order]
    if loop is None:
        loop = hit[0][order] = compiled(f"loop_{hit[2]}_{order}")
    if c.ndim == 1 and c.strides[0] == 8:
        out = np.empty_like(c)
        if loop(hit[1], c, out):
            return None
        return out
    flat = c.reshape(-1)   # a copy when c is not contiguous
    out = np.empty_like(flat)
    if loop(hit[1], flat, out):
        return None
    return out.reshape(c.shape)
