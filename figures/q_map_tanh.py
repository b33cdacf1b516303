"""The Q map of tanh at the edge of chaos (sigma_b^2 = 0.05) and its fixed point q*."""

import math

from kernelshape import activation, plot
from kernelshape.transforms import eoc


def figure():
    tanh = activation("tanh")
    e = eoc(tanh, sigma_b=math.sqrt(0.05))
    return plot.q_map(tanh, sigma_w=float(e.sigma_w), sigma_b=float(e.sigma_b), q_max=2.0,
                      starts=(0.05, 1.8))


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
