"""Training curves of deep vanilla MLPs on the digits data set (runs examples/train_digits.py).

Untransformed, edge-of-chaos, DKS and TAT tanh, TAT softplus and leaky ReLU, and ReLU with
He initialization; 50 nonlinear layers, no skips, no normalization, the same optimizer and
step budget. A few minutes on two CPU cores.
"""

import runpy
from pathlib import Path

NAME = Path(__file__).stem
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"


def save(outdir=Path(__file__).parent):
    example = runpy.run_path(str(EXAMPLE))
    example["main"](["--outdir", str(outdir)])
    return Path(outdir) / f"{NAME}.png"


if __name__ == "__main__":
    print(save())
