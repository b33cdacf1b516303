"""The DKS/TAT solver internals: analytic Jacobians, small input scales, failure messages.

References: central finite differences of the solvers' own conditions (a Jacobian check:
step ``h`` gives ~1e-15 / h rounding and ~h^2 truncation, so 1e-7 relative at h ~ 1e-6;
at input scale 1e-4 the conditions move as a^2, so steps of 1e-2 a and 1e-5 relative),
and the 30-digit mpmath Gauss-Legendre re-evaluation of ``tests/test_gauss.py`` for
conditions near their limits (at 30 digits ``phi(a x + b) + d`` keeps 24 digits even when
``a = 1e-8``).
"""

import itertools
import math
import re

import mpmath
import numpy as np
import pytest

from kernelshape import activation
from kernelshape.errors import UnreachableTargetError
from kernelshape.maps.gauss import moments_of
from kernelshape.networks import mlp, resnet
from kernelshape.transforms import dks, tat
from kernelshape.transforms.dks import local_maps as dks_maps
from kernelshape.transforms.tat import local_maps as tat_maps

_ACTS = {}


def _act(name):
    if name not in _ACTS:
        _ACTS[name] = activation(name)
    return _ACTS[name]


def _fd_jacobian(f, x, rel):
    """Central differences of ``f`` (a vector) at ``x`` with steps ``rel * |x_j|``."""
    cols = []
    for j in range(len(x)):
        h = rel * abs(x[j])
        xp, xm = list(x), list(x)
        xp[j] += h
        xm[j] -= h
        cols.append((np.array(f(xp)) - np.array(f(xm))) / (2 * h))
    return np.array(cols).T


@pytest.mark.parametrize("name, a, b, rel, tol", [
    ("tanh", 0.3, 0.4, 1e-6, 1e-7),
    ("gelu", 1.3, -0.2, 1e-6, 1e-7),
    ("selu", 0.7, 0.2, 1e-6, 1e-7),       # phi' jumps at 0: Dirac masses of phi''
    ("relu", 0.8, 0.5, 1e-6, 1e-7),
    ("tanh", 1e-4, 0.55, 1e-2, 1e-5),     # the t-integral form (C'(1) - 1 = O(a^2))
])
def test_dks_jacobian_matches_differences(name, a, b, rel, tol):
    moments = moments_of(_act(name))
    _, grads, _ = dks_maps(moments, a, b)
    fd = _fd_jacobian(lambda x: dks_maps(moments, *x)[0], [a, b], rel)
    np.testing.assert_allclose(np.array(grads), fd, rtol=tol, atol=tol * np.abs(fd).max())


@pytest.mark.parametrize("name, x, rel, tol", [
    ("tanh", (0.3, 0.4, 0.05), 1e-6, 1e-7),
    ("softplus", (1.2, -0.5, -0.3), 1e-6, 1e-7),
    ("elu", (0.5, 0.1, 0.2), 1e-6, 1e-7),            # phi'' jumps at 0
    ("tanh", (1e-4, 0.52, 2e-6), 1e-2, 1e-5),        # small input scale
])
def test_tat_jacobian_matches_differences(name, x, rel, tol):
    moments = moments_of(_act(name))
    _, grads, _ = tat_maps(moments, *x)
    fd = _fd_jacobian(lambda y: tat_maps(moments, *y)[0], list(x), rel)
    np.testing.assert_allclose(np.array(grads), fd, rtol=tol, atol=tol * np.abs(fd).max())


def _mp_maps(base, p):
    """Q(1), Q'(1), C(0), C'(1), C''(1) of ``g (base(a x + b) + d)`` (``p`` in dks names)
    at 30 digits (16-point Gauss-Legendre on unit panels over |z| <= 10, split at kinks)."""
    xs, ws = np.polynomial.legendre.leggauss(16)
    with mpmath.workdps(30):
        a, b = mpmath.mpf(p["input_scale"]), mpmath.mpf(p["input_shift"])
        d, g = mpmath.mpf(p["output_shift"]), mpmath.mpf(p["output_scale"])
        cuts = {(mpmath.mpf(k.location) - b) / a for k in base.kinks}
        edges = sorted({mpmath.mpf(v) for v in range(-10, 11)} | {c for c in cuts if -10 < c < 10})
        s = [mpmath.mpf(0)] * 5
        for lo, hi in itertools.pairwise(edges):
            half, mid = (hi - lo) / 2, (hi + lo) / 2
            for xq, wq in zip(xs, ws):
                z = mid + half * mpmath.mpf(xq)
                w = mpmath.mpf(wq) * half * mpmath.npdf(z)
                x = a * z + b
                f0, f1, f2 = g * (base.mp(x) + d), g * a * base.mp(x, 1), g * a * a * base.mp(x, 2)
                for i, v in enumerate((f0 * f0, f0 * f1 * z, f0, f1 * f1, f2 * f2)):
                    s[i] += w * v
        return {"Q(1)": s[0], "Q'(1)": s[1], "C(0)": s[2] ** 2 / s[0], "C'(1)": s[3] / s[0],
                "C''(1)": s[4] / s[0]}


@pytest.mark.parametrize("name, network, zeta", [
    ("tanh", mlp(10), 1 + 1e-9), ("softplus", resnet(50, 0.9), 1 + 1e-9),
    ("gelu", mlp(10), 1 + 1e-12), ("erf", resnet(101, 0.6), 1 + 1e-6),
])
def test_dks_near_the_identity(name, network, zeta):
    # C'(1) -> 1 as input_scale -> 0, so zeta just above 1 is reachable; the conditions
    # are met to 1e-14, re-evaluated at 30 digits
    t = dks(_act(name), network=network, zeta=zeta)
    assert t.params["input_scale"] < 1e-2
    maps = _mp_maps(t.base, t.params)
    for r in t.residuals:
        assert abs(float(maps[r.condition]) - r.target) <= 1e-14, (r, maps[r.condition])
        assert abs(r.achieved - float(maps[r.condition])) <= 1e-14


@pytest.mark.parametrize("name, tau", [("tanh", 1e-9), ("softplus", 1e-12), ("gelu", 1e-6)])
def test_tat_tiny_curvature(name, tau):
    t = tat(_act(name), network=mlp(10), tau=tau)
    maps = _mp_maps(t.base, t.params)
    for r in t.residuals:
        assert abs(float(maps[r.condition]) - r.target) <= 1e-14, (r, maps[r.condition])


def test_unreachable_message_reports_the_value_at_the_reported_parameters():
    # xi = 1e30: target + F would print 0.0; the message reports C'(1) evaluated at the
    # parameters it names (with DKS's output shift and scale), re-checked at 30 digits
    with pytest.raises(UnreachableTargetError) as info:
        dks(_act("tanh"), network=mlp(10), zeta=1e300)
    message = str(info.value)
    number = r"([-+0-9.e]+)"
    claimed = float(re.search(r"closest value reached C'\(1\) = " + number, message)[1])
    params = {k: float(re.search(k + "=" + number, message)[1])
              for k in ("input_scale", "input_shift", "output_shift", "output_scale")}
    assert claimed == pytest.approx(float(_mp_maps(_act("tanh"), params)["C'(1)"]), rel=1e-13)


def test_warm_solve_is_independent_of_earlier_solves():
    # same inputs, same bits, whatever was solved before on the same activation object
    phi = activation("softplus")
    first = dks(phi, network=resnet(101, 0.6))
    tat(phi, network=mlp(10), tau=1e-9)
    dks(phi, network=mlp(3), zeta=1.2)
    again = dks(phi, network=resnet(101, 0.6))
    assert first.params == again.params and first.residuals == again.residuals
    assert math.isfinite(first.max_residual)
