"""Timings of the float64 C map, beside what a general-c C map costs with scipy (as dks would).

Run: ``python benchmarks/bench_maps.py``. Prints

* ``import kernelshape`` in a fresh process (cold);
* the first float64 map call in a fresh process with the numba cache already on disk (tanh
  and relu at one c; elu, the slowest kind, at 10,000 values of c);
* tanh, relu and elu C maps at 10,000 values of c: first call (per-(activation, q)
  precomputation included) and warm (cached) calls, best of 5;
* the dks-style route: dks 0.1.2 has no general-c C map (its C maps are Gauss-Hermite
  expectations at c = 0 and c = 1 only); a general c needs a 2-D integral per value, emulated
  here with ``scipy.integrate.dblquad`` (seconds per value, error vs mpmath references:
  ReLU's closed form, and kernelshape's ``digits=25`` route for tanh).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np

N_C = 10_000


def fresh_process(code: str) -> float:
    """Seconds a snippet takes in a new interpreter (measured inside it)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def dblquad_c_map(phi, c):
    """E[phi(u) phi(v)] / E[phi^2], corr c, by scipy dblquad over (u, w), v = c u + s w."""
    from scipy import integrate
    s = math.sqrt(1 - c * c)
    dens = 1 / (2 * math.pi)
    num, _ = integrate.dblquad(
        lambda w, u: dens * math.exp(-(u * u + w * w) / 2) * phi(u) * phi(c * u + s * w),
        -12, 12, -12, 12)
    den, _ = integrate.quad(lambda u: math.exp(-u * u / 2) / math.sqrt(2 * math.pi)
                            * phi(u) ** 2, -12, 12)
    return num / den


def main():
    import kernelshape as ks

    print("kernelshape C map benchmark (float64, q = 1)")
    t_import = fresh_process(
        "import time; t = time.perf_counter(); import kernelshape; "
        "print(time.perf_counter() - t)")
    print(f"  import kernelshape, fresh process:                   {t_import * 1e3:8.1f} ms")
    ks.activation("tanh").c_map(0.5)          # make sure the numba cache is on disk
    t_first = fresh_process(
        "import kernelshape as ks, time; phi = ks.activation('tanh'); "
        "t = time.perf_counter(); phi.c_map(0.5); print(time.perf_counter() - t)")
    print(f"  first tanh c_map call, fresh process, cache on disk: {t_first * 1e3:8.1f} ms")
    t_first_relu = fresh_process(
        "import kernelshape as ks, time; phi = ks.activation('relu'); "
        "t = time.perf_counter(); phi.c_map(0.5); print(time.perf_counter() - t)")
    print(f"  first relu c_map call, fresh process, cache on disk: {t_first_relu * 1e3:8.1f} ms")
    # the slowest first call: a kinked activation without a closed form or series takes the
    # 2-D rule, so numba starts up (cached kernels) and the theta interpolant is built
    ks.activation("elu").c_map(0.5)
    t_first_elu = fresh_process(
        "import kernelshape as ks, numpy as np, time; phi = ks.activation('elu'); "
        f"c = np.linspace(-1, 1, {N_C}); "
        "t = time.perf_counter(); phi.c_map(c); print(time.perf_counter() - t)")
    print(f"  first elu c_map call ({N_C} c), fresh process:     {t_first_elu * 1e3:8.1f} ms")

    cs = np.linspace(-1.0, 1.0, N_C)
    print(f"\n  C map at {N_C} values of c      first call     warm (best of 5)")
    for name in ("tanh", "relu", "elu"):
        for order in (0, 2):
            phi = ks.activation(name)
            t0 = time.perf_counter()
            phi.c_map(cs, order=order)
            first = time.perf_counter() - t0
            warm = best_of(lambda phi=phi, order=order: phi.c_map(cs, order=order))
            label = f"{name}, order {order}"
            print(f"  {label:30s} {first * 1e3:10.1f} ms {warm * 1e3:12.2f} ms")

    print("\n  dks-style general-c C map (scipy dblquad per value of c) vs kernelshape")
    import mpmath as mp
    tanh, relu = ks.activation("tanh"), ks.activation("relu")
    cases = [("tanh", math.tanh, tanh, c) for c in (-0.5, 0.3, 0.9)]
    cases += [("relu", lambda x: max(x, 0.0), relu, c) for c in (-0.5, 0.3, 0.9)]
    print(f"  {'act':5s} {'c':>5s}   {'dblquad s/value':>15s} {'dblquad err':>11s}   "
          f"{'ks s/value':>10s} {'ks err':>9s}")
    for name, fn, phi, c in cases:
        if name == "relu":
            with mp.workdps(30):
                ref = (mp.sqrt(1 - mp.mpf(c) ** 2) + (mp.pi - mp.acos(c)) * c) / mp.pi
        else:
            ref = phi.c_map(c, digits=25)
        t0 = time.perf_counter()
        value = dblquad_c_map(fn, c)
        t_dbl = time.perf_counter() - t0
        fast_value = phi.c_map(c)
        t_ks = best_of(lambda phi=phi, c=c: phi.c_map(c))
        err_dbl = abs(value - float(ref)) / abs(float(ref))
        err_ks = abs(fast_value - float(ref)) / abs(float(ref))
        print(f"  {name:5s} {c:5.2f}   {t_dbl:15.3f} {err_dbl:11.1e}   {t_ks:10.2e} "
              f"{err_ks:9.1e}")


if __name__ == "__main__":
    main()
