"""ks.torch.trace / predict: every layer kind and functional form read into the network
vocabulary, every refusal named by module path in one error, and the ks.resnet family
written as a torch module deriving exactly to ks.resnet.

Expected values: the network vocabulary's own constructors (ks.linear(), ks.conv(...), ...),
kernelshape's float64 maps (ks.resnet at 1e-13), and torch's float64 functions against the
kernelshape activations on a grid.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _torch_models import (
    KSResNet,
    TVResNet,
    one_thread,  # noqa: F401 - a fixture, used by pytestmark
)
from torch import nn

import kernelshape as ks
from kernelshape.networks import (
    avg_pool,
    chain,
    conv,
    flatten,
    global_avg_pool,
    layer_norm,
    linear,
    nonlinear,
    normalized_sum,
    parallel,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class Fn(nn.Module):
    """A model that is one function of its input."""

    def __init__(self, fn, *mods):
        super().__init__()
        self.fn, self.mods = fn, nn.ModuleList(mods)

    def forward(self, x):
        return self.fn(x, *self.mods)


X2 = torch.zeros(2, 6)
X4 = torch.zeros(2, 4, 8, 8)

# (torch module or function, kernelshape activation)
ACTIVATION_FORMS = [
    (nn.Tanh(), "tanh"), (torch.tanh, "tanh"), (F.tanh, "tanh"), (lambda x: x.tanh(), "tanh"),
    (nn.Sigmoid(), "sigmoid"), (torch.sigmoid, "sigmoid"), (lambda x: x.sigmoid(), "sigmoid"),
    (nn.ReLU(), "relu"), (F.relu, "relu"), (torch.relu, "relu"), (lambda x: x.relu(), "relu"),
    (nn.LeakyReLU(0.2), ks.activation("leaky_relu", negative_slope=0.2)),
    (lambda x: F.leaky_relu(x, 0.3), ks.activation("leaky_relu", negative_slope=0.3)),
    (nn.ELU(0.5), ks.activation("elu", alpha=0.5)),
    (lambda x: F.elu(x, alpha=2.0), ks.activation("elu", alpha=2.0)),
    (nn.SELU(), "selu"), (F.selu, "selu"), (torch.selu, "selu"),
    (nn.GELU(), "gelu_exact"), (F.gelu, "gelu_exact"),
    (nn.GELU("tanh"), "gelu"), (lambda x: F.gelu(x, approximate="tanh"), "gelu"),
    (nn.SiLU(), "swish"), (F.silu, "swish"),
    (nn.Mish(), "mish"), (F.mish, "mish"),
    (nn.Softplus(), "softplus"), (nn.Softplus(beta=2.0), None), (F.softplus, "softplus"),
    (nn.Softsign(), "softsign"), (F.softsign, "softsign"), (torch.erf, "erf"),
]


@pytest.mark.parametrize("form, expected", ACTIVATION_FORMS,
                         ids=[f"{i}-{e if isinstance(e, str) else 'param'}"
                              for i, (_, e) in enumerate(ACTIVATION_FORMS)])
def test_activation_forms_read_as_the_same_activation(form, expected):
    if isinstance(form, nn.Module):
        model = nn.Sequential(nn.Linear(6, 6), form)
    else:
        model = Fn(lambda x, lin: form(lin(x)), nn.Linear(6, 6))
    net = ks.torch.trace(model, X2)
    assert len(net.layers) == 2 and net.layers[0] == linear()
    phi = net.layers[1].phi
    if isinstance(expected, str):
        assert phi.expr == ks.activation(expected).expr
    elif expected is not None:
        assert phi.expr == expected.expr
    # the kernelshape activation computes what torch computes (float64 grid, [-5, 5])
    grid = np.linspace(-5, 5, 201)
    torch_fn = form if not isinstance(form, nn.Module) else form.double()
    want = torch_fn(torch.tensor(grid, dtype=torch.float64)).numpy()
    assert np.max(np.abs(phi(grid) - want)) < 1e-9


@pytest.mark.parametrize("model, x, expected", [
    (nn.Sequential(nn.Linear(6, 5)), X2, chain(linear())),
    (nn.Sequential(nn.Conv1d(4, 4, 3, padding=1)), torch.zeros(2, 4, 8),
     chain(conv(3, init="delta"))),
    (nn.Sequential(nn.Conv2d(4, 4, 5, stride=2, padding=2)), X4,
     chain(conv((5, 5), stride=(2, 2), init="delta"))),
    (nn.Sequential(nn.Conv2d(4, 4, 2, stride=2)), X4,
     chain(conv((2, 2), stride=(2, 2), padding="valid"))),
    (nn.Sequential(nn.Conv3d(4, 4, 3, padding="same")), torch.zeros(1, 4, 4, 4, 4),
     chain(conv((3, 3, 3), stride=(1, 1, 1), init="delta"))),
    (nn.Sequential(nn.Conv2d(4, 4, 3)), X4,
     chain(conv((3, 3), stride=(1, 1), padding="valid", init="delta"))),
    (nn.Sequential(nn.AvgPool2d(2)), X4, chain(avg_pool((2, 2), stride=(2, 2)))),
    (nn.Sequential(nn.AvgPool2d(3, 1, 1)), X4,
     chain(avg_pool((3, 3), stride=(1, 1), padding="same"))),
    (Fn(lambda x: F.avg_pool2d(x, 2)), X4, chain(avg_pool((2, 2), stride=(2, 2)))),
    (nn.Sequential(nn.AdaptiveAvgPool2d(1)), X4, chain(global_avg_pool())),
    (nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()), X4, chain(global_avg_pool())),
    (Fn(lambda x: F.adaptive_avg_pool2d(x, 2)), X4, chain(avg_pool((4, 4), stride=(4, 4)))),
    (Fn(lambda x: x.mean((2, 3))), X4, chain(global_avg_pool())),
    (Fn(lambda x: torch.mean(x, dim=[-1, -2])), X4, chain(global_avg_pool())),
    (nn.Sequential(nn.Flatten()), X4, chain(flatten())),
    (Fn(lambda x: x.view(x.size(0), -1)), X4, chain(flatten())),
    (Fn(lambda x: x.reshape(x.shape[0], -1)), X4, chain(flatten())),
    (Fn(lambda x: torch.flatten(x, 1)), X4, chain(flatten())),
    (Fn(lambda x: x.flatten(1)), X4, chain(flatten())),
    (nn.Sequential(nn.Linear(6, 6), nn.LayerNorm(6)), X2, chain(linear(), layer_norm())),
    (nn.Sequential(nn.Linear(6, 6), nn.Identity(), nn.Dropout(0.3), nn.Tanh()), X2,
     chain(linear(), nonlinear("tanh"))),
    (Fn(lambda x, a: F.dropout(a(x), 0.1, False), nn.Linear(6, 6)), X2, chain(linear())),
], ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else None)
def test_layer_kinds_read_into_the_vocabulary(model, x, expected):
    assert repr(ks.torch.trace(model, x)) == repr(expected)


def test_sum_with_constant_weights_is_a_normalized_sum():
    # 0.6 x + 0.8 f(x), written five ways; the expected sum is the vocabulary's
    lin = nn.Linear(6, 6)
    want = chain(linear(), normalized_sum([linear(), chain(nonlinear("tanh"), linear())],
                                          [0.6, 0.8]))
    forms = [lambda h, f: 0.6 * h + 0.8 * f(h), lambda h, f: h * 0.6 + f(h) * 0.8,
             lambda h, f: torch.add(0.6 * h, f(h), alpha=0.8),
             lambda h, f: (3 * h + 4 * f(h)) / 5, lambda h, f: 0.6 * h - (-0.8) * f(h)]
    for form in forms:
        model = Fn(lambda x, a, b, form=form: form(a(x), lambda h: b(torch.tanh(h))), lin,
                   nn.Linear(6, 6))
        assert repr(ks.torch.trace(model, X2)) == repr(want)


class LearnedWeight(nn.Module):
    """A shortcut weight held as a parameter; the branch weight computed from it."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.6))
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        return self.w * x + torch.sqrt(1 - self.w ** 2) * self.lin(torch.tanh(x))


def test_weights_computed_from_scalar_parameters_are_constants():
    net = ks.torch.trace(nn.Sequential(nn.Linear(6, 6), LearnedWeight()), X2)
    assert np.allclose(net.layers[1].squares, [0.36, 0.64], atol=1e-7)   # float32 0.6


def test_three_term_sum_is_one_normalized_sum():
    w = (0.48, 0.6, 0.64)
    model = Fn(lambda x, a, b: w[0] * x + w[1] * a(torch.tanh(x)) + w[2] * b(torch.sigmoid(x)),
               nn.Linear(6, 6), nn.Linear(6, 6))
    net = ks.torch.trace(model, X2)
    assert len(net.layers) == 1
    assert np.allclose(net.layers[0].squares, [0.2304, 0.36, 0.4096], atol=1e-15)


def test_concatenation_along_channels_is_parallel_with_channel_fractions():
    model = Fn(lambda x, a, b: torch.cat([a(x), torch.tanh(b(x))], dim=1),
               nn.Conv2d(4, 2, 1), nn.Conv2d(4, 6, 3, padding=1))
    net = ks.torch.trace(model, X4)
    want = chain(parallel([conv((1, 1), stride=(1, 1), init="delta"),
                           chain(conv((3, 3), stride=(1, 1), init="delta"),
                                 nonlinear("tanh"))], [0.25, 0.75]))
    assert repr(net) == repr(want)


def test_several_outputs_are_heads():
    model = Fn(lambda x, a, b: (a(torch.tanh(x)), torch.tanh(b(x))), nn.Linear(6, 6),
               nn.Linear(6, 6))
    net = ks.torch.trace(model, X2)
    assert net.max_slope(2.0) == 2.0 and len(net.heads) == 2


def test_weights_model_reads_the_scales_the_model_holds():
    torch.manual_seed(0)
    lin = nn.Linear(6, 5)
    net = ks.torch.trace(nn.Sequential(lin), X2, weights="model")
    w2 = 6 * float((lin.weight.detach().double() ** 2).mean())
    b2 = float((lin.bias.detach().double() ** 2).mean())
    layer = net.layers[0]
    assert abs(layer.sigma_w - math.sqrt(w2)) < 1e-15 and abs(layer.sigma_b - math.sqrt(b2)) < 1e-15


def test_predict_rows_follow_the_maps_layer_by_layer():
    tanh = ks.activation("tanh")
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh())
    rows = ks.torch.predict(model, X2, q0=1.7, c0=0.3, weights="shaped")
    assert [(r.path, r.kind) for r in rows] == [("1", "activation"), ("3", "activation"),
                                                ("3", "output")]
    q1, c1 = tanh.q_map(1.7), tanh.c_map(0.3, q=1.7)
    assert abs(rows[0].q - q1) < 1e-13 and abs(rows[0].c - c1) < 1e-13
    assert abs(rows[1].q - tanh.q_map(q1)) < 1e-13
    assert abs(rows[1].c - tanh.c_map(c1, q=q1)) < 1e-13
    net = ks.torch.trace(model, X2)
    assert abs(rows[-1].c - net.c_map(None, 0.3, q=1.7)) < 1e-13


# -- refusals ------------------------------------------------------------------------------
def _problems(model, x=X2, **kw):
    with pytest.raises(ks.ModelError) as info:
        ks.torch.trace(model, x, **kw)
    return dict(info.value.problems), str(info.value)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(6, 6))

    def forward(self, x):
        if x.sum() > 0:   # data-dependent control flow
            return self.inner(x)
        return x


class Inner(nn.Module):
    def forward(self, x):
        return x + torch.tanh(x)


@pytest.mark.parametrize("model, x, path, words", [
    (nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6)), X2, "1", "batch normalization"),
    (nn.Sequential(nn.MaxPool2d(2)), X4, "0", "max pooling"),
    (Fn(lambda x: F.max_pool2d(x, 2)), X4, "max_pool2d", "max pooling"),
    (Fn(lambda x, a: x + a(torch.tanh(x)), nn.Linear(6, 6)), X2, "add", "unnormalized sum"),
    (Fn(lambda x, a: 0.5 * x + 0.5 * a(x), nn.Linear(6, 6)), X2, "add", "unnormalized sum"),
    (nn.Sequential(nn.Linear(6, 6), Inner()), X2, "1:add", "correlated"),
    (Fn(lambda x, a: a(x) * torch.sigmoid(x), nn.Linear(6, 6)), X2, "mul", "product"),
    (Fn(lambda x: x @ x.T), X2, "matmul", "product"),
    (Branchy(), X2, "<model>", "control flow"),
    (nn.Sequential(nn.Linear(6, 6), Branchy()), X2, "1", "control flow"),
    (nn.Sequential(nn.GroupNorm(2, 4)), X4, "0", "unknown module GroupNorm"),
    (Fn(lambda x: torch.cos(x)), X2, "cos", "unknown function cos"),
    (Fn(lambda x: x.exp()), X2, "exp", "unknown tensor method"),
    (nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=2)), X4, "0", "groups=2"),
    (Fn(lambda x: x.view(2, 3, 2)), X2, "view", "reshape"),
    (Fn(lambda x: torch.cat([x, x], dim=0)), X2, "cat", "dim 0"),
    (Fn(lambda x: x + 1.0), X2, "add", "constant"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_each_refusal_names_the_module_path(model, x, path, words):
    problems, message = _problems(model, x)
    assert path in problems, problems
    assert words in problems[path] and path in message


def test_all_problems_of_a_model_in_one_error():
    problems, message = _problems(TVResNet(), torch.zeros(1, 3, 32, 32))
    bns = [p for p in problems if "bn" in p or p.endswith("downsample.1")]
    assert len(bns) == 1 + 2 * 8 + 3 and "maxpool" in problems   # stem, 2 per block, 3 projections
    assert sum("unnormalized sum" in r for r in problems.values()) == 8
    assert all(p in message for p in problems)


def test_refused_model_is_not_modified():
    model = TVResNet()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ks.ModelError):
        ks.torch.trace(model, torch.randn(2, 3, 32, 32))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)   # BN running stats too


def test_wrong_example_input_is_named():
    with pytest.raises(ks.ModelError, match="example_input of shape"):
        ks.torch.trace(nn.Sequential(nn.Linear(6, 6)), torch.zeros(2, 5))


# -- the ks.resnet family as torch modules ---------------------------------------------------
RESNET_CASES = ([(d, w, "v2") for d in (18, 50) for w in (0.0, 0.5, 0.8, 0.98)]
                + [(101, w, "v2") for w in (0.0, 0.98)]
                + [(d, w, "v1") for d in (18, 50) for w in (0.0, 0.8)] + [(101, 0.5, "v1")])


@pytest.mark.parametrize("depth, weight, version", RESNET_CASES)
def test_resnet_family_derives_exactly_to_ks_resnet(depth, weight, version):
    net = ks.torch.trace(KSResNet(depth, weight, version=version), torch.zeros(1, 3, 8, 8))
    ref = ks.resnet(depth, weight, version=version)
    tanh = ks.activation("tanh")
    assert net.n_nonlinear == ref.n_nonlinear
    # DKS's slope and TAT's curvature functions; V2 also every C map (see the xfail below)
    for r in (lambda y: 1.013 * y, lambda y: 0.021 + y) + ((tanh.c_map,) if version == "v2"
                                                            else ()):
        for x in (0.0, 0.4, 1.0):
            assert abs(net.subnet_max(x, r) - ref.subnet_max(x, r)) < 1e-13
    cs = np.linspace(-1, 1, 5)
    assert np.max(np.abs(net.c_map(None, cs) - ref.c_map(tanh, cs))) < 1e-13
    assert abs(net.q_map(None, 1.3) - ref.q_map(tanh, 1.3)) < 1e-13


def test_resnet_with_plain_sums_derives_with_the_shortcut_weight():
    net = ks.torch.trace(KSResNet(50, None), torch.zeros(1, 3, 8, 8), shortcut_weight=0.8)
    ref = ks.resnet(50, 0.8)
    assert abs(net.max_slope(1.02) - ref.max_slope(1.02)) < 1e-13


@pytest.mark.xfail(strict=True, reason=(
    "convention: a layer shared by all branches of a sum is counted in each branch (the dks "
    "V2 example's projection blocks); a V1 projection block's input activation (the previous "
    "block's) is then counted in its branches, while ks.resnet(version='v1') keeps it in the "
    "trunk. Slope and curvature functions agree (tested above); a nonlinear r does not."))
def test_resnet_v1_projection_blocks_subnetworks_with_a_nonlinear_r():
    net = ks.torch.trace(KSResNet(50, 0.5, version="v1"), torch.zeros(1, 3, 8, 8))
    r = ks.activation("tanh").c_map
    assert abs(net.subnet_max(0.4, r) - ks.resnet(50, 0.5, version="v1").subnet_max(0.4, r)) \
        < 1e-13
