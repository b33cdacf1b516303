"""Reading and shaping a ResNet-50-sized Flax model with ``ks.jax``, beside ``model.init``.

The model: a Flax linen ResNet-50 without batch norm (bottleneck blocks (3, 4, 6, 3), widths
64-2048, 1x1 / 3x3 convolutions, projection shortcuts with stride 2, plain ``x + branch``
skips, ReLU, global average pool, 1000-way dense head; ~25M parameters), input 1 x 64 x 64 x
3. Timed, each in a fresh state of the same process (median of ``--repeat`` runs):

* ``model.init`` (jit-compiled on first use, what a user pays anyway),
* ``ks.jax.trace`` on abstract params (``jax.eval_shape``: shapes only),
* ``ks.jax.shape`` with TAT (leaky ReLU, ``eta``) and ``shortcut_weight=0.8``: three reads of
  the jaxpr, the solve, and SUO / Delta-orthogonal draws of every weight in NumPy.

Run: ``python benchmarks/bench_jax_shape.py [--repeat 3]``. Timings are machine-dependent;
the script prints both sides and the ratio, it asserts nothing. On a busy 2-core machine
(load ~5) OpenBLAS with two threads made the QRs of the SUO draws ~30x slower: measured
2026-12-03 there, ``OPENBLAS_NUM_THREADS=1``: init first call 7.8 s, trace 0.28 s, shape
3.0 s; two threads: 34 s, 0.85 s, 46 s (of which 24 s in ``numpy.linalg.qr``).
"""

from __future__ import annotations

import statistics
import sys
import time


def _model():
    import flax.linen as nn

    class Bottleneck(nn.Module):
        width: int
        stride: int
        project: bool

        @nn.compact
        def __call__(self, x):
            act = lambda v: nn.leaky_relu(v, 0.05)
            s = (self.stride, self.stride)
            h = nn.Conv(self.width, (1, 1))(act(x))
            h = nn.Conv(self.width, (3, 3), strides=s)(act(h))
            h = nn.Conv(4 * self.width, (1, 1))(act(h))
            short = nn.Conv(4 * self.width, (1, 1), strides=s)(act(x)) if self.project else x
            return short + h

    class ResNet50(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(64, (7, 7), strides=(2, 2))(x)
            for group, (count, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512),
                                                       strict=True)):
                for j in range(count):
                    x = Bottleneck(width, 2 if j == 0 and group else 1, j == 0)(x)
            x = nn.leaky_relu(x, 0.05).mean(axis=(1, 2))
            return nn.Dense(1000)(x)

    return ResNet50()


def _median(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import kernelshape as ks
    argv = sys.argv[1:] if argv is None else argv
    repeat = int(argv[argv.index("--repeat") + 1]) if "--repeat" in argv else 3
    model, x = _model(), jnp.ones((1, 64, 64, 3))
    abstract = jax.eval_shape(model.init, jax.random.key(0), x)
    n = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(abstract))
    init = jax.jit(model.init)
    t_init_first = _median(lambda: jax.block_until_ready(init(jax.random.key(0), x)), 1)
    t_init = _median(lambda: jax.block_until_ready(init(jax.random.key(0), x)), repeat)
    t_trace = _median(lambda: ks.jax.trace(model.apply, abstract, x, shortcut_weight=0.8),
                      repeat)
    t_shape = _median(lambda: ks.jax.shape(model.apply, abstract, x, method="tat", eta=0.9,
                                           shortcut_weight=0.8), repeat)
    print(f"ResNet-50 (no batch norm), {n / 1e6:.1f}M parameters, input {tuple(x.shape)}")
    print(f"model.init (jit) first call {t_init_first:8.2f} s, then {t_init:8.3f} s")
    print(f"ks.jax.trace               {t_trace:8.2f} s   ({t_trace / t_init_first:.2f} x first "
          "init)")
    print(f"ks.jax.shape (TAT)         {t_shape:8.2f} s   ({t_shape / t_init_first:.2f} x first "
          "init)")


if __name__ == "__main__":
    main()
