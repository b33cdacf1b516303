"""ks.torch.check: empirical per-layer q and c of a real PyTorch model beside the theory.

Predictions here come from an independent route, the activations' own scalar maps iterated
layer by layer (``phi.q_map``, ``phi.c_map``), packed as a report-like object, so these tests
hold whatever ``ks.torch.predict`` does; the ``shape``/``predict`` round trip is tested where
they exist. Widths 256 (dense) and 32 channels x 64 locations (conv): the Monte Carlo error
of q and c per layer is a few percent, so a shaped network stays within a few accumulated
standard errors and a default-initialized deep ReLU network is off by orders of magnitude.
"""

from __future__ import annotations

from types import SimpleNamespace as Row

import numpy as np
import pytest

import kernelshape as ks
from kernelshape.errors import DomainError, KernelShapeError, ModelError

torch = pytest.importorskip("torch")
from kernelshape.torch._check import Check, check

WIDTH, DEPTH = 256, 20


def _pln_batch(n, shape, seed, c_pair=0.6):
    """``n`` inputs with mean square 1 each; inputs 0 and 1 at cosine about ``c_pair``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    x[1] = c_pair * x[0] + (1 - c_pair ** 2) ** 0.5 * x[1]
    return (x / x.pow(2).flatten(1).mean(1).sqrt().view(-1, *[1] * len(shape))).float()


def _report(phi, paths, q0, c0, kind="nonlinear"):
    """Rows of the iterated scalar maps of ``phi`` (weights preserving q, zero biases)."""
    rows, q, c = [], q0, c0
    for path in paths:
        q, c = float(phi.q_map(q)), float(phi.c_map(c, q=q))
        rows.append(Row(path=path, kind=kind, q=q, c=c))
    return Row(layers=rows)


def _inputs_q_c(x):
    flat = x.double().flatten(1)
    q0 = float(flat.pow(2).mean())
    c0 = float(torch.nn.functional.cosine_similarity(flat[0], flat[1], dim=0))
    return q0, c0


def _mlp(act, *, depth=DEPTH, width=WIDTH, seed=0, orthogonal=True):
    torch.manual_seed(seed)
    layers = []
    for _ in range(depth):
        lin = torch.nn.Linear(width, width)
        if orthogonal:
            torch.nn.init.orthogonal_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        layers += [lin, act()]
    return torch.nn.Sequential(*layers)


@pytest.fixture(scope="module")
def dks_tanh():
    return ks.dks(ks.activation("tanh"), network=ks.mlp(DEPTH), zeta=1.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dks_shaped_mlp_agrees_with_its_maps(dks_tanh, seed):
    from kernelshape.codegen import as_torch

    model = _mlp(lambda: as_torch(dks_tanh), seed=seed)
    x = _pln_batch(16, (WIDTH,), seed)
    q0, c0 = _inputs_q_c(x)
    rep = _report(dks_tanh.activation, [str(2 * i + 1) for i in range(DEPTH)], q0, c0)
    result = check(model, x, report=rep)
    assert isinstance(result, Check) and len(result.rows) == DEPTH
    assert result.q0 == pytest.approx(q0, rel=1e-6) and result.c0 == pytest.approx(c0, rel=1e-6)
    assert result.ok(3.0), result.table()
    # DKS keeps q = 1 (Q(1) = 1); its C map (C(0) = 0, C(1) = 1, convex) lowers c.
    last = result.rows[-1]
    assert abs(last.q_empirical - 1.0) < 0.1 and last.c_predicted < c0 - 0.05
    assert all(np.isfinite([r.q_stderr, r.c_stderr]).all() for r in result.rows)


def test_default_init_deep_relu_is_flagged():
    """ReLU at nn.Linear's default init (weights U(+-1/sqrt(n)), so sigma_w^2 = 1/3, and
    biases): q shrinks by 1/6 per layer until the biases hold it near 1/(3n), far from the
    theory's q_l = q0 / 2^l for ReLU with q-preserving weights; c goes to 1."""
    model = _mlp(torch.nn.ReLU, depth=50, orthogonal=False)
    x = _pln_batch(16, (WIDTH,), 0)
    q0, c0 = _inputs_q_c(x)
    rep = _report(ks.activation("relu"), [str(2 * i + 1) for i in range(50)], q0, c0)
    result = check(model, x, report=rep)
    assert not result.ok(3.0)
    worst = result.worst()
    assert worst.max_abs_z > 20, result.table()
    assert abs(worst.q_z) == worst.max_abs_z
    # Below the prediction at first (about 1/33 of it after 5 layers, where 3^-5 would be
    # the bias-free ratio), then held up by the biases far above it.
    assert result.rows[4].q_empirical < result.rows[4].q_predicted / 10
    assert result.rows[-1].q_empirical > 1e6 * result.rows[-1].q_predicted


def test_the_same_relu_network_with_orthogonal_weights_passes():
    """The counterpart: the very theory that flags default init holds at q-preserving init."""
    model = _mlp(lambda: torch.nn.ReLU(), depth=20)
    with torch.no_grad():            # orthogonal * sqrt(2): He scaling keeps q for ReLU
        for m in model:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(2 ** 0.5)
    x = _pln_batch(16, (WIDTH,), 3)
    q0, c0 = _inputs_q_c(x)
    relu_he = ks.activation("sqrt(2)*relu(x)")
    rep = _report(relu_he, [str(2 * i + 1) for i in range(20)], q0, c0)
    assert check(model, x, report=rep).ok(3.0)


def test_conv_rows_are_per_location_and_channels_are_axis_1():
    """A Delta-orthogonal CNN is a dense network at every location: the maps of tanh."""
    torch.manual_seed(0)
    ch, depth = 32, 8
    layers = []
    for _ in range(depth):
        conv = torch.nn.Conv2d(ch, ch, 3, padding=1)
        w = ks.delta_orthogonal(tuple(conv.weight.shape), rng=0, layout="oi")
        with torch.no_grad():
            conv.weight.copy_(torch.as_tensor(w))
            conv.bias.zero_()
        layers += [conv, torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers)
    # PLN per location: every location's channel vector has mean square 1.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, ch, 8, 8, generator=g)
    x = x / x.pow(2).mean(1, keepdim=True).sqrt()
    flat = x.double()
    q0 = 1.0
    c0 = float((flat[0] * flat[1]).sum() / (flat[0].pow(2).sum() * flat[1].pow(2).sum()).sqrt())
    rep = _report(ks.activation("tanh"), [str(2 * i + 1) for i in range(depth)], q0, c0)
    result = check(model, x, report=rep)
    assert result.q0 == pytest.approx(1.0, rel=1e-5)
    assert result.ok(3.0), result.table()
    # Measuring with channels on the wrong axis (last: width 8) would not reproduce q.
    assert abs(result.rows[0].q_empirical - rep.layers[0].q) < 0.05


def test_a_module_called_twice_gives_one_row_per_call():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin1, self.lin2 = torch.nn.Linear(WIDTH, WIDTH), torch.nn.Linear(WIDTH, WIDTH)
            for lin in (self.lin1, self.lin2):
                torch.nn.init.orthogonal_(lin.weight)
                torch.nn.init.zeros_(lin.bias)
            self.act = torch.nn.Tanh()

        def forward(self, x):
            return self.act(self.lin2(self.act(self.lin1(x))))

    x = _pln_batch(8, (WIDTH,), 0)
    q0, c0 = _inputs_q_c(x)
    rep = _report(ks.activation("tanh"), ["act", "act"], q0, c0)
    result = check(Twice(), x, report=rep)
    assert [r.path for r in result.rows] == ["act", "act"]
    assert result.rows[1].q_empirical < result.rows[0].q_empirical      # tanh shrinks q
    assert result.ok(3.0)
    too_many = _report(ks.activation("tanh"), ["act"] * 3, q0, c0)
    with pytest.raises(ModelError, match="'act' ran 2 time"):
        check(Twice(), x, report=too_many)


def test_the_model_is_left_as_it_was(dks_tanh):
    model = _mlp(torch.nn.Tanh, depth=3, width=32)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _pln_batch(4, (32,), 0)
    rep = _report(ks.activation("tanh"), ["1", "3", "5"], *_inputs_q_c(x))
    check(model, x, report=rep)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_table_and_plot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    model = _mlp(torch.nn.Tanh, depth=4, width=64)
    x = _pln_batch(6, (64,), 0)
    rep = _report(ks.activation("tanh"), ["1", "3", "5", "7"], *_inputs_q_c(x))
    result = check(model, x, report=rep, pair=(2, 4))
    text = result.table()
    assert text.splitlines()[0].startswith("6 inputs") and "(2, 4)" in text
    assert all(f"\n{p} " in text for p in ("1", "3", "5", "7")) and "worst: " in text
    assert str(result) == text
    fig = result.plot()
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    assert "worst |z|" in fig._suptitle.get_text()


def test_nonfinite_outputs_are_flagged_not_hidden():
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh())
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    x = _pln_batch(4, (16,), 0)
    rep = _report(ks.activation("tanh"), ["1"], *_inputs_q_c(x))
    result = check(model, x, report=rep)
    assert not result.ok(100.0) and result.worst().path == "1"


@pytest.mark.parametrize("bad, match", [
    (lambda x: x.numpy(), "torch.Tensor batch, got ndarray"),
    (lambda x: x[:1], "at least 2 inputs"),
    (lambda x: x.long(), "floating point, got dtype torch.int64"),
    (lambda x: x.clone().fill_(float("inf")), "finite"),
])
def test_bad_inputs_are_named(bad, match):
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh())
    x = _pln_batch(4, (8,), 0)
    rep = _report(ks.activation("tanh"), ["1"], 1.0, 0.5)
    with pytest.raises(DomainError, match=match):
        check(model, bad(x), report=rep)


def test_bad_options_are_named():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh())
    x = _pln_batch(4, (8,), 0)
    rep = _report(ks.activation("tanh"), ["1"], 1.0, 0.5)
    with pytest.raises(DomainError, match=r"pair must be two different indices in \[0, 4\)"):
        check(model, x, report=rep, pair=(0, 4))
    with pytest.raises(DomainError, match="pair must be two input indices"):
        check(model, x, report=rep, pair="ab")
    with pytest.raises(DomainError, match="model must be a torch.nn.Module, got function"):
        check(lambda t: t, x, report=rep)
    with pytest.raises(DomainError, match=r"\.layers rows"):
        check(model, x, report=object())
    with pytest.raises(DomainError, match=r"lacks \['c'\]"):
        check(model, x, report=Row(layers=[Row(path="1", q=1.0)]))
    with pytest.raises(ModelError, match=r"does not have: \['body.3'\]") as err:
        check(model, x, report=Row(layers=[Row(path="body.3", kind="", q=1.0, c=0.5)]))
    assert err.value.problems == [("body.3", "no such module")]
    assert isinstance(err.value, KernelShapeError)
    with pytest.raises(DomainError, match="threshold must be a positive number"):
        check(model, x, report=rep).ok(-1)


def test_function_call_rows_are_read_from_the_fx_graph():
    """Skip sums are function calls, not modules: their rows name the torch.fx node
    (``path = "scope:node"``), and the model's output row reuses the last activation's."""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(WIDTH, WIDTH)
            torch.nn.init.orthogonal_(self.lin.weight)
            torch.nn.init.zeros_(self.lin.bias)

        def forward(self, x):            # normalized sum: 0.6^2 + 0.8^2 = 1
            return 0.6 * x + 0.8 * torch.tanh(self.lin(x))

    model = torch.nn.Sequential(Block(), Block())
    names = [n.name for n in torch.fx.symbolic_trace(model).graph.nodes]
    adds = [n for n in names if n.startswith("add")]
    tanhs = [n for n in names if n.startswith("tanh")]
    assert len(adds) == len(tanhs) == 2
    x = _pln_batch(16, (WIDTH,), 0)
    q0, c0 = _inputs_q_c(x)
    tanh, rows, q, c = ks.activation("tanh"), [], q0, c0
    for i in range(2):
        qa, ca = float(tanh.q_map(q)), float(tanh.c_map(c, q=q))
        rows.append(Row(path=f"{i}:{tanhs[i]}", kind="activation", q=qa, c=ca, node=tanhs[i]))
        q, c = 0.36 * q + 0.64 * qa, (0.36 * q * c + 0.64 * qa * ca) / (0.36 * q + 0.64 * qa)
        rows.append(Row(path=f"{i}:{adds[i]}", kind="sum", q=q, c=c, node=adds[i]))
    rows.append(Row(path=f"1:{adds[1]}", kind="output", q=q, c=c, node=adds[1]))
    result = check(model, x, report=Row(layers=rows))
    assert [r.kind for r in result.rows] == ["activation", "sum"] * 2 + ["output"]
    assert result.rows[-1].q_empirical == result.rows[-2].q_empirical
    assert result.ok(3.0), result.table()
    bad = Row(layers=[Row(path="0:nope", kind="sum", q=1.0, c=0.0, node="nope")])
    with pytest.raises(ModelError, match=r"graph nodes the model does not have: \['nope'\]"):
        check(model, x, report=bad)


# -- with ks.torch.predict and ks.torch.shape (the rows they derive from the model) -------

def _tanh_mlp(depth):
    torch.manual_seed(0)
    return torch.nn.Sequential(*[m for _ in range(depth)
                                 for m in (torch.nn.Linear(WIDTH, WIDTH), torch.nn.Tanh())])


@pytest.fixture(scope="module")
def tat_shaped():
    model = _tanh_mlp(DEPTH)
    shaped, report = ks.torch.shape(model, torch.zeros(1, WIDTH), method="tat", tau=0.3,
                                    seed=0)
    return model, shaped, report


def test_exported_as_ks_torch_check():
    assert ks.torch.check is check


def test_a_tat_shaped_copy_passes_and_its_original_is_flagged(tat_shaped):
    model, shaped, report = tat_shaped
    x = _pln_batch(16, (WIDTH,), 5)
    result = ks.torch.check(shaped, x, report=report)
    # The report's rows are at q0 = 1, c0 = 0; check asks it for this batch's q0 and c0.
    assert result.rows[0].c_predicted == pytest.approx(
        report.predict(result.q0, result.c0)[0].c, abs=1e-12)
    assert [r.kind for r in result.rows] == ["activation"] * DEPTH + ["output"]
    assert result.ok(3.0), result.table()
    assert not ks.torch.check(model, x, report=report).ok(4.0)


def test_default_prediction_is_at_shaped_weights_or_the_models_own():
    """Default-init ReLU, 50 layers: far from what DKS/TAT assume, yet as the theory
    predicts for its own weight and bias scales (``weights="model"``)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[m for _ in range(50)
                                  for m in (torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU())])
    x = _pln_batch(16, (WIDTH,), 0)
    flagged = ks.torch.check(model, x)
    assert not flagged.ok(4.0) and flagged.worst().max_abs_z > 20, flagged.table()
    assert ks.torch.check(model, x, weights="model").ok(3.0)
    with pytest.raises(DomainError, match="unknown weights 'he'"):
        ks.torch.check(model, x, weights="he")
