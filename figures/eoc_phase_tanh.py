"""Edge-of-chaos phase diagram of tanh over (sigma_w, sigma_b) with depth-scale contours."""

from kernelshape import activation, plot


def figure():
    return plot.eoc_phase(activation("tanh"), sigma_w_max=3.0, sigma_b_max=1.0, resolution=40)


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
