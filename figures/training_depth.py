"""Deep vanilla MLPs on the pinwheel task at depths 25, 100, 200 (runs examples/train_deep.py).

Tanh at PyTorch's default init, edge-of-chaos tanh, DKS and TAT tanh, TAT leaky ReLU; no
skips, no normalization, the same optimizer and step budget, three seeds. Training loss
against steps at depth 200 and test accuracy against depth. About half an hour on two cores.
"""

import runpy
from pathlib import Path

NAME = Path(__file__).stem
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_deep.py"


def save(outdir=Path(__file__).parent):
    example = runpy.run_path(str(EXAMPLE))
    example["main"](["--outdir", str(outdir)])
    return Path(outdir) / f"{NAME}.png"


if __name__ == "__main__":
    print(save())
