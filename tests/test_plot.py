"""Figures build with the expected artists (lines, labels, legends), and plot the right numbers.

Pixels are not compared. Numbers drawn are checked where the theory gives them: ReLU's
degeneration at the edge of chaos (THEORY.md §3), the tabulated composition against the
exact maps, the EOC line of the phase diagram.
"""

import math
import warnings

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure

from kernelshape import activation, plot
from kernelshape.empirical import compare, predict
from kernelshape.errors import DomainError
from kernelshape.networks import mlp
from kernelshape.plot._variants import _Variant
from kernelshape.plot.maps import _phase_grid
from kernelshape.transforms import dks

RELU, TANH = activation("relu"), activation("tanh")


def _labels(ax):
    return [line.get_label() for line in ax.get_lines()]


def _legend_texts(ax):
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def test_degeneration_panels_lines_and_legend():
    t = dks(TANH, network=mlp(20))
    fig = plot.degeneration(RELU, network=mlp(20), depths=(1, 5, 20),
                            methods=("untransformed", t))
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 4                                  # C and C' rows, two methods
    for ax in axes[:2]:
        assert _labels(ax) == ["identity", "L = 1", "L = 5", "L = 20"]
    assert axes[0].get_ylabel() == "output $c$ = $C_f(c)$"
    assert axes[2].get_ylabel() == "slope $C_f'(c)$"
    assert axes[2].get_xlabel() == axes[3].get_xlabel() == "input cosine similarity $c$"
    assert axes[0].get_title() == "relu (untransformed)" and axes[1].get_title() == "DKS tanh"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["identity", "L = 1", "L = 5", "L = 20"]
    assert legend.get_title().get_text() == "depth"
    # Shared axes: every C panel spans the same c and output range.
    assert axes[0].get_xlim() == axes[1].get_xlim() == (-1.0, 1.0)
    # DKS: C_f(0) = 0 and C_f'(1) = zeta^(L / 20) for the first L of 20 layers (THEORY §4).
    c, y = axes[1].get_lines()[3].get_data()
    assert y[np.argmin(abs(c))] == pytest.approx(0.0, abs=1e-8)
    assert axes[3].get_lines()[1].get_ydata()[-1] == pytest.approx(1.5 ** (5 / 20), rel=1e-6)


def _small_residual_net(blocks=3):
    from kernelshape.networks import chain, nonlinear, residual
    return chain(*[residual(chain(nonlinear(), nonlinear()), 0.8) for _ in range(blocks)])


def test_degeneration_draws_the_network_given():
    # issue 13 point 4: a custom network is drawn as itself, not as a chain of L layers.
    net = _small_residual_net()
    t = dks(TANH, network=net)
    fig = plot.degeneration(TANH, network=net, methods=("untransformed", t))
    c, drawn = fig.axes[1].get_lines()[1].get_data()
    exact = np.array([net.c_map(t.activation, float(v)) for v in c[::20]])
    np.testing.assert_allclose(drawn[::20], exact, atol=1e-5)
    c, drawn = fig.axes[0].get_lines()[1].get_data()
    exact = np.array([net.c_map(TANH, float(v)) for v in c[::20]])
    np.testing.assert_allclose(drawn[::20], exact, atol=1e-5)
    # DKS for this network: its own C_f'(1) is zeta = 1.5 (THEORY.md §4).
    assert fig.axes[3].get_lines()[0].get_ydata()[-1] == pytest.approx(1.5, rel=1e-4)
    assert _labels(fig.axes[0]) == ["identity", f"L = {net.n_nonlinear}"]
    assert "DKS / TAT solved for this network" in fig._suptitle.get_text()


def test_degeneration_sweeps_a_user_family_and_says_the_tuned_depth():
    family = _small_residual_net
    fig = plot.degeneration(TANH, network=family, depths=[1, 4], tuned_depth=2,
                            methods=["untransformed", "dks"])
    assert _labels(fig.axes[1]) == ["identity", "L = 1", "L = 2", "L = 4"]
    t = dks(TANH, network=family(2))
    for line, depth in zip(fig.axes[1].get_lines()[1:], (1, 2, 4)):
        _c, drawn = line.get_data()
        assert drawn[0] == pytest.approx(family(depth).c_map(t.activation, -1.0), abs=1e-5)
    thick = [ln.get_linewidth() for ln in fig.axes[1].get_lines()[1:]]
    assert thick[1] > thick[0] and thick[1] > thick[2]       # the tuned depth stands out
    assert "tuned for chain(" in fig._suptitle.get_text()


def test_degeneration_of_a_resnet_sweeps_resnets():
    from kernelshape.networks import resnet
    net = resnet(18, 0.6)
    fig = plot.degeneration(TANH, network=net, depths=[18, 34], methods=["dks"])
    assert _labels(fig.axes[0]) == ["identity", "L = 18", "L = 34"]
    t = dks(TANH, network=net)
    _c, drawn = fig.axes[0].get_lines()[2].get_data()
    assert drawn[0] == pytest.approx(resnet(34, 0.6).c_map(t.activation, -1.0), abs=1e-5)
    assert "tuned for resnet(depth=18, shortcut_weight=0.6)" in fig._suptitle.get_text()
    with pytest.raises(DomainError, match="not ResNet depths"):
        plot.degeneration(TANH, network=net, depths=[10], methods=["dks"])


def test_degeneration_marks_the_tuned_depth_and_does_not_share_slope_axes():
    fig = plot.degeneration(TANH, network=mlp(20), methods=["untransformed", "dks"])
    # default depths include the tuned one, drawn thicker; the title names the network
    labels = _labels(fig.axes[1])
    assert "L = 20" in labels and "mlp(depth=20)" in fig._suptitle.get_text()
    # DKS beyond its tuned depth: C_f'(1) = 1.5^(100/20) = 7.6 must not flatten the
    # untransformed slope panel (issue 13: the slope row shared one y-axis).
    dks_top = fig.axes[3].get_ylim()[1]
    untransformed_top = fig.axes[2].get_ylim()[1]
    assert dks_top > 7 and untransformed_top < 2


def test_relu_degeneration_by_default_solves_nothing_that_warns():
    # issue 13 point 4: `kernelshape plot degeneration relu` warned about a DKS-ReLU solve
    # the user never asked for (pytest turns warnings into errors).
    fig = plot.degeneration(RELU, network=mlp(20), depths=[1, 20])
    titles = [ax.get_title() for ax in fig.axes[:len(fig.axes) // 2]]
    assert not any(t.startswith("DKS") for t in titles)
    assert any(t.startswith("TAT leaky ReLU") for t in titles)


@pytest.mark.parametrize("kwargs, match", [
    ({"network": _small_residual_net(), "depths": [1, 2]}, "sweeps a family"),
    ({"network": mlp(5), "tuned_depth": 3}, "tuned_depth is for a family"),
    ({"network": _small_residual_net(), "methods": ["eoc"]}, "chains"),
    ({"network": lambda L: "not a network", "depths": [1]}, "expected a Network"),
])
def test_degeneration_refuses_what_it_cannot_draw(kwargs, match):
    with pytest.raises(DomainError, match=match):
        plot.degeneration(TANH, **kwargs)


def test_degeneration_without_slope_row():
    fig = plot.degeneration(RELU, methods=["untransformed"], depths=[3], slope=False)
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "input cosine similarity $c$"


def test_relu_degenerates_at_the_edge_of_chaos_as_theory_says():
    # THEORY.md §3: ReLU at the EOC, C^L(0) ~ 0.32, 0.74, 0.87, 0.95, 0.988, 0.996 at
    # L = 1, 5, 10, 20, 50, 100 (quoted to 2-3 digits, hence the tolerance).
    fig = plot.c_vs_depth(RELU, methods=["untransformed"], max_depth=100)
    depth, value = fig.axes[0].get_lines()[0].get_data()
    for L, expected in [(1, 0.32), (5, 0.74), (10, 0.87), (20, 0.95), (50, 0.988),
                        (100, 0.996)]:
        assert value[list(depth).index(L)] == pytest.approx(expected, abs=6e-3)
    assert value[0] == pytest.approx(1 / math.pi, abs=1e-5)
    assert fig.axes[0].get_xscale() == "log"
    assert _labels(fig.axes[0]) == ["relu (untransformed)"]
    assert "DKS bound $\\zeta$=1.5" in _legend_texts(fig.axes[1])


@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_tabulated_composition_matches_exact_maps(name):
    # The figures compose a tabulated layer map; the exact route is empirical.predict.
    # Claimed accuracy (plot._variants._CTable): 1e-5 over 10 layers (smooth or ReLU interior).
    phi = activation(name)
    var = _Variant("untransformed", name, phi)
    c = np.linspace(-0.95, 0.95, 9)
    _, composed, _ = var.chain(c, 10)
    _, exact = predict(phi, network=mlp(10), c=c)
    np.testing.assert_allclose(composed, exact, atol=1e-5)


def test_c_map_figure():
    fig = plot.c_map([RELU, TANH], q=(0.5, 2.0))
    left, right = fig.axes
    assert _labels(left) == ["identity", "relu, q = 0.5", "relu, q = 2", "tanh, q = 0.5",
                             "tanh, q = 2"]
    assert len(right.get_lines()) == 5                     # four slopes and the line at 1
    assert right.get_ylabel() == "slope $C'(c)$"
    # The drawn ReLU slope at c = 0 is the closed form 1/2 (THEORY.md §1: C'(0) = 1/2).
    c, y = right.get_lines()[0].get_data()
    assert y[np.argmin(abs(c))] == pytest.approx(0.5, abs=1e-9)


def test_q_map_figure_finds_the_fixed_point():
    sw = 1.3
    fig = plot.q_map(TANH, sigma_w=sw, depth=60)
    left, right = fig.axes
    assert left.get_xlabel() == "input $q$" and right.get_ylabel() == "$q_l$"
    star = [ln for ln in left.get_lines() if ln.get_label().startswith("fixed point")]
    assert len(star) == 1
    q_star = star[0].get_xdata()[0]
    assert sw**2 * TANH.q_map(q_star) == pytest.approx(q_star, rel=1e-6)
    assert len(left.get_legend().get_texts()) == 5


def test_eoc_phase_figure():
    # erf: Q and C in closed form (THEORY.md §1). Without bias its edge of chaos is
    # sigma_w^2 E[erf'(0)^2] = sigma_w^2 4/pi = 1, i.e. sigma_w = sqrt(pi)/2.
    fig = plot.eoc_phase(activation("erf"), resolution=10)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "$\\sigma_w$" and ax.get_ylabel() == "$\\sigma_b$"
    assert len(fig.axes) == 2                              # the colour bar
    assert _legend_texts(ax) == ["edge of chaos $\\chi_1$ = 1", "depth scale $\\xi_c$"]
    sw, _, chi, _ = _phase_grid(activation("erf"), 3.0, 1.0, 10)
    row = chi[0]
    i = np.flatnonzero(np.isfinite(row[:-1]) & np.isfinite(row[1:])
                       & (row[:-1] < 1) & (row[1:] >= 1))[0]
    edge = math.sqrt(math.pi) / 2
    assert sw[0, i] <= edge + 0.02 and sw[0, i + 1] >= edge - 0.02


@pytest.fixture(scope="module")
def tanh_phase():
    return _phase_grid(TANH, 3.0, 1.0, 8)


def _exact_phase_point(phi, sw, sb):
    """chi_1 and xi_c at one (sigma_w, sigma_b) from exact maps (Poole et al. 2016)."""
    from scipy.optimize import brentq
    q = brentq(lambda v: sw**2 * float(phi.q_map(v)) + sb**2 - v, max(sb**2, 1e-12), 50.0,
               xtol=1e-15, rtol=1e-15)
    a = sw**2 * float(phi.q_map(q)) / q
    chi = a * float(phi.c_map(1.0, q=q, order=1))
    if chi < 1:
        return chi, -1.0 / math.log(chi)
    # chaotic: the attracting fixed point c* < 1 of the layer C map, found by iterating it
    c_star = 0.5
    for _ in range(5000):
        c_next = a * float(phi.c_map(c_star, q=q)) + 1 - a
        if abs(c_next - c_star) < 1e-13:
            break
        c_star = c_next
    return chi, -1.0 / math.log(a * float(phi.c_map(c_star, q=q, order=1)))


def test_eoc_phase_grid_is_regular_and_covers_the_plot(tanh_phase):
    # issue 13 point 4: the old curvilinear grid left a sawtooth at small sigma_w (its left
    # edge was the first sampled q* of each row) and holes where masked points were parked.
    sw, sb, chi, xi = tanh_phase
    np.testing.assert_array_equal(sw, np.broadcast_to(sw[0], sw.shape))
    assert sw[0, 0] == 0.0 and sw[0, -1] == 3.0 and sb[0, 0] == 0.0 and sb[-1, 0] == 1.0
    assert np.isfinite(chi).all()                         # tanh: q* exists everywhere
    assert np.isfinite(xi[chi < 0.98]).all() and np.isfinite(xi[chi > 1.02]).all()


@pytest.mark.parametrize("row, col", [(3, 5), (5, 12), (7, 20), (2, 23), (0, 15), (6, 9)])
def test_eoc_phase_grid_values_match_exact_maps(tanh_phase, row, col):
    sw, sb, chi, xi = tanh_phase
    exact_chi, exact_xi = _exact_phase_point(TANH, sw[row, col], sb[row, col])
    # plotting accuracy: tabulated maps (plot._variants._CTable), 1e-4 relative
    assert chi[row, col] == pytest.approx(exact_chi, rel=1e-4)
    assert xi[row, col] == pytest.approx(exact_xi, rel=1e-3)


def test_predicted_vs_empirical_figure():
    r = compare(RELU, network=mlp(6), width=128, seeds=3, sigma_w=math.sqrt(2), c=(0.0, 0.5))
    fig = plot.predicted_vs_empirical([r, r])
    assert len(fig.axes) == 4
    top = fig.axes[0]
    labels = [ln.get_label() for ln in top.get_lines() if not ln.get_label().startswith("_")]
    assert labels == ["$c_0$ = 0", "$c_0$ = 0.5"]
    assert len(top.containers) == 2                        # one errorbar set per pair
    assert fig.axes[2].get_xlabel() == "layer $l$"
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:3] == ["$c_0$ = 0", "$c_0$ = 0.5", "predicted (maps)"]


def test_training_curves_figure():
    runs = {"a": {"step": [0, 10, 20], "train_loss": [2.3, 1.0, 0.5],
                  "test_accuracy": [0.1, 0.6, 0.8]},
            "b": {"step": [0, 10, 20], "train_loss": [2.3, 2.2, 2.1],
                  "test_step": [0, 20], "test_accuracy": [0.1, 0.2]}}
    fig = plot.training_curves(runs, title="t")
    loss, acc = fig.axes
    assert _labels(loss) == ["a", "b"] and loss.get_yscale() == "log"
    assert list(acc.get_lines()[1].get_xdata()) == [0, 20]
    assert _legend_texts(acc) == ["a", "b"]
    with pytest.raises(DomainError, match="lacks"):
        plot.training_curves({"a": {"step": [0]}})


def test_transformed_activations_figure():
    ts = [dks(TANH, network=mlp(10)), dks(activation("softplus"), network=mlp(10)),
          dks(activation("gelu"), network=mlp(10))]
    fig = plot.transformed_activations(ts, ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and len(fig.axes) == 4
    for ax, t in zip(visible, ts):
        assert len(ax.get_lines()) == 2
        x, y = ax.get_lines()[1].get_data()
        np.testing.assert_allclose(y, t.activation(x), rtol=1e-14)
        assert ax.get_title().startswith("DKS ")
        assert "$\\alpha$" in ax.texts[0].get_text()


def test_relu_dks_warning_reaches_the_caller():
    from kernelshape.transforms import ReluWarning
    with pytest.warns(ReluWarning):
        plot.degeneration(RELU, network=mlp(10), methods=["dks"], depths=[1])


@pytest.mark.parametrize("call, match", [
    (lambda: plot.degeneration(RELU, methods=["bogus"]), "unknown method 'bogus'; valid"),
    (lambda: plot.degeneration(RELU, methods=["dks"]), "needs a network"),
    (lambda: plot.degeneration(RELU, methods=["untransformed"], depths=[0]), "depths"),
    (lambda: plot.predicted_vs_empirical([]), "KernelComparison"),
    (lambda: plot.transformed_activations(RELU), "Transform"),
])
def test_invalid_arguments(call, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DomainError, match=match):
            call()
