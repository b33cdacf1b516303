"""ks.torch.shape: a transformed copy (original untouched), torchvision-style ResNets and a
deep vanilla CNN shaped in one call, scripting and state_dict round trips, and the report's
predicted q and c against the shaped model's empirical ones (Monte Carlo over weight seeds).

Monte Carlo: pairs of inputs at exactly q0 = 1 and correlation c0 = 0.3 (Gram-Schmidt),
width 256, 4 weight seeds (``seed=0..3``), 8-16 pairs per seed; a row's empirical value is
the mean over seeds, its standard error the seeds' standard deviation / 2. Tolerance: 4
standard errors plus 8 / width (the O(1/width) finite-width bias of q and c: inputs of a
layer with orthogonal weights are uniform on a sphere, not Gaussian; measured at most about
5 / width here).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from _torch_models import (
    DenseResNet,
    KSResNet,
    TVResNet,
    mlp,
    one_thread,  # noqa: F401 - a fixture, used by pytestmark
    pool_cnn,
    vanilla_cnn,
)
from torch import nn

import kernelshape as ks

WIDTH, SEEDS = 256, 4


pytestmark = pytest.mark.usefixtures("one_thread")


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(before, model):
    after = model.state_dict()
    return before.keys() == after.keys() and all(torch.equal(before[k], after[k])
                                                 for k in before)


# -- the copy --------------------------------------------------------------------------------
def test_original_is_bit_identical_after_shape():
    model = KSResNet(18, None, nn.Softplus())
    before = _state(model)
    shaped, _ = ks.torch.shape(model, torch.randn(2, 3, 8, 8), method="tat", tau=0.3,
                                    shortcut_weight=0.8, seed=0)
    assert _same_state(before, model)
    assert isinstance(model.act, nn.Softplus)   # the module, not only its parameters
    assert not _same_state(before, shaped)


def test_original_is_bit_identical_after_a_refused_shape():
    model = TVResNet()
    model.train()
    before = _state(model)
    with pytest.raises(ks.ModelError):
        ks.torch.shape(model, torch.randn(2, 3, 32, 32), shortcut_weight=0.5)
    assert _same_state(before, model)


def test_weights_are_suo_and_delta_biases_zero():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 2),
                          nn.Tanh(), nn.Flatten(), nn.Linear(8 * 7 * 7, 16), nn.Tanh())
    shaped, _ = ks.torch.shape(model, torch.zeros(1, 3, 8, 8), zeta=1.5, seed=3)
    conv = shaped.get_submodule("0").weight.detach().double()
    centre = conv[:, :, 1, 1]
    assert torch.count_nonzero(conv) == torch.count_nonzero(centre)   # Delta: centre only
    # in = 3 < out = 8: W^T W = (8 / 3) I for the (in, out) matrix (kernelshape.init)
    assert torch.allclose(centre.T @ centre, torch.eye(3, dtype=torch.float64) * 8 / 3,
                          atol=1e-5)
    even = shaped.get_submodule("2").weight.detach().double().reshape(8, -1)
    assert torch.allclose(even @ even.T, torch.eye(8, dtype=torch.float64), atol=1e-5)
    dense = shaped.get_submodule("5").weight.detach().double()
    assert torch.allclose(dense @ dense.T, torch.eye(16, dtype=torch.float64), atol=1e-5)
    assert all(not shaped.get_submodule(p).bias.detach().any() for p in ("0", "2", "5"))


def test_activations_compute_their_transforms():
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 6),
                          _Gelu(), nn.Linear(6, 6), nn.LeakyReLU(0.1))
    shaped, report = ks.torch.shape(model, torch.zeros(1, 6), method="tat", tau=0.4, eta=0.5,
                                    seed=0)
    assert sorted(report.transforms) == ["gelu_exact", "leaky_relu(negative_slope=0.1)", "tanh"]
    grid = torch.linspace(-4, 4, 101, dtype=torch.float64)
    acts = [m for m in shaped.modules() if isinstance(m, ks.torch.TransformedActivation)]
    assert len(acts) == 3
    for m in acts:
        want = m.activation()(grid.numpy())
        assert np.max(np.abs(m.double()(grid).numpy() - want)) < 1e-12
    t = report.transforms["leaky_relu(negative_slope=0.1)"]
    assert t.targets["eta"] == 0.5 and report.transforms["tanh"].targets["tau"] == 0.4


class _Gelu(nn.Module):
    def forward(self, x):
        return nn.functional.gelu(x)


def test_unknown_and_misplaced_targets_are_named():
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh())
    with pytest.raises(ks.TransformError, match="tau is not a dks target"):
        ks.torch.shape(model, torch.zeros(1, 6), method="dks", tau=0.3)
    with pytest.raises(ks.TransformError, match="method must be one of"):
        ks.torch.shape(model, torch.zeros(1, 6), method="eoc")
    with pytest.raises(ks.TransformError, match="eta is given but no activation"):
        ks.torch.shape(model, torch.zeros(1, 6), method="tat", eta=0.9)


def test_unweighted_skip_sum_without_shortcut_weight_is_refused_by_name():
    with pytest.raises(ks.ModelError) as info:
        ks.torch.shape(KSResNet(18, None), torch.zeros(1, 3, 8, 8), zeta=1.5)
    paths = [p for p, _ in info.value.problems]
    assert len(paths) == 8 and paths[0] == "blocks.0:add"
    assert "shortcut_weight" in info.value.problems[0][1]


def test_constant_scaling_outside_a_sum_is_refused_by_shape():
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), _Half())
    ks.torch.trace(model, torch.zeros(1, 6))   # a description it is (linear(sigma_w=0.5))
    with pytest.raises(ks.ModelError, match="2:mul.*outside a normalized sum"):
        ks.torch.shape(model, torch.zeros(1, 6))


class _Half(nn.Module):
    def forward(self, x):
        return 0.5 * x


# -- real architectures, one call ------------------------------------------------------------
@pytest.mark.parametrize("bottleneck, layers", [(False, (2, 2, 2, 2)), (True, (3, 4, 6, 3))])
def test_torchvision_style_resnet_shaped_in_one_call(bottleneck, layers):
    x = torch.randn(4, 3, 32, 32)
    with pytest.raises(ks.ModelError, match="batch normalization"):
        ks.torch.shape(TVResNet(layers, bottleneck), x, method="tat", eta=0.3,
                       shortcut_weight=0.8)
    model = TVResNet(layers, bottleneck, norm=False, maxpool=False)
    shaped, report = ks.torch.shape(model, x, method="tat", eta=0.3, shortcut_weight=0.8,
                                    seed=0)
    assert list(report.transforms) == ["relu"]
    assert report.transforms["relu"].params["negative_slope"] > 0
    out = shaped(x)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    sums = [r for r in report.layers if r.kind == "sum"]
    assert len(sums) == sum(layers) and all("0.8, 0.6" in r.detail for r in sums)
    # post-activation identity skips: predictions stop at the first one (see test below)
    assert math.isnan(report.layers[-1].q) and "Gaussian" in report.layers[-1].detail
    assert "post-activation ResNet V1 identity skip" in report.summary()


def test_deep_vanilla_cnn_shaped_in_one_call():
    model = vanilla_cnn(depth=50)
    x = torch.randn(2, 3, 16, 16)
    shaped, report = ks.torch.shape(model, x, zeta=1.5, seed=0)
    acts = [r for r in report.layers if r.kind == "activation"]
    assert len(acts) == 50 and report.network.n_nonlinear == 50
    assert all(abs(r.q - 1.0) < 1e-12 for r in acts)   # DKS: Q(1) = 1 at every layer
    assert torch.isfinite(shaped(x)).all()
    assert "50 nonlinear" in report.network.describe().splitlines()[0]


def test_report_summary_and_predict():
    model = mlp([8, 8, 8], act=nn.Tanh)
    shaped, report = ks.torch.shape(model, torch.zeros(1, 8), zeta=1.5, pln=True, seed=0)
    text = report.summary()
    assert "tanh" in text and "1 transform(s)" in text
    assert all(r.path in text for r in report.layers)
    # PLN sets q = 1 whatever q0: the rows do not depend on q0, and DKS keeps q = 1
    rows = report.predict(q0=4.0, c0=0.2)
    assert [r.q for r in rows] == [r.q for r in report.predict(q0=1.0, c0=0.2)]
    assert all(abs(r.q - 1.0) < 1e-12 for r in rows)
    x = 5 * torch.randn(3, 8)
    assert torch.allclose(shaped.ks_pln(x).pow(2).mean(1), torch.ones(3))


def test_predict_of_the_shaped_model_reads_back_the_report():
    model = DenseResNet(16, 2, 0.6)
    shaped, report = ks.torch.shape(model, torch.zeros(1, 16), zeta=1.5, seed=0)
    again = ks.torch.predict(shaped, torch.zeros(1, 16), q0=1.0, c0=0.0)
    assert [(r.kind, r.node, r.path) for r in again] == [(r.kind, r.node, r.path)
                                                         for r in report.layers]
    seen = ks.torch.capture(shaped, torch.randn(5, 16))
    assert all(seen[r.node].shape == (5, 16) for r in report.layers)
    # weights read from float32 parameters: SUO scales are 1 to float32 rounding
    assert max(abs(a.q - b.q) + abs(a.c - b.c) for a, b in zip(again, report.layers)) < 1e-5


# -- scripting, compiling, saving -------------------------------------------------------------
def test_shaped_model_scripts_and_round_trips_state_dict(tmp_path):
    model = KSResNet(18, None, nn.SiLU())
    x = torch.randn(2, 3, 8, 8)
    shaped, _ = ks.torch.shape(model, x, method="tat", tau=0.3, shortcut_weight=0.7, seed=1)
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript, and scripting any GraphModule trips its own
        # annotation check; neither is about the shaped model.
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated",
                                DeprecationWarning)
        warnings.filterwarnings("ignore", "The TorchScript type system", UserWarning)
        scripted = torch.jit.script(shaped)
    assert torch.allclose(scripted(x), shaped(x), atol=1e-6)
    torch.save(shaped.state_dict(), tmp_path / "shaped.pt")
    other, _ = ks.torch.shape(model, x, method="tat", tau=0.3, shortcut_weight=0.7, seed=2)
    assert not torch.allclose(other(x), shaped(x))
    other.load_state_dict(torch.load(tmp_path / "shaped.pt"))
    assert torch.equal(other(x), shaped(x))


def test_shaped_model_goes_through_torch_compile_graph_capture():
    # backend="aot_eager": dynamo and AOT autograd capture the whole model; inductor's C++
    # compile (which also works here, ~40 s on 2 busy cores) is left to the benchmark notes.
    model = mlp([8, 16, 16], act=nn.GELU)
    shaped, _ = ks.torch.shape(model, torch.zeros(1, 8), method="tat", tau=0.3, seed=0)
    x = torch.randn(3, 8)
    compiled = torch.compile(shaped, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(x), shaped(x), atol=1e-6)


# -- predicted against empirical ------------------------------------------------------------
def _pairs(n_pairs, dim, q0, c0, seed, spatial=()):
    """``2 n_pairs`` inputs: pairs at exactly ``q0`` with correlation exactly ``c0``;
    with ``spatial``, every position holds the same vector (the scalar path's inputs)."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(n_pairs, 2, dim, generator=gen, dtype=torch.float64)
    e1 = g[:, 0] / g[:, 0].norm(dim=1, keepdim=True)
    e2 = g[:, 1] - (g[:, 1] * e1).sum(1, keepdim=True) * e1
    e2 = e2 / e2.norm(dim=1, keepdim=True)
    scale = math.sqrt(q0 * dim)
    x = torch.stack([scale * e1, scale * (c0 * e1 + math.sqrt(1 - c0 ** 2) * e2)], 1)
    x = x.reshape(2 * n_pairs, dim)
    for n in spatial:
        x = x[..., None].expand(*x.shape, n)
    return x.float().contiguous()


def _empirical(shaped, x, rows):
    """Per row: (mean over pairs of q, mean over pairs of c) of the shaped model's output."""
    seen = ks.torch.capture(shaped, x)
    out = []
    for r in rows:
        h = seen[r.node].double().reshape(x.shape[0] // 2, 2, -1)
        q = float((h ** 2).mean())
        c = float(((h[:, 0] * h[:, 1]).sum(-1)
                   / (h[:, 0].norm(dim=-1) * h[:, 1].norm(dim=-1))).mean())
        out.append((q, c))
    return np.array(out)


def _monte_carlo(model, x, **options):
    runs = []
    for seed in range(SEEDS):
        shaped, report = ks.torch.shape(model, x[:1], seed=seed, **options)
        rows = report.predict(q0=1.0, c0=0.3)
        runs.append(_empirical(shaped, x, rows))
    runs = np.array(runs)   # (seeds, rows, 2)
    mean, se = runs.mean(0), runs.std(0, ddof=1) / math.sqrt(SEEDS)
    predicted = np.array([(r.q, r.c) for r in rows])
    return rows, predicted, mean, se


def _agree(rows, predicted, mean, se):
    ok = ~np.isnan(predicted[:, 0])
    deviation = np.abs(mean - predicted)[ok]
    allowed = 4 * se[ok] + 8 / WIDTH
    bad = [(r.path, r.kind) for r, row_ok in zip(np.array(rows, dtype=object)[ok],
                                                 (deviation > allowed).any(1)) if row_ok]
    assert not bad, (bad, deviation.max(0), (deviation / se[ok]).max(0))
    return ok.sum()


@pytest.mark.parametrize("act, options", [
    (nn.Tanh, {"zeta": 1.5}),
    (nn.GELU, {"method": "tat", "tau": 0.3}),
    (nn.ReLU, {"method": "tat", "eta": 0.3}),
])
def test_mlp_predictions_match_the_shaped_model(act, options):
    x = _pairs(16, WIDTH, 1.0, 0.3, seed=0)
    assert _agree(*_monte_carlo(mlp([WIDTH] * 5, act=act), x, **options)) == 5


def test_cnn_with_pooling_predictions_match_the_shaped_model():
    x = _pairs(8, WIDTH, 1.0, 0.3, seed=1, spatial=(4, 4))
    assert _agree(*_monte_carlo(pool_cnn(WIDTH), x, zeta=1.5)) == 5


@pytest.mark.parametrize("act, options", [
    (nn.Tanh(), {"zeta": 1.5}),
    (nn.ReLU(), {"method": "tat", "eta": 0.3}),
])
def test_residual_predictions_match_the_shaped_model(act, options):
    x = _pairs(16, WIDTH, 1.0, 0.3, seed=2)
    assert _agree(*_monte_carlo(DenseResNet(WIDTH, 3, 0.8, act), x, **options)) == 10


def test_post_activation_skips_get_no_prediction_because_the_maps_miss():
    # V1 blocks act(w x + v f(x)), x an activation's output: the next activation's input is
    # not Gaussian, and its measured q is far from the map's value; rows stop there.
    x = _pairs(16, WIDTH, 1.0, 0.3, seed=3)
    model = DenseResNet(WIDTH, 3, 0.8, nn.Tanh(), version="v1")
    rows, predicted, mean, se = _monte_carlo(model, x, zeta=1.5)
    assert _agree(rows, predicted, mean, se) == 5   # up to the first V1 sum's activation
    first = int(np.argmax(np.isnan(predicted[:, 0])))
    assert rows[first].kind == "activation" and rows[first - 1].kind == "sum"
    # what the maps would say there (DKS: Q(1) = 1) is many standard errors off
    assert abs(mean[first, 0] - 1.0) > 5 * se[first, 0] + 8 / WIDTH


def test_row_and_report_fields_are_the_documented_ones():
    # tools built on the rows (a finite-width check) rely on these names
    import dataclasses
    assert [f.name for f in dataclasses.fields(ks.torch.Row)] == ["path", "kind", "q", "c",
                                                                  "node", "detail"]
    _, report = ks.torch.shape(mlp([4, 4]), torch.zeros(1, 4), zeta=1.5, seed=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.layers = ()
    assert {"network", "transforms", "layers"} <= {f.name for f in dataclasses.fields(report)}


class _Concat(nn.Module):
    """A quarter of the channels through an activation, the rest linear, concatenated."""

    def __init__(self, width):
        super().__init__()
        self.inp, self.out = nn.Linear(width, width), nn.Linear(width, width)
        self.a, self.b = nn.Linear(width, width // 4), nn.Linear(width, 3 * width // 4)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        return torch.tanh(self.out(torch.cat([torch.tanh(self.a(h)), self.b(h)], 1)))


def test_concatenation_predictions_match_the_shaped_model():
    x = _pairs(16, WIDTH, 1.0, 0.3, seed=5)
    rows, predicted, mean, se = _monte_carlo(_Concat(WIDTH), x, zeta=1.5)
    assert [r.kind for r in rows].count("cat") == 1
    assert _agree(rows, predicted, mean, se) == 5
