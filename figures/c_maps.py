"""C maps and their slopes C'(c) of several activations at q = 1."""

from pathlib import Path

from kernelshape import activation, plot

NAME = Path(__file__).stem


def figure():
    return plot.c_map([activation(n) for n in ("relu", "tanh", "softplus", "gelu")], points=101)


def save(outdir=Path(__file__).parent):
    path = Path(outdir) / f"{NAME}.png"
    figure().savefig(path, dpi=100)
    return path


if __name__ == "__main__":
    import matplotlib
    matplotlib.use("Agg")
    print(save())
