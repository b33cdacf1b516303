"""Deep vanilla networks train: a reduced run of examples/train_deep.py.

The pinwheel task has labels no linear classifier can predict (logistic regression is at
chance), so a deep network that has degenerated into a nearly linear map cannot fit it.
50 nonlinear layers, no skip connections, no normalization, width 32, 200 SGD steps
(learning rate 3e-3, momentum 0.9, batch 128) on 1,000 training points. Measured at 300
steps over seeds 0, 1, 2 (this machine, torch 2.13 CPU): tanh at PyTorch's default init
stays at the chance loss log 2 = 0.693 (0.6915-0.6931) and test accuracy 0.46-0.50; DKS
tanh reaches loss 0.14-0.19 (accuracy 0.88-0.94), TAT tanh 0.19-0.26 (0.87-0.92). The
assertions ask for half the untransformed loss and accuracy 0.15 above chance, margins an
untrained or degenerate network cannot meet.
"""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_deep.py"
DEPTH, WIDTH, STEPS, BATCH, LR = 50, 32, 200, 128, 3e-3
METHODS = ("tanh, default init", "DKS tanh", "TAT tanh")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_deep", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module       # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def setup(example):
    torch.set_num_threads(1)
    return example.recipes(DEPTH, METHODS)


def test_the_task_is_beyond_linear_models(example):
    data = example.pinwheel(seed=0)
    x_tr, y_tr, x_te, _ = data
    assert x_tr.shape == (3000, 16) and x_te.shape == (1000, 16)
    assert abs(float(np.mean(y_tr)) - 0.5) < 0.05          # balanced classes
    assert example.linear_baseline(data) < 0.56              # chance level: 0.5


def test_pinwheel_rejects_odd_sector_counts(example):
    with pytest.raises(ValueError, match="even number"):
        example.pinwheel(sectors=5)


def test_networks_are_deep_vanilla_and_use_generated_code(example, setup):
    recipe = setup["recipes"]["DKS tanh"]
    model = example.build_mlp(recipe, depth=DEPTH, width=WIDTH, n_in=16, n_out=2,
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


def test_dks_and_tat_fit_what_the_degenerate_network_cannot(example, setup):
    data = example.pinwheel(seed=0, n_train=1000, n_test=500)
    final = {}
    for m in METHODS:
        h = example.train(setup["recipes"][m], data, depth=DEPTH, width=WIDTH, steps=STEPS,
                          batch=BATCH, lr=LR, seed=0, eval_every=STEPS, pln=setup["pln"])
        assert h["step"] == [0, STEPS] and h["diverged_at"] is None
        final[m] = h
    untransformed = final["tanh, default init"]["final_train_loss"]
    assert untransformed > 0.9 * math.log(2), final              # stuck near chance
    for m in ("DKS tanh", "TAT tanh"):
        assert final[m]["final_train_loss"] < 0.5 * untransformed, (m, final[m])
        assert final[m]["final_test_accuracy"] > 0.65, (m, final[m])


def test_summary_reports_mean_spread_and_divergence(example):
    runs = {25: {"DKS tanh": [{"final_test_accuracy": 0.8, "final_train_loss": 0.3,
                               "diverged_at": None},
                              {"final_test_accuracy": 0.9, "final_train_loss": 0.2,
                               "diverged_at": 40}]}}
    s = example.summarize(runs)[25]["DKS tanh"]
    assert s["test_accuracy_mean"] == pytest.approx(0.85)
    assert s["test_accuracy_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert (s["test_accuracy_min"], s["test_accuracy_max"]) == (0.8, 0.9)
    assert s["diverged"] == 1 and s["seeds"] == 2
