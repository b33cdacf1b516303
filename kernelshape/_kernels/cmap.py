# ruff: noqa: F821
"""C-map kernels appended to every generated activation module (see ``kernelshape/_jit.py``).

A template, never imported itself: ``_branch``, ``_piece_of``, ``math``, ``np``, ``njit`` and
``_CACHE`` come from the generated module. All kernels work in standardized coordinates:
``f(u) = G * (phi(alpha * u + beta) + D)`` with ``phi`` the base activation (pieces ``lo, hi,
br`` in base x-coordinates), so a transformed activation at any ``q`` reuses the base's
compiled code (``alpha = input_scale * sqrt(q)``). ``r_k(u) = f^(k)(u)`` away from kinks.
"""


@njit(cache=_CACHE)
def hermite_project(fw, z, nmax, out):
    """``out[n] = sum_j fw[j] psi_n(z[j])`` for n <= nmax, psi_n = He_n / sqrt(n!).

    With ``fw = weights * f(z)`` of a Gaussian quadrature rule this is the Hermite
    coefficient ``E[f(z) He_n(z)] / sqrt(n!)``. The orthonormal three-term recurrence
    ``psi_{n+1} = (z psi_n - sqrt(n) psi_{n-1}) / sqrt(n + 1)`` is stable and does not overflow
    where the Gaussian weight is not negligible. Four nodes run their recurrences side by
    side (independent chains keep the divider busy: about 4x faster for thousands of
    coefficients); their four terms are added, then Kahan-summed over the nodes. (The
    one-q maps use the numpy :func:`kernelshape.maps.hermite.projections`; this kernel
    serves :mod:`kernelshape.maps.two_q`.)
    """
    comp = np.zeros(nmax + 1)
    for n in range(nmax + 1):
        out[n] = 0.0
    roots = np.sqrt(np.arange(nmax + 2).astype(np.float64))
    m = z.shape[0]
    for j in range(0, m, 4):
        fa, za = fw[j], z[j]
        fb, zb = (fw[j + 1], z[j + 1]) if j + 1 < m else (0.0, 0.0)
        fc, zc = (fw[j + 2], z[j + 2]) if j + 2 < m else (0.0, 0.0)
        fd, zd = (fw[j + 3], z[j + 3]) if j + 3 < m else (0.0, 0.0)
        if fa == 0.0 and fb == 0.0 and fc == 0.0 and fd == 0.0:
            continue
        a0 = b0 = c0 = d0 = 0.0
        a1 = b1 = c1 = d1 = 1.0
        for n in range(nmax + 1):
            y = ((fa * a1 + fb * b1) + (fc * c1 + fd * d1)) - comp[n]
            t = out[n] + y
            comp[n] = (t - out[n]) - y
            out[n] = t
            r, s = roots[n], roots[n + 1]
            a0, a1 = a1, (za * a1 - r * a0) / s
            b0, b1 = b1, (zb * b1 - r * b0) / s
            c0, c1 = c1, (zc * c1 - r * c0) / s
            d0, d1 = d1, (zd * d1 - r * d0) / s


@njit(cache=_CACHE)
def _inner(order, c, s, u, alpha, beta, gak, add, lo, hi, br, fpts, tw, h, gx, gw, buf):
    """``E_W[r_k(c u + s W)]``, W ~ N(0, 1), on [-tw, tw]: split where ``c u + s w`` meets a
    feature point (kinks and the activation's structure, u-coordinates in ``fpts``), panels
    of width <= h, Gauss-Legendre (gx, gw) on each."""
    nb = 0
    buf[nb] = -tw
    nb += 1
    buf[nb] = tw
    nb += 1
    cu = c * u
    for p in range(fpts.shape[0]):
        w = (fpts[p] - cu) / s
        if -tw < w < tw:
            buf[nb] = w
            nb += 1
    bounds = np.sort(buf[:nb])
    inv_sqrt_2pi = 0.3989422804014327
    total = 0.0
    for i in range(nb - 1):
        a0 = bounds[i]
        length = bounds[i + 1] - a0
        if length <= 0.0:
            continue
        npanel = max(1, int(math.ceil(length / h)))
        width = length / npanel
        half = 0.5 * width
        for pnl in range(npanel):
            mid = a0 + (pnl + 0.5) * width
            k = br[_piece_of(alpha * (cu + s * mid) + beta, lo, hi)]
            acc = 0.0
            for q in range(gx.shape[0]):
                w = mid + half * gx[q]
                acc += gw[q] * math.exp(-0.5 * w * w) * (
                    gak * _branch(k, order, alpha * (cu + s * w) + beta) + add)
            total += acc * half
    return total * inv_sqrt_2pi


@njit(cache=_CACHE)
def c_direct(cs, order, alpha, beta, G, D, lo, hi, br, fpts, kt, kj, t_out, t_in, h, gx, gw,
             out):
    """``E[f^(k)(U) f^(k)(V)]``, corr(U, V) = c, for each ``|c| < 1`` in ``cs`` (k = order).

    Regular part: ``int phi(u) r_k(u) E_W[r_k(c u + s W)] du`` with ``s = sqrt(1 - c^2)``;
    the outer variable is split at the feature points, at their images ``p / c`` (where the
    inner expectation has its structure) and on a graded mesh ``(t + m s) / c`` around each
    kink t (where the inner expectation changes over a width ~ s as c -> +-1).
    Dirac masses of ``f^(k)`` (weights ``kj`` at kinks ``kt``, u-coordinates) add
    ``2 sum_j J_j phi(t_j) E[r_k(V) | U = t_j] + sum_ij J_i J_j p_c(t_i, t_j)``.
    """
    gak = G * alpha ** order
    add = G * D if order == 0 else 0.0
    nf = fpts.shape[0]
    nk = kt.shape[0]
    grades = np.array([0.0, 0.25, -0.25, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 4.0, -4.0,
                       8.0, -8.0, 16.0, -16.0])
    ng = grades.shape[0]
    nmax = 2 + int(2.0 * t_out / h) + 2 * nf + ng * nk + 4
    obuf = np.empty(nmax)
    ibuf = np.empty(nf + 4)
    inv_sqrt_2pi = 0.3989422804014327
    for ic in range(cs.shape[0]):
        c = cs[ic]
        s = math.sqrt((1.0 - c) * (1.0 + c))
        nb = 0
        obuf[nb] = -t_out
        nb += 1
        obuf[nb] = t_out
        nb += 1
        for p in range(nf):
            v = fpts[p]
            if -t_out < v < t_out:
                obuf[nb] = v
                nb += 1
            if c != 0.0:
                v = fpts[p] / c
                if -t_out < v < t_out:
                    obuf[nb] = v
                    nb += 1
        if c != 0.0:
            for j in range(nk):
                for g in range(ng):
                    v = (kt[j] + grades[g] * s) / c
                    if -t_out < v < t_out:
                        obuf[nb] = v
                        nb += 1
        bounds = np.sort(obuf[:nb])
        total = 0.0
        for i in range(nb - 1):
            a0 = bounds[i]
            length = bounds[i + 1] - a0
            if length <= 0.0:
                continue
            npanel = max(1, int(math.ceil(length / h)))
            width = length / npanel
            half = 0.5 * width
            for pnl in range(npanel):
                mid = a0 + (pnl + 0.5) * width
                k = br[_piece_of(alpha * mid + beta, lo, hi)]
                acc = 0.0
                for q in range(gx.shape[0]):
                    u = mid + half * gx[q]
                    wu = gw[q] * math.exp(-0.5 * u * u)
                    if wu == 0.0:
                        continue
                    ru = gak * _branch(k, order, alpha * u + beta) + add
                    if ru == 0.0:
                        continue
                    acc += wu * ru * _inner(order, c, s, u, alpha, beta, gak, add, lo, hi,
                                            br, fpts, t_in, h, gx, gw, ibuf)
                total += acc * half
        total *= inv_sqrt_2pi
        for j in range(nk):
            if kj[j] == 0.0:
                continue
            tj = kt[j]
            cond = _inner(order, c, s, tj, alpha, beta, gak, add, lo, hi, br, fpts, t_in,
                          h, gx, gw, ibuf)
            total += 2.0 * kj[j] * inv_sqrt_2pi * math.exp(-0.5 * tj * tj) * cond
            for i in range(nk):
                ti = kt[i]
                dt = ti - tj
                expo = -0.5 * dt * dt / (s * s) - ti * tj / (1.0 + c)
                total += kj[i] * kj[j] * math.exp(expo) * inv_sqrt_2pi * inv_sqrt_2pi / s
        out[ic] = total
