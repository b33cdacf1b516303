"""A deep tanh network's C map versus depth: untransformed, edge of chaos, DKS, TAT.

The picture of the DKS talk: without DKS/TAT the C map flattens with depth; DKS and TAT
(solved for a 100-layer MLP) keep every subnetwork's C map near the identity.
"""

from kernelshape import activation, plot
from kernelshape.networks import mlp

DPI = 90


def figure():
    return plot.degeneration(activation("tanh"), network=mlp(100))


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
