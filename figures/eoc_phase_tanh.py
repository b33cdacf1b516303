"""Edge-of-chaos phase diagram of tanh over (sigma_w, sigma_b) with depth-scale contours."""

from pathlib import Path

from kernelshape import activation, plot

NAME = Path(__file__).stem


def figure():
    return plot.eoc_phase(activation("tanh"), sigma_w_max=3.0, sigma_b_max=1.0, resolution=40)


def save(outdir=Path(__file__).parent):
    path = Path(outdir) / f"{NAME}.png"
    figure().savefig(path, dpi=100)
    return path


if __name__ == "__main__":
    import matplotlib
    matplotlib.use("Agg")
    print(save())
