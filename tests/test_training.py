"""Deep vanilla networks train: a reduced run of examples/train_digits.py.

50 nonlinear layers, no skip connections, no normalization, width 64, 100 SGD steps
(learning rate 3e-3, momentum 0.9, batch 64) on scikit-learn's digits. Measured over seeds
0, 1, 2 (this machine, torch 2.13 CPU): untransformed tanh ends at training loss 0.57-0.59,
DKS tanh at 0.02-0.05, TAT tanh at 0.02-0.07. The assertion asks for a 4x lower loss, a
margin those runs clear by a factor of two or more, and one that an untrained or
degenerate network cannot meet.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"
DEPTH, WIDTH, STEPS, BATCH, LR = 50, 64, 100, 64, 3e-3
METHODS = ("tanh", "DKS tanh", "TAT tanh")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module       # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def setup(example):
    torch.set_num_threads(1)
    return example.recipes(DEPTH, METHODS)


def test_networks_are_deep_vanilla_and_use_generated_code(example, setup):
    recipe = setup["recipes"]["DKS tanh"]
    model = example.build_mlp(recipe, depth=DEPTH, width=WIDTH, n_in=64, n_out=10,
                              pln=setup["pln"], generator=torch.Generator().manual_seed(0))
    kinds = {type(m).__name__ for m in model.body}
    linear = [m for m in model.body if isinstance(m, torch.nn.Linear)]
    assert len(linear) == DEPTH + 1 and len(model.body) == 2 * DEPTH + 1
    assert not any("Norm" in k for k in kinds)
    # The activation module and PLN come from kernelshape.codegen's emitted PyTorch source.
    assert type(model.body[1]).__module__.startswith("kernelshape_codegen_torch")
    assert setup["pln"].__module__.startswith("kernelshape_codegen_torch")
    # SUO: square hidden weights are orthogonal, biases zero.
    w = linear[5].weight.detach().double()
    torch.testing.assert_close(w @ w.T, torch.eye(WIDTH, dtype=torch.float64), atol=1e-5,
                               rtol=0)
    assert float(linear[5].bias.detach().abs().max()) == 0.0


def test_dks_and_tat_train_much_faster_than_untransformed_tanh(example, setup):
    data = example.load_digits_split(seed=0)
    final = {}
    for m in METHODS:
        h = example.train(setup["recipes"][m], data, depth=DEPTH, width=WIDTH, steps=STEPS,
                          batch=BATCH, lr=LR, seed=0, eval_every=STEPS, pln=setup["pln"],
                          progress=False)
        assert h["step"] == [0, STEPS]
        final[m] = h["final_train_loss"]
    assert final["DKS tanh"] < 0.25 * final["tanh"], final
    assert final["TAT tanh"] < 0.25 * final["tanh"], final
