"""Closed-form C maps and a deep erf network, kernelshape beside neural-tangents (issue 17).

Run: ``python benchmarks/bench_closed_forms.py [--nt-python PATH] [--repeat N] [--quick]``.

Prints one table, measured in one run: for each closed-form activation (erf, gelu in its erf
form, relu, abs, sin, neural-tangents' Gaussian ``exp(-x^2)``) the float64 C map and its
first two derivatives at 10,000 values of ``c`` in [-1, 1] at ``q = 1``, then the 50-layer
erf network (``linear(sigma_w=2, sigma_b=0.5)`` and erf, 50 times): C, C', C''.

* kernelshape: the public calls ``phi.c_map(c, order=k)`` and ``net.c_map(phi, c,
  order=k)`` (argument checks included), best over repeats of the mean of a batch of calls.
* neural-tangents 0.6.5 (jax 0.4.30, float64), in a subprocess of ``--nt-python`` (default
  ``$KERNELSHAPE_NT_PYTHON`` or ``/work/ntvenv/bin/python``): ``stax.Erf()``,
  ``stax.Gelu()``, ``stax.Relu()``, ``stax.Abs()``, ``stax.Sin()``, ``stax.Gaussian()``
  (``exp(-x^2)``), and ``stax.serial((Dense(W_std=2, b_std=0.5), Erf()) x 50)``; their
  ``kernel_fn`` on a kernel of unit variances whose 100 x 100 ``nngp`` holds the same
  10,000 values of c, divided by the output variance (a C map, like kernelshape's),
  derivatives by forward-mode ``jax.jvp`` (nested for the second), the whole function under
  ``jax.jit``, timed after compilation the same way, each call waited for
  (``block_until_ready``: jax dispatches asynchronously, and a loop that waits only at its
  end overlaps the next call's Python dispatch with the computation on the second core;
  kernelshape's calls return finished arrays). "not available" when that interpreter has no
  neural-tangents.

Both sides run with one BLAS/XLA thread. The values of both sides are compared (max
relative difference printed) before the ratio ``ks / NT`` (below 1: kernelshape faster).
Then: NNGP + NTK on inputs (``benchmarks/bench_kernels.py``'s network and timing, both
sides), and the extra memory of one 10^7-value C map (tracemalloc peak beyond the output
array; tanh: the general Hermite-series route, in chunks).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

N_C = 10_000
DEPTH, SIGMA_W, SIGMA_B = 50, 2.0, 0.5

#: (label, kernelshape expression, neural-tangents layer)
CASES = [
    ("erf", "erf", "stax.Erf()"),
    ("gelu (erf form)", "gelu_exact", "stax.Gelu(approximate=False)"),
    ("relu", "relu", "stax.Relu()"),
    ("abs", "abs(x)", "stax.Abs()"),
    ("sin", "sin", "stax.Sin()"),
    ("NT Gaussian exp(-x^2)", "exp(-x**2)", "stax.Gaussian()"),
]
NET_LABEL = f"{DEPTH}-layer erf net, sw {SIGMA_W:g}, sb {SIGMA_B:g}"

NT_SCRIPT = r"""
import json, sys, time
import numpy as np
from jax import config
config.update("jax_enable_x64", True)
import jax, jax.numpy as jnp
from neural_tangents import stax
from neural_tangents._src.utils.kernel import Kernel
spec = json.loads(sys.argv[1])
c = np.linspace(-1.0, 1.0, spec["n"]).reshape(100, -1)
side = c.shape[0]

def c_map_fn(layer):
    kernel_fn = layer[2]
    def f(nngp):
        k = Kernel(cov1=jnp.ones(side), cov2=None, nngp=nngp, ntk=None,
                   x1_is_x2=jnp.array(False), is_gaussian=True, is_reversed=False,
                   is_input=False, diagonal_batch=True, diagonal_spatial=False,
                   shape1=(side, 1), shape2=(side, 1), batch_axis=0, channel_axis=1,
                   mask1=None, mask2=None)
        out = kernel_fn(k)
        return out.nngp / out.cov1[0]
    return f

def derivative(f):
    return lambda x: jax.jvp(f, (x,), (jnp.ones_like(x),))[1]

def timed(fn, x, repeat, inner):
    fn = jax.jit(fn)
    fn(x).block_until_ready()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn(x).block_until_ready()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best, np.asarray(fn(x)).ravel()

results = {}
x = jnp.asarray(c)
for label, layer_text in spec["cases"]:
    layer = eval(layer_text)
    if label == "net":
        layers = []
        for _ in range(spec["depth"]):
            layers += [stax.Dense(1, W_std=spec["sw"], b_std=spec["sb"]), stax.Erf()]
        layer = stax.serial(*layers)
    f = c_map_fn(layer)
    fns = [f, derivative(f), derivative(derivative(f))]
    rows = []
    for order, g in enumerate(fns):
        inner = spec["inner"] if label != "net" else max(1, spec["inner"] // 20)
        t, values = timed(g, x, spec["repeat"], inner)
        rows.append({"time": t, "values": values[::97].tolist()})
    results[label] = rows
print(json.dumps(results))
"""


def nt_python(path):
    return path if path and os.path.exists(path) else None


def one_thread_env():
    return dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
                TF_CPP_MIN_LOG_LEVEL="3")


def time_neural_tangents(python, repeat, inner):
    """{label: [{time, values} per order]} from neural-tangents, or None."""
    if python is None:
        return None
    cases = [[label, layer] for label, _, layer in CASES] + [["net", "None"]]
    spec = {"n": N_C, "cases": cases, "repeat": repeat, "inner": inner, "depth": DEPTH,
            "sw": SIGMA_W, "sb": SIGMA_B}
    out = subprocess.run([python, "-c", NT_SCRIPT, json.dumps(spec)], capture_output=True,
                         text=True, env=one_thread_env(), check=False)
    if out.returncode != 0:
        if "No module named" in out.stderr:
            return None
        raise RuntimeError(f"neural-tangents run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(fn, repeat, inner):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def erf_network():
    import kernelshape as ks
    layers = []
    for _ in range(DEPTH):
        layers += [ks.linear(sigma_w=SIGMA_W, sigma_b=SIGMA_B), ks.nonlinear()]
    return ks.chain(*layers)


def time_kernelshape(repeat, inner):
    """{label: [{time, values} per order]}, the same layout as neural-tangents' side."""
    import kernelshape as ks
    c = np.linspace(-1.0, 1.0, N_C)
    results = {}
    for label, expr, _ in CASES:
        phi = ks.activation(expr)
        rows = []
        for order in range(3):
            t = timed(lambda phi=phi, order=order: phi.c_map(c, order=order), repeat, inner)
            rows.append({"time": t, "values": phi.c_map(c, order=order)[::97].tolist()})
        results[label] = rows
    net, erf = erf_network(), ks.activation("erf")
    rows = []
    for order in range(3):
        t = timed(lambda order=order: net.c_map(erf, c, order=order), repeat,
                  max(1, inner // 20))
        rows.append({"time": t, "values": net.c_map(erf, c, order=order)[::97].tolist()})
    results["net"] = rows
    return results


def memory_peak(expr, n=10**7):
    """Extra bytes (tracemalloc peak beyond the output) of one C map at n values of c."""
    import tracemalloc

    import kernelshape as ks
    phi = ks.activation(expr)
    c = np.linspace(-1.0, 1.0, n)
    phi.c_map(c[:1000])
    tracemalloc.start()
    t0 = time.perf_counter()
    out = phi.c_map(c)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - out.nbytes, elapsed


def agreement(ks_values, nt_values):
    a, b = np.asarray(ks_values), np.asarray(nt_values)
    finite = np.isfinite(a) & np.isfinite(b)
    scale = np.maximum(np.abs(b[finite]), 1e-300)
    return float(np.max(np.abs(a[finite] - b[finite]) / np.maximum(scale, 1e-3)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nt-python", default=os.environ.get(
        "KERNELSHAPE_NT_PYTHON", "/work/ntvenv/bin/python"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--inner", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="maps only (no kernels, memory)")
    args = parser.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)
    except ImportError:
        limit = None
    python = nt_python(args.nt_python)
    nt = time_neural_tangents(python, args.repeat, args.inner)
    ks_res = time_kernelshape(args.repeat, args.inner)
    print(f"C maps at {N_C} values of c, q = 1, float64, one thread "
          f"(best of {args.repeat} batches)")
    print(f"{'work':34s} {'order':>5s} {'ks ms':>9s} {'NT ms':>9s} {'ks/NT':>7s} "
          f"{'max rel diff':>12s}")
    labels = [label for label, _, _ in CASES] + ["net"]
    for label in labels:
        for order in range(3):
            mine = ks_res[label][order]
            name = NET_LABEL if label == "net" else label
            if nt is None:
                print(f"{name:34s} {order:5d} {mine['time'] * 1e3:9.4f} "
                      f"{'not available':>9s}")
                continue
            theirs = nt[label][order]
            diff = agreement(mine["values"], theirs["values"])
            print(f"{name:34s} {order:5d} {mine['time'] * 1e3:9.4f} "
                  f"{theirs['time'] * 1e3:9.4f} {mine['time'] / theirs['time']:7.2f} "
                  f"{diff:12.1e}")
    if args.quick:
        return
    print()
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import bench_kernels  # its network, inputs and neural-tangents script
    first, steady, k = bench_kernels.time_kernelshape(args.repeat)
    nt_k = bench_kernels.time_neural_tangents(python, args.repeat)
    label = (f"NNGP + NTK on inputs ({bench_kernels.DEPTH} conv + relu, pools; "
             f"{bench_kernels.N} x {bench_kernels.SIZE}x{bench_kernels.SIZE}x"
             f"{bench_kernels.CHANNELS})")
    if nt_k is None:
        print(f"{label}: ks {steady * 1e3:.1f} ms, NT not available")
    else:
        diff = float(np.max(np.abs(k.ntk - nt_k[3])) / np.max(np.abs(nt_k[3])))
        print(f"{label}: ks {steady * 1e3:.1f} ms, NT {nt_k[1] * 1e3:.1f} ms, ks/NT "
              f"{steady / nt_k[1]:.2f} (first calls {first:.2f} s / {nt_k[0]:.2f} s; NTK max "
              f"difference / max entry {diff:.1e})")
    print()
    for expr in ("erf", "relu", "exp(-x**2)", "tanh"):
        extra, elapsed = memory_peak(expr)
        print(f"C map of {expr} at 10^7 values of c: {elapsed:.3f} s, extra memory beyond "
              f"the 80 MB output: {extra / 1e6:.2f} MB (tracemalloc peak)")
    if limit is not None:
        limit.restore_original_limits()


if __name__ == "__main__":
    sys.exit(main())
