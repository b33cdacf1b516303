"""A DKS solve from a name or expression text, per call, side by side with ``dks`` 0.1.2.

Every kernelshape call builds its inputs afresh, as a user's line does:
``ks.dks(ks.activation("tanh"), network=ks.resnet(101, 0.6))``. ``activation()`` and
``resnet()`` return one shared read-only object per input (memoized), so the sympy analysis
of an expression and the network's slope polynomials are done once per process; every
solve still runs all its Newton steps, quadrature checks and residuals afresh (no result
is kept). ``dks`` is timed through its public ``get_transformed_activations`` on the same
network (the ``subnet_max`` of ``resnet(101, 0.6)``); it has no expression text, so
``x*sigmoid(x)`` is compared with its ``swish``. TAT elu (dks's branch search, emulated on
dks's own rule; see kernelshape.transforms._dks_rule) is timed the same way.

Wall time and CPU time (``time.process_time``) are both printed: the machine may be shared,
and CPU time is the steadier of the two. kernelshape: median and range of N calls;
``dks``: each of a few calls (seconds each).

Run: ``python benchmarks/bench_solve.py`` (``--quick``: one dks call per case, no dks TAT).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings


def _time(fn, repeat):
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return walls, cpus


def _show(label, ours, theirs):
    (w1, c1), (w2, c2) = ours, theirs
    m1, m2 = statistics.median(w1), statistics.median(w2)
    n1, n2 = statistics.median(c1), statistics.median(c2)
    print(f"{label:34s} {m1 * 1e3:8.3f} ms ({min(w1) * 1e3:.3f}-{max(w1) * 1e3:.3f}) "
          f"cpu {n1 * 1e3:7.3f} ms | dks {m2:6.2f} s ({min(w2):.2f}-{max(w2):.2f}) "
          f"cpu {n2:6.2f} s | ratio {m2 / m1:7.0f}x wall, {n2 / n1:7.0f}x cpu")


def main(quick=False):
    from dks.base import activation_transform as at

    import kernelshape as ks

    net = ks.resnet(101, 0.6)
    dks_repeat = 1 if quick else 3

    def dks_call(name, method="DKS"):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                at.get_transformed_activations([name], method=method,
                                               subnet_max_func=net.subnet_max)
        return run

    print(f"{'work (resnet(101, 0.6))':34s} {'kernelshape per call (median, range)':>44s} | "
          f"{'dks 0.1.2 per call':>34s} | dks / kernelshape")
    cases = [
        ("DKS from name 'tanh'", lambda: ks.dks(ks.activation("tanh"),
                                                network=ks.resnet(101, 0.6)), "tanh"),
        ("DKS from text 'tanh(x)'", lambda: ks.dks(ks.activation("tanh(x)"),
                                                   network=ks.resnet(101, 0.6)), "tanh"),
        ("DKS from text 'x*sigmoid(x)'", lambda: ks.dks(ks.activation("x*sigmoid(x)"),
                                                        network=ks.resnet(101, 0.6)), "swish"),
    ]
    phi = ks.activation("tanh")
    cases.append(("DKS tanh, Activation reused", lambda: ks.dks(phi, network=net), "tanh"))
    theirs_cache = {}
    for label, ours, name in cases:
        ours()   # first use in this process: analysis, branch printing
        mine = _time(ours, 300)
        if name not in theirs_cache:
            theirs_cache[name] = _time(dks_call(name), dks_repeat)
        _show(label, mine, theirs_cache[name])

    elu = ks.activation("elu")
    w, c = time.perf_counter(), time.process_time()
    ks.tat(elu, network=net)
    print(f"{'TAT elu, first call in process':34s} {(time.perf_counter() - w) * 1e3:8.1f} ms "
          f"cpu {(time.process_time() - c) * 1e3:.1f} ms (imports scipy.optimize, builds "
          "dks's rule)")
    mine = _time(lambda: ks.tat(ks.activation("elu"), network=ks.resnet(101, 0.6)), 10)
    if quick:
        print(f"{'TAT elu':34s} {statistics.median(mine[0]) * 1e3:8.1f} ms "
              f"cpu {statistics.median(mine[1]) * 1e3:.1f} ms")
    else:
        _show("TAT elu", mine, _time(dks_call("elu", "TAT"), 1))


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
