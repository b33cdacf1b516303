"""DKS and TAT transformed activations next to the originals (50-layer MLP)."""

from kernelshape import activation, plot
from kernelshape.networks import mlp
from kernelshape.transforms import dks, tat


def figure():
    net = mlp(50)
    transforms = [dks(activation(n), network=net, zeta=1.5) for n in ("tanh", "softplus", "gelu")]
    transforms += [dks(activation("leaky_relu"), network=net, zeta=1.5)]
    transforms += [tat(activation(n), network=net, tau=0.3) for n in ("tanh", "softplus", "gelu")]
    transforms += [tat(activation("leaky_relu"), network=net, eta=0.9)]
    return plot.transformed_activations(transforms, ncols=4)


if __name__ == "__main__":
    from kernelshape.figures import run_script
    run_script(__file__)
