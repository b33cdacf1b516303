"""The bounds tool: DKS Theorems 13 and 27 measured on transformed and plain networks."""

import math

import numpy as np
import pytest

import kernelshape as ks
from kernelshape.errors import DomainError
from kernelshape.networks import bounds

DENSE = ks.chain(*[ks.linear(), ks.nonlinear()] * 6, ks.linear())
RESNET = ks.chain(ks.linear(), *[ks.residual(ks.chain(ks.nonlinear(), ks.linear()), 0.6)] * 3,
                  ks.nonlinear(), ks.linear())


@pytest.mark.parametrize("net", [DENSE, RESNET], ids=["dense", "resnet"])
@pytest.mark.parametrize("zeta", [1.1, 2.0])
def test_dks_networks_meet_the_bounds(net, zeta):
    t = ks.dks(ks.activation("tanh"), network=net, zeta=zeta)
    b = bounds(t, net, zeta=zeta, points=101)
    assert b.violations == ()
    whole = b.subnetworks[0]
    assert abs(whole["c0"]) < 1e-12                       # C_f(0) = 0 after DKS
    assert max(r["slope1"] for r in b.subnetworks) == pytest.approx(zeta, rel=1e-10)
    assert whole["deviation"] <= whole["upper_zero"] <= 2 * (zeta - 1) + 1e-12
    assert whole["lower"] <= whole["deviation"] <= whole["upper"]
    assert 0 < b.ntk_deviation <= b.ntk_bound == pytest.approx(11 * (zeta - 1))
    assert len(b.subnetworks) == 1 + len(net._subnetworks)


@pytest.mark.parametrize("zeta", [1.001, 1.01])
def test_residual_branches_meet_theorem_27_near_the_identity(zeta):
    # Unnormalized, a layer in a branch with shortcut weight 0.6 keeps Theta_i -> 0.64 c as
    # zeta -> 1 (the linear residual net's own value): reported as ntk_deviation_raw. After
    # dividing by lambda_i (the identity-activation value) the deviation is O(zeta - 1).
    t = ks.dks(ks.activation("tanh"), network=RESNET, zeta=zeta)
    b = bounds(t, RESNET, zeta=zeta, points=101)
    assert b.violations == ()
    assert 0 < b.ntk_deviation <= b.ntk_bound
    assert b.ntk_deviation_raw == pytest.approx(0.36, abs=0.02)      # = w^2 as zeta -> 1


def test_layer_ntks_normalized_by_the_linear_network():
    # With the identity as activation, every normalized per-layer NTK is c exactly, and the
    # unnormalized ones are lambda_i c: 1 - w^2 in a branch, 1 for the stem and the head.
    identity = ks.activation("x")
    c = np.linspace(-1, 1, 5)
    raw = RESNET.layer_ntks(identity, c)
    np.testing.assert_allclose(RESNET.layer_ntks(identity, c, normalized=True),
                               np.tile(c, (len(raw), 1)), rtol=0, atol=1e-15)
    lambdas = raw[:, -1]
    assert lambdas[0] == pytest.approx(1.0) and lambdas[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(lambdas[1:-1], 1 - 0.6 ** 2, rtol=1e-14)


def test_measured_quantities_are_the_maps():
    relu = ks.activation("relu")
    net = ks.chain(ks.linear(), ks.nonlinear(), ks.linear())
    b = bounds(relu, net, points=5)
    row = b.subnetworks[0]
    assert row["slope0"] == pytest.approx(0.5, rel=1e-14)          # C'(0) = (pi - pi/2) / pi
    assert row["slope1"] == pytest.approx(1.0, rel=1e-14)
    assert row["c0"] == pytest.approx(1 / math.pi, rel=1e-13)
    c = np.linspace(-1, 1, 5)
    want = max(abs((math.sqrt(1 - v * v) + (math.pi - math.acos(v)) * v) / math.pi - v)
               for v in c)
    assert row["deviation"] == pytest.approx(want, rel=1e-13)
    assert "upper_zero" not in row                                   # C_f(0) != 0


def test_a_plain_network_is_reported_not_hidden():
    # ReLU with sigma_w = 1 halves q per layer: Theta_i is far from c while the measured
    # zeta = C_f'(1) = 1 makes Theorem 27's bound 0. The tool says so.
    b = bounds(ks.activation("relu"), ks.chain(ks.linear(), ks.nonlinear(), ks.linear()))
    assert b.zeta == pytest.approx(1.0, rel=1e-14)
    assert any("Theorem 27" in v for v in b.violations)


def test_bad_grid():
    with pytest.raises(DomainError, match="odd integer"):
        bounds(ks.activation("tanh"), DENSE, points=100)
