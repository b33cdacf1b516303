"""DKS Theorems 13 and 27: measured deviations against their bounds over the slope bound zeta.

For each activation and network, DKS is solved at zeta and ``kernelshape.networks.bounds``
measures ``max |C_f(c) - c|`` and ``max |C_f'(c) - 1|`` (Theorem 13, with C_f(0) = 0: bounds
2 (zeta - 1) and 3 (zeta - 1)) and the per-layer NTKs' ``max_i max_c |Theta_i(c) / lambda_i - c|``
(Theorem 27: 11 (zeta - 1); ``lambda_i`` is the layer's NTK at c = 1 in the same network with
identity activations: 1 - w^2 inside a residual branch, 1 in a dense chain) on a grid of 101 values of c, q = 1. Networks: a dense chain of
10 nonlinear layers, four residual blocks (shortcut weight 0.6), and a convolutional net
(Delta-orthogonal and Gaussian convs, average pooling, layer norm), zeta from 1.01 to 2. Any
measured value above its bound is printed (none was, for the cases drawn). Without the
lambda_i normalization the residual network's per-layer NTKs stay 0.36 = w^2 from c as
zeta -> 1 and would exceed 11 (zeta - 1) below zeta = 1.03: Theorem 27 compares against the
linear network's per-layer NTK, not the unnormalized one.
"""

import sys
import time

import numpy as np

import kernelshape as ks
from kernelshape.networks import bounds

ZETAS = (1.01, 1.02, 1.05, 1.1, 1.2, 1.5, 2.0)
ACTIVATIONS = ("tanh", "softplus", "gelu")


def networks():
    block = ks.chain(ks.nonlinear(), ks.linear(), ks.nonlinear(), ks.linear())
    return {
        "dense x10": ks.chain(*[ks.linear(), ks.nonlinear()] * 10, ks.linear()),
        "resnet, 4 blocks": ks.chain(ks.linear(), *[ks.residual(block, 0.6)] * 4,
                                     ks.nonlinear(), ks.linear()),
        "conv + pool + LN": ks.chain(ks.conv(3, init="delta"), ks.nonlinear(), ks.conv(3),
                                     ks.layer_norm(), ks.nonlinear(), ks.avg_pool(2),
                                     ks.conv(3), ks.nonlinear(), ks.global_avg_pool(),
                                     ks.linear()),
    }


def measure():
    rows = []
    for net_name, net in networks().items():
        for act in ACTIVATIONS:
            for zeta in ZETAS:
                start = time.perf_counter()
                t = ks.dks(ks.activation(act), network=net, zeta=zeta)
                b = bounds(t, net, zeta=zeta, points=101)
                whole = b.subnetworks[0]
                rows.append((net_name, act, zeta, whole["deviation"],
                             whole["slope_deviation"], b.ntk_deviation))
                for v in b.violations:
                    print(f"{net_name}, {act}, zeta = {zeta}: {v}")
                print(f"{net_name}, {act}, zeta = {zeta}: {time.perf_counter() - start:.1f} s",
                      file=sys.stderr)
    return rows


def figure():
    import matplotlib.pyplot as plt
    rows = measure()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharex=True)
    titles = ("Theorem 13: max |C_f(c) - c|", "Theorem 13: max |C_f'(c) - 1|",
              "Theorem 27: max_i |Theta_i(c) / lambda_i - c|")
    factors = (2.0, 3.0, 11.0)
    zetas = np.array(ZETAS)
    styles = {"dense x10": "-", "resnet, 4 blocks": "--", "conv + pool + LN": ":"}
    colors = {"tanh": "C0", "softplus": "C1", "gelu": "C2"}
    for k, ax in enumerate(axes):
        ax.plot(zetas, factors[k] * (zetas - 1), color="k", lw=2.5, alpha=0.6,
                label=f"bound {factors[k]:g} (zeta - 1)")
        for net_name, style in styles.items():
            for act in ACTIVATIONS:
                ys = [r[3 + k] for r in rows if r[0] == net_name and r[1] == act]
                ax.plot(zetas, ys, style, color=colors[act], marker="o", ms=3,
                        label=f"{act}, {net_name}" if k == 0 else None)
        ax.set_yscale("log")
        ax.set_title(titles[k], fontsize=10)
        ax.set_xlabel("zeta (DKS global slope bound)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("measured (coloured) and bound (black)")
    axes[0].legend(fontsize=6.5, ncol=1, loc="lower right")
    axes[2].legend(fontsize=7, loc="lower right")
    fig.suptitle("DKS bounds, measured on transformed networks (q = 1, 101 values of c)")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
