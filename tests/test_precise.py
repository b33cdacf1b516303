"""The ``digits=N`` route (kernelshape.maps.precise): self-consistency across precisions,
precision beyond 50 digits, mpf results, Dirac masses at c = +-1.

Expected numbers: the same route at higher precision (digits=30 vs digits=50 must agree to
28 digits, the claim of the 30-digit result minus 2), or closed forms of THEORY.md §1.
"""

import mpmath
import pytest

import kernelshape as ks
from kernelshape.maps import gauss, precise


def _agree(a, b, digits):
    with mpmath.workdps(digits + 10):
        return abs(a - b) <= mpmath.mpf(10) ** -digits * max(1, abs(b))


@pytest.mark.parametrize("name, c, q, order", [
    ("relu", 0.3, 1.0, 2),         # closed-form inner integrals
    ("tanh", 0.5, 0.5, 1),         # trapezoid sums (analytic phi)
    ("elu", -1.0, 0.5, 2),         # c = -1 edge, phi'' jumps
    ("selu", 1.0, 2.0, 1),         # c = 1 edge
])
def test_digits_30_agrees_with_digits_50(name, c, q, order):
    act = ks.activation(name)
    low = precise.c_map(act, c, q, order, 30)
    high = precise.c_map(act, c, q, order, 50)
    assert isinstance(low, mpmath.mpf) and isinstance(high, mpmath.mpf)
    assert _agree(low, high, 28)


@pytest.mark.parametrize("name", ["gelu", "softplus"])
def test_q_map_digits_30_agrees_with_digits_50(name):
    act = ks.activation(name)
    for order in range(3):
        assert _agree(precise.q_map(act, 1.3, order, 30), precise.q_map(act, 1.3, order, 50), 28)


def test_sixty_digits_match_closed_form():
    # THEORY.md §1: Q(q) of erf = (2/pi) arcsin(2q / (1 + 2q)); C'(0) of sin at q = 1 is
    # E[cos u]^2 / Q = exp(-1) / (exp(-1) sinh 1) = 1 / sinh(1)
    with mpmath.workdps(70):
        q = mpmath.mpf(0.75)
        exact_q = 2 / mpmath.pi * mpmath.asin(2 * q / (1 + 2 * q))
        exact_c1 = 1 / mpmath.sinh(1)
    assert _agree(precise.q_map(ks.activation("erf"), 0.75, 0, 60), exact_q, 59)
    assert _agree(precise.c_map(ks.activation("sin"), 0.0, 1.0, 1, 60), exact_c1, 59)


@pytest.mark.parametrize("scale", [0.01, 0.3])
@pytest.mark.parametrize("c", [-0.9, 0.3])
def test_small_and_large_input_scales_reach_forty_digits(scale, c):
    # erf(a x) has a closed-form C map at any scale (THEORY.md §1):
    # K(c) = (2/pi) arcsin(2 a^2 c / (1 + 2 a^2)), C = K(c) / K(1). At a = 0.01 phi barely
    # varies, so the Gaussian weights alone must set the trapezoid steps (a past bug).
    act = ks.activation("erf").affine(scale, 0.0)
    with mpmath.workdps(60):
        a2 = mpmath.mpf(scale) ** 2

        def exact(t):
            return mpmath.asin(2 * a2 * t / (1 + 2 * a2)) / mpmath.asin(2 * a2 / (1 + 2 * a2))
        want = [mpmath.diff(exact, mpmath.mpf(c), order) for order in range(3)]
    for order in range(3):
        assert _agree(precise.c_map(act, c, 1.0, order, 40), want[order], 39)


def test_dirac_masses_at_the_edges():
    relu = ks.activation("relu")
    # C''(c) = 1 / (pi sqrt(1 - c^2)) diverges at both ends (THEORY.md §1)
    assert precise.c_map(relu, 1.0, 1.0, 2, 20) == mpmath.inf
    assert precise.c_map(relu, -1.0, 1.0, 2, 20) == mpmath.inf
    # phi jumps (sign): C'(c) = 2 / (pi sqrt(1 - c^2)) diverges at c = 1
    assert precise.c_map(ks.activation("sign(x)"), 1.0, 1.0, 1, 20) == mpmath.inf
    # ReLU shifted: the kink at x = -0.5 meets no mirror kink at c = -1, and phi'' = 0
    # elsewhere: C''(-1) = 0 exactly. Inside, C''(c) is the bivariate normal density at
    # (-0.5, -0.5) over Q (Price's theorem with phi'' = delta(x + 0.5)): exact below.
    shifted = relu.affine(1.0, 0.5)
    assert precise.c_map(shifted, -1.0, 1.0, 2, 20) == 0
    with mpmath.workdps(30):
        c, x = mpmath.mpf(-0.99), mpmath.mpf(-0.5)
        density = (mpmath.exp(-(1 - c) * x * x / (1 - c * c))
                   / (2 * mpmath.pi * mpmath.sqrt(1 - c * c)))
        exact = density / precise.q_map(shifted, 1.0, 0, 25)
    assert _agree(precise.c_map(shifted, -0.99, 1.0, 2, 20), exact, 19)


def test_expect_matches_float64_engine():
    # gauss.expect (float64, ~1e-15 relative) for a transformed activation
    act = ks.activation("tanh").affine(1.7, 0.5, 0.1, 2.0)
    terms = [(0, 0, 0), (1, 1, 0), (2, 2, 0), (0, -1, 0), (0, 1, 1)]
    exact = precise.expect(act, terms, 0.3, -0.2, digits=30)
    fast = gauss.expect(act, terms, 0.3, -0.2)
    assert all(isinstance(v, mpmath.mpf) for v in exact)
    for e, f in zip(exact, fast):
        assert abs(float(e) - f) <= 1e-14 * max(1.0, abs(f))


def test_expect_relu_closed_forms():
    # E[relu(z)^2] = 1/2, E[relu'(z) z] = E[z; z > 0] = 1/sqrt(2 pi)
    values = precise.expect(ks.activation("relu"), [(0, 0, 0), (1, -1, 1)], digits=40)
    with mpmath.workdps(50):
        assert _agree(values[0], mpmath.mpf(1) / 2, 39)
        assert _agree(values[1], 1 / mpmath.sqrt(2 * mpmath.pi), 39)
