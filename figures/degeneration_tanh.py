"""A deep tanh network's C map versus depth: untransformed, edge of chaos, DKS, TAT.

The picture of the DKS talk: without DKS/TAT the C map flattens with depth; DKS and TAT
(solved for a 100-layer MLP) keep every subnetwork's C map near the identity.
"""

from pathlib import Path

from kernelshape import activation, plot
from kernelshape.networks import mlp

NAME = Path(__file__).stem


def figure():
    return plot.degeneration(activation("tanh"), network=mlp(100))


def save(outdir=Path(__file__).parent):
    path = Path(outdir) / f"{NAME}.png"
    figure().savefig(path, dpi=90)
    return path


if __name__ == "__main__":
    import matplotlib
    matplotlib.use("Agg")
    print(save())
