"""Shared test configuration: hypothesis profiles and a wall-clock bound for one example.

Hypothesis profiles (select with the environment variable ``HYPOTHESIS_PROFILE``):

* ``ci`` (default): ``max_examples = 40``, derandomized (the same examples on every run, so
  a failure reproduces and the numba disk cache of the fuzzed activations is reused), no
  shrinking (a failing example is reported as found),
  ``deadline = 10 s`` per example. Property tests whose examples compile a fresh numba
  module (a new activation expression) take a share of ``max_examples`` (see
  :func:`examples`) and replace the deadline by :func:`time_limit` (a SIGALRM bound):
  hypothesis's own deadline would call a first-call compilation "flaky timing". Budget:
  every hypothesis test of the suite together stays under ~2.5 minutes on two busy cores.
* ``long``: ``max_examples = 400``, random (new examples each run, failures stored in the
  local example database), ``deadline = 60 s``. For local bug hunting:
  ``HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py``.
* ``dev``: ``max_examples = 10``, for editing the tests themselves.

Time bounds (``time_limit``) are generous multiples of the measured cost: they catch hangs
and runaway loops, not slowness (speed is measured in benchmarks/, never asserted).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import threading

import numpy as np
from hypothesis import HealthCheck, Phase, settings

_SLOW_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large]

# No shrinking in CI: a failure is reported as found (shrinking a slow property can take
# minutes); the long profile shrinks.
settings.register_profile(
    "ci", max_examples=40, derandomize=True, deadline=10_000, database=None,
    suppress_health_check=_SLOW_CHECKS, print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.register_profile(
    "long", max_examples=400, deadline=60_000, suppress_health_check=_SLOW_CHECKS,
    print_blob=True)
settings.register_profile(
    "dev", max_examples=10, derandomize=True, deadline=None, database=None,
    suppress_health_check=_SLOW_CHECKS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: The ``max_examples`` of the loaded profile (40 in ``ci``).
PROFILE_EXAMPLES = settings.default.max_examples


def examples(share: float, *, minimum: int = 3) -> int:
    """A test's number of examples: ``share`` of the profile's ``max_examples``.

    Expensive properties take a small share (e.g. 0.15 -> 6 examples in ``ci``, 60 in
    ``long``); cheap ones a share up to 1.
    """
    return max(minimum, math.ceil(share * PROFILE_EXAMPLES))


class Hang(AssertionError):
    """An operation ran past its wall-clock bound (a hang, not a KernelShapeError)."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "operation"):
    """Fail with :class:`Hang` when the block runs longer than ``seconds`` (SIGALRM).

    The alarm is delivered between Python bytecodes, so a long numba kernel is interrupted
    when it returns. Outside the main thread (or without SIGALRM) the block runs unbounded.
    """
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"{what} did not finish within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- an independent reference for Gaussian expectations of an activation -------------------
# Built only from the activation's sympy expression (printed to mpmath by sympy.lambdify),
# numpy's Gauss-Legendre nodes and the kink locations: it shares no code with kernelshape's
# numba kernels or its mpmath route. Composite 20-point Gauss-Legendre on panels of width
# 0.5 over |z| <= 40, split at the kinks: about 1e-14 relative for the activations the tests
# use (pieces analytic within ~0.2 of the real axis, in units of the base activation's input:
# for a transformed activation phi(a x + b) the panels within |z| <= 9 shrink by |a| sqrt(q)).
class Reference:
    """Float64 Gaussian expectations of ``phi(sqrt(q) z)`` and its derivatives, z ~ N(0, 1)."""

    HALF_WIDTH, PANEL, NODES = 40.0, 0.5, 20

    def __init__(self, act, q: float = 1.0, *, digits: int = 30):
        import sympy as sp

        self.q = float(q)
        root = math.sqrt(self.q)
        expr = sp.piecewise_fold(act.expr.rewrite(sp.Piecewise))
        breaks = [b / root for b in act.breakpoints]
        edges = set(np.arange(-self.HALF_WIDTH, self.HALF_WIDTH + 1e-9, self.PANEL).tolist())
        stretch = abs(float(act.affine_params[0])) * root
        if stretch > 1:
            fine = self.PANEL / stretch
            edges |= set(np.arange(-9.0, 9.0 + 1e-9, fine).tolist())
        edges |= {float(b) for b in breaks if abs(b) < self.HALF_WIDTH}
        edges = sorted(edges)
        gx, gw = np.polynomial.legendre.leggauss(self.NODES)
        z, w = [], []
        for lo, hi in itertools.pairwise(edges):
            if hi - lo < 1e-15:
                continue
            z.append((hi - lo) / 2 * gx + (hi + lo) / 2)
            w.append((hi - lo) / 2 * gw)
        self.z = np.concatenate(z)
        self.w = np.concatenate(w) * np.exp(-self.z**2 / 2) / math.sqrt(2 * math.pi)
        self._root, self._digits, self._expr, self.values = root, digits, expr, {}

    def f(self, order=0, sign=1):
        """``phi^(order)(sign * sqrt(q) z)`` at the nodes (derivative in x, not in z)."""
        if (order, sign) not in self.values:
            import mpmath
            import sympy as sp

            from kernelshape.parsing import X
            with mpmath.workdps(self._digits):
                fn = sp.lambdify(X, sp.diff(self._expr, X, order), modules="mpmath")
                self.values[order, sign] = np.array(
                    [float(mpmath.re(fn(mpmath.mpf(sign * self._root * float(v)))))
                     for v in self.z])
        return self.values[order, sign]

    def expect(self, values):
        return float(np.sum(self.w * values))

    @property
    def Q(self):
        return self.expect(self.f() ** 2)

    def Q_derivative(self, order):
        """``Q^(k)(q) = E[phi^2 He_2k(z)] / (2q)^k``."""
        z = self.z
        he = {0: 1.0, 1: z**2 - 1, 2: z**4 - 6 * z**2 + 3}[order]
        return self.expect(self.f() ** 2 * he) / (2 * self.q) ** order

    def C_at_one(self, order, sign=1):
        """``C^(k)(sign) = q^k E[phi^(k)(U) phi^(k)(sign U)] / Q`` (no Dirac masses: smooth)."""
        return self.q**order * self.expect(self.f(order) * self.f(order, sign)) / self.Q

    @property
    def C0(self):
        return self.expect(self.f()) ** 2 / self.Q

    def hermite_coefficients(self, n_max=120):
        """``b_n = E[phi(sqrt(q) z) He_n(z)] / sqrt(n!)`` (normalized Hermite recurrence)."""
        z, f = self.z, self.f()
        h_prev, h = np.zeros_like(z), np.ones_like(z)
        out = []
        for n in range(n_max + 1):
            out.append(self.expect(f * h))
            h_prev, h = h, (z * h - math.sqrt(n) * h_prev) / math.sqrt(n + 1)
        return np.array(out)

    def C_series(self, c, order=0, n_max=120):
        """``C^(k)(c) = sum_n b_n^2 n!/(n-k)! c^(n-k) / Q`` for ``|c| <= 0.6`` (tail < 1e-26)."""
        assert abs(c) <= 0.6
        b2 = self.hermite_coefficients(n_max) ** 2
        total = 0.0
        for n in range(order, n_max + 1):
            falling = math.prod(range(n - order + 1, n + 1))
            total += b2[n] * falling * c ** (n - order)
        return total / self.Q


def pytest_configure(config):
    # hypothesis's failure report imports mypy_extensions, whose import warns; under the
    # suite's filterwarnings=error that turned a reported failure into an INTERNALERROR.
    config.addinivalue_line("filterwarnings",
                            "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")
