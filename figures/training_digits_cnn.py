"""A 50-layer vanilla CNN on scikit-learn's digits (runs examples/train_digits_cnn.py).

ReLU at PyTorch's default init, edge-of-chaos tanh, DKS tanh and TAT tanh (shaped in one
call by ``ks.torch.shape``); no batch norm, no skips, the same optimizer and step budget,
three seeds. Training loss and test accuracy against steps; the numbers go to
``training_digits_cnn.json`` beside the PNG. About five minutes on two shared cores.
"""

import runpy
from pathlib import Path

NAME = Path(__file__).stem
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_digits_cnn.py"


def save(outdir=Path(__file__).parent):
    example = runpy.run_path(str(EXAMPLE))
    example["main"](["--outdir", str(outdir)])
    return Path(outdir) / f"{NAME}.png"


if __name__ == "__main__":
    print(save())
