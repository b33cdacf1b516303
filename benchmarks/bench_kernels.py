"""NNGP + NTK of a 20-layer convolutional net with pooling, kernelshape beside neural-tangents.

Run: ``python benchmarks/bench_kernels.py [--nt-python PATH] [--repeat N] [--size S]
[--inputs N] [--depth D] [--activation relu|erf]`` (defaults 8, 8, 20, relu: the figures of
issue 15).

The network: 20 x (3x3 conv, 'same' padding, sigma_w = sqrt(2), sigma_b = 0.1; ReLU), an
average pooling 2x2 after the tenth, global average pooling, a dense readout; 8 inputs of
8x8x3 (numpy ``default_rng(0)``). kernelshape computes ``net.kernel(X, ntk=True)`` in this
process; neural-tangents 0.6.5 its ``jax.jit``-compiled ``kernel_fn(x, None, ("nngp",
"ntk"))`` (float64) in a subprocess of the interpreter given by ``--nt-python`` (default: the
environment variable ``KERNELSHAPE_NT_PYTHON``, else ``/work/ntvenv/bin/python``), or "not
available" when that interpreter lacks neural-tangents. Both are timed the same way: the
first call (neural-tangents' includes jit compilation; kernelshape's the activation's cached
kernels), then the best of ``--repeat`` further calls. Both runs use one BLAS thread, and the
script checks that the two NTKs agree before printing the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

DEPTH, POOL_AFTER, N, SIZE, CHANNELS = 20, 9, 8, 8, 3
ACTIVATION = "relu"

NT_SCRIPT = r"""
import json, sys, time
import numpy as np
from jax import config
config.update("jax_enable_x64", True)
import jax
from neural_tangents import stax
depth, pool_after, repeat, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
act = {"relu": stax.Relu, "erf": stax.Erf}[sys.argv[5]]
layers = []
for i in range(depth):
    layers += [stax.Conv(1, (3, 3), padding="SAME", W_std=2 ** 0.5, b_std=0.1), act()]
    if i == pool_after:
        layers.append(stax.AvgPool((2, 2), strides=(2, 2)))
_, _, kernel_fn = stax.serial(*layers, stax.GlobalAvgPool(), stax.Dense(1))
kernel_fn = jax.jit(kernel_fn, static_argnames="get")
x = np.load(path)
def run():
    k = kernel_fn(x, None, get=("nngp", "ntk"))
    k.ntk.block_until_ready()
    return k
t0 = time.perf_counter(); k = run(); first = time.perf_counter() - t0
best = float("inf")
for _ in range(repeat):
    t0 = time.perf_counter(); run(); best = min(best, time.perf_counter() - t0)
print(json.dumps({"first": first, "steady": best, "nngp": np.asarray(k.nngp).tolist(),
                  "ntk": np.asarray(k.ntk).tolist()}))
"""


def inputs():
    return np.random.default_rng(0).standard_normal((N, SIZE, SIZE, CHANNELS))


def network():
    import kernelshape as ks
    layers = []
    for i in range(DEPTH):
        layers += [ks.conv(3, sigma_w=2 ** 0.5, sigma_b=0.1), ks.nonlinear(ACTIVATION)]
        if i == POOL_AFTER:
            layers.append(ks.avg_pool(2))
    return ks.chain(*layers, ks.global_avg_pool(), ks.linear())


def time_kernelshape(repeat):
    net, x = network(), inputs()
    t0 = time.perf_counter()
    k = net.kernel(x, ntk=True)
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        net.kernel(x, ntk=True)
        best = min(best, time.perf_counter() - t0)
    return first, best, k


def time_neural_tangents(python, repeat):
    """(first, steady, nngp, ntk) from neural-tangents, or None when not available."""
    if not python or not os.path.exists(python):
        return None
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
               TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, inputs())
        out = subprocess.run([python, "-c", NT_SCRIPT, str(DEPTH), str(POOL_AFTER),
                              str(repeat), path, ACTIVATION], capture_output=True, text=True,
                             env=env,
                             check=False)
    if out.returncode != 0:
        if "No module named" in out.stderr:
            return None
        raise RuntimeError(f"neural-tangents run failed:\n{out.stderr[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["first"], data["steady"], np.array(data["nngp"]), np.array(data["ntk"])


def main(argv=None):
    global SIZE, N, DEPTH, POOL_AFTER, ACTIVATION
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nt-python", default=os.environ.get(
        "KERNELSHAPE_NT_PYTHON", "/work/ntvenv/bin/python"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=SIZE, help="image side (default 8)")
    parser.add_argument("--inputs", type=int, default=N, help="inputs (default 8)")
    parser.add_argument("--depth", type=int, default=DEPTH, help="conv layers (default 20)")
    parser.add_argument("--activation", choices=("relu", "erf"), default=ACTIVATION,
                        help="relu (default; positively homogeneous) or erf (unequal second "
                             "moments through the two-q closed form)")
    args = parser.parse_args(argv)
    SIZE, N, DEPTH, ACTIVATION = args.size, args.inputs, args.depth, args.activation
    POOL_AFTER = DEPTH // 2 - 1
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)
    except ImportError:   # only the thread count of the comparison changes
        limit = None
    print(f"NNGP + NTK, {DEPTH} conv layers (3x3, same) + {ACTIVATION}, avg_pool(2) after layer "
          f"{POOL_AFTER + 1}, global average pooling, dense; {N} inputs of "
          f"{SIZE}x{SIZE}x{CHANNELS}, float64, one thread")
    first, steady, k = time_kernelshape(args.repeat)
    print(f"kernelshape       first call {first:8.3f} s   best of {args.repeat}: {steady:.3f} s")
    nt = time_neural_tangents(args.nt_python, args.repeat)
    if nt is None:
        print(f"neural-tangents   not available (no neural-tangents at {args.nt_python})")
        return
    nt_first, nt_steady, nngp, ntk = nt
    print(f"neural-tangents   first call {nt_first:8.3f} s   best of {args.repeat}: "
          f"{nt_steady:.3f} s   (jit-compiled kernel_fn)")
    scale = np.max(np.abs(ntk))
    print(f"agreement         NNGP {np.max(np.abs(k.nngp - nngp)) / np.max(np.abs(nngp)):.1e}"
          f"   NTK {np.max(np.abs(k.ntk - ntk)) / scale:.1e}  (max |difference| / max |entry|)")
    print(f"speed ratio       neural-tangents / kernelshape: steady {nt_steady / steady:.2f}x, "
          f"first call {nt_first / first:.1f}x")
    if limit is not None:
        limit.restore_original_limits()


if __name__ == "__main__":
    sys.exit(main())
