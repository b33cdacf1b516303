"""ReLU networks: C_f(0) and C_f'(1) versus depth, He/EOC against DKS and TAT.

The edge-of-chaos values follow THEORY.md §3: C_f(0) ~ 0.32, 0.74, 0.87, 0.95, 0.988, 0.996
at depths 1, 5, 10, 20, 50, 100.
"""

import warnings

from kernelshape import activation, plot
from kernelshape.networks import mlp
from kernelshape.transforms import ReluWarning


def figure():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReluWarning)
        return plot.c_vs_depth(activation("relu"), network=mlp(100), max_depth=100,
                               methods=("eoc", "dks", "tat"))


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
