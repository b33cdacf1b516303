"""The edge integrals behind softsign's closed inner integrals (kernelshape.maps._mpinner).

``F_d(a) = int_a^inf N(w) / (w - a + d) dw`` is taken by four routes (Dawson series,
Gauss-Laguerre, Taylor steps, truncated gap quadrature); each is checked here against
``mpmath.quad`` of the definition, and each route must actually be taken.
"""

import collections

import mpmath
import pytest

from kernelshape.maps import _mpinner

DPS = 40


def _reference(d, a):
    """``F_d(a)`` by mpmath.quad of the definition (tanh-sinh, panels on the scale of the
    integrand: ``1 / a`` beyond 0, the pole distance ``d`` near ``a``)."""
    if a > 0:
        step = 1 / (4 * a)
        return mpmath.npdf(a) * mpmath.quad(lambda t: mpmath.exp(-a * t - t * t / 2) / (t + d),
                                            [k * step for k in range(400)] + [mpmath.inf])
    cuts = {a + k * min(d, 1) / 8 for k in range(200)}
    cuts |= {mpmath.mpf(v) for v in (-40, -20, -10, -5, -2, 0, 2, 5, 10, 20, 40)}
    cuts = sorted(c for c in cuts if c >= a)
    return mpmath.quad(lambda w: mpmath.npdf(w) / (w - a + d), cuts + [mpmath.inf])


def test_gauss_laguerre_is_exact_on_polynomials():
    with mpmath.workdps(DPS):
        rule = _mpinner._gauss_laguerre(30, DPS)
        for k in (0, 1, 7, 30, 59):
            value = mpmath.fsum(w * x**k for x, w in rule)
            assert abs(value / mpmath.factorial(k) - 1) < mpmath.mpf(10) ** (5 - DPS), k


@pytest.mark.parametrize("d, sweep", [("0.1", True), ("3.2", True), ("22", True),
                                      ("700", False)])
def test_edge_integrals_every_route(d, sweep, monkeypatch):
    # a pole 700 away (small input scales near |c| = 1): every point direct, the moment
    # series between -17 and 0
    taken = collections.Counter()

    def counted(name):
        original = getattr(_mpinner, name)

        def wrapper(*args, **kwargs):
            value = original(*args, **kwargs)
            taken[name] += value is not None
            return value
        monkeypatch.setattr(_mpinner, name, wrapper)

    for name in ("_direct_edge", "_taylor_step", "_integrate_1d", "_moment_edge"):
        counted(name)
    with mpmath.workdps(DPS):
        d = mpmath.mpf(d)
        # far below 0 (series), dense near the pole's edge (Taylor), sparse (quadrature),
        # far above 0 (Laguerre, once a d is large)
        points = [mpmath.mpf(v) for v in (-900, -300, -40, -17, -5, -1.01, -1, -0.995, -0.98, 0,
                                          0.2, 0.21, 3, 8, 30, 200)]
        values = _mpinner._edge_integrals(d, points)
        for a in points:
            ref = _reference(d, a)
            assert abs(values[a] / ref - 1) < mpmath.mpf(10) ** (6 - DPS), (d, a)
    assert taken["_direct_edge"], taken
    assert bool(taken["_taylor_step"] and taken["_integrate_1d"]) == sweep, taken
    assert bool(taken["_moment_edge"]) == (not sweep), taken
