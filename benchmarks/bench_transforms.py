"""DKS / TAT solve times, side by side with the official ``dks`` package, in one run.

Warm: the same process solves repeatedly on one activation object and one network object;
kernelshape's figure is the median of 30 solves, ``dks``'s ``get_transformed_activations``
is timed once per case (it takes ~0.5-50 s). What a warm solve reuses is set-up, never a
result: the activation's sympy analysis and its numpy branch functions (phi, phi', phi''
printed once), its quadrature engine (pieces, kink data), Gauss-Legendre nodes and panel
layouts (pure functions of the interval and panel count), and per network its slope
polynomials and curvature constant. Every solve runs all its Newton steps, the quadrature
check, the output parameters and the residual evaluation afresh. Cold: fresh Python
processes that import the package and solve DKS for tanh on resnet(101, 0.6) (numba cache
already on disk; the solvers do not use numba), median of 3 each.

Run: ``python benchmarks/bench_transforms.py`` (add ``--quick`` to skip dks's TAT solves).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import warnings

SUBNET = '''
def subnet_max_func(x, r_fn, blocks=(3, 4, 23, 3), w=0.6):
    # the dks 0.1.2 modified-ResNet example function, ResNet-101 V2 (bottleneck, projections)
    res_fn = lambda z: r_fn(r_fn(r_fn(z)))
    branch = res_fn(x)
    for i in range(4):
        for j in range(blocks[i]):
            res_x = res_fn(x)
            shortcut_x = r_fn(x) if j == 0 else x
            x = w**2 * shortcut_x + (1.0 - w**2) * res_x
    return max(r_fn(x), branch)
'''

COLD_OURS = ("import kernelshape as ks\n"
             "from kernelshape.networks import resnet\n"
             "from kernelshape.transforms import dks\n"
             "t = dks(ks.activation('tanh'), network=resnet(101, 0.6))\n"
             "assert t.max_residual < 1e-13\n")
COLD_DKS = ("from dks.base import activation_transform as at\n" + SUBNET
            + "at.get_transformed_activations(['tanh'], method='DKS', "
              "subnet_max_func=subnet_max_func)\n")


def _fresh(code, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(quick=False):
    from dks.base import activation_transform as at

    from kernelshape import activation
    from kernelshape.networks import resnet
    from kernelshape.transforms import dks, tat

    net = resnet(101, 0.6)
    print(f"{'case':28s} {'kernelshape':>14s} {'dks':>12s} {'speed-up':>10s}")
    # elu under TAT reruns dks's own search on dks's quadrature to pick its branch
    # (phi''^2 jumps at 0; kernelshape.transforms._dks_rule): seconds, not milliseconds
    cases = [(method, ours, name, 30) for method, ours in (("DKS", dks), ("TAT", tat))
             for name in ("tanh", "softplus", "gelu")] + [("TAT", tat, "elu", 3)]
    for method, ours, name, repeat in cases:
        phi = activation(name)
        ours(phi, network=net)  # warm: kernels compiled / loaded
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            ours(phi, network=net)
            times.append(time.perf_counter() - start)
        t_ours = statistics.median(times)
        if quick and method == "TAT":
            print(f"{method + ' ' + name + ' resnet101/0.6':28s} {t_ours * 1e3:11.2f} ms")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            at.get_transformed_activations([name], method=method,
                                           subnet_max_func=net.subnet_max)
            t_dks = time.perf_counter() - start
        print(f"{method + ' ' + name + ' resnet101/0.6':28s} {t_ours * 1e3:11.2f} ms "
              f"{t_dks:10.2f} s {t_dks / t_ours:9.0f}x")
    subprocess.run([sys.executable, "-W", "ignore", "-c", COLD_OURS], check=True)  # disk cache
    cold_ours = _fresh(COLD_OURS)
    cold_dks = _fresh(COLD_DKS)
    print(f"{'cold DKS tanh (fresh process)':28s} {cold_ours:11.2f} s  {cold_dks:10.2f} s "
          f"{cold_ours / cold_dks:9.2f} (ratio, want <= 0.75)")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
