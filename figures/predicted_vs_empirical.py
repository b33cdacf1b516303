"""Kernel maps against sampled width-1024 networks (50 layers, 8 seeds, orthogonal init)."""

import math

from kernelshape import activation, plot
from kernelshape.empirical import compare
from kernelshape.networks import mlp
from kernelshape.transforms import dks, eoc, tat


def figure():
    tanh, net = activation("tanh"), mlp(50)
    e = eoc(tanh, sigma_b=math.sqrt(0.05))
    runs = [
        compare(tanh, network=net, label="tanh (untransformed)"),
        compare(tanh, network=net, q=float(e.q_star), sigma_w=float(e.sigma_w),
                sigma_b=float(e.sigma_b), label="EOC tanh"),
        compare(dks(tanh, network=net), network=net, label="DKS tanh"),
        compare(tat(tanh, network=net, tau=0.3), network=net, label="TAT tanh"),
    ]
    return plot.predicted_vs_empirical(runs)


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
