"""A deep ReLU network's C map versus depth: He (edge of chaos), DKS, TAT leaky ReLU.

ReLU with He initialization is on the edge of chaos (sigma_w^2 = 2, no bias) and still
degenerates: C_f(0) -> 1. DKS for ReLU is possible but discouraged (it warns); TAT uses
leaky ReLU. The transforms are solved for a 100-layer MLP.
"""

import warnings

from kernelshape import activation, plot
from kernelshape.networks import mlp
from kernelshape.transforms import ReluWarning


def figure():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReluWarning)   # shown on purpose: DKS ReLU
        return plot.degeneration(activation("relu"), network=mlp(100),
                                 methods=("eoc", "dks", "tat"))


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
