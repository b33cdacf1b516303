"""C maps and their slopes C'(c) of several activations at q = 1."""

from kernelshape import activation, plot


def figure():
    return plot.c_map([activation(n) for n in ("relu", "tanh", "softplus", "gelu")], points=101)


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
