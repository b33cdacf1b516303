"""tanh networks: C_f(0) and C_f'(1) versus depth for the four methods."""

from pathlib import Path

from kernelshape import activation, plot
from kernelshape.networks import mlp

NAME = Path(__file__).stem


def figure():
    return plot.c_vs_depth(activation("tanh"), network=mlp(100), max_depth=100)


def save(outdir=Path(__file__).parent):
    path = Path(outdir) / f"{NAME}.png"
    figure().savefig(path, dpi=100)
    return path


if __name__ == "__main__":
    import matplotlib
    matplotlib.use("Agg")
    print(save())
