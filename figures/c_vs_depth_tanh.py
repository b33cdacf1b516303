"""tanh networks: C_f(0) and C_f'(1) versus depth for the four methods."""

from kernelshape import activation, plot
from kernelshape.networks import mlp


def figure():
    return plot.c_vs_depth(activation("tanh"), network=mlp(100), max_depth=100)


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
