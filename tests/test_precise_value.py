"""digits=N values show their digits and never claim digits they do not have.

Issue 13 point 2: ``phi.c_map(0.5, digits=40)`` showed 17 digits in a notebook. Issue 14
("Small"): ``sin(100 x)`` at digits=30 printed 9.2e-52 where C is 7.1e-218. References:
the closed forms ``E[sin(a u) sin(a v)] = exp(-a^2 q) sinh(a^2 q c)`` and ``E[relu relu]``
(THEORY.md §1), evaluated in mpmath.
"""

from __future__ import annotations

import json
import pickle

import mpmath
import numpy as np
import pytest

import kernelshape as ks
from kernelshape.errors import PrecisionError
from kernelshape.maps import MAX_DIGITS, PreciseValue


def relu_c(c, dps):
    with mpmath.workdps(dps):
        c = mpmath.mpf(c)
        return (mpmath.sqrt(1 - c * c) + (mpmath.pi - mpmath.acos(c)) * c) / mpmath.pi


def sin_c(a, c, dps):
    """C(c) of sin(a x) at q = 1."""
    with mpmath.workdps(dps):
        a2 = mpmath.mpf(a) ** 2
        return mpmath.sinh(a2 * c) / mpmath.sinh(a2)


@pytest.fixture(scope="module")
def relu():
    return ks.activation("relu")


def test_repr_and_str_show_the_requested_digits(relu):
    v = relu.c_map(0.5, digits=40)
    assert isinstance(v, mpmath.mpf) and isinstance(v, PreciseValue)
    assert v.digits == 40
    ref = relu_c(mpmath.mpf(1) / 2, 60)
    assert repr(v) == f"mpf('{mpmath.nstr(ref, 40)}')"
    assert str(v) == mpmath.nstr(ref, 40)
    with mpmath.workdps(60):
        assert abs(v - ref) <= v.error <= mpmath.mpf(10) ** -40


def test_it_works_as_an_mpf_everywhere(relu):
    v = relu.c_map(0.5, digits=40)
    with mpmath.workdps(50):
        ref = relu_c(mpmath.mpf(1) / 2, 50)
        assert abs((v + 1) - (ref + 1)) < mpmath.mpf(10) ** -39
        assert abs(mpmath.sin(v) - mpmath.sin(ref)) < mpmath.mpf(10) ** -39
        assert type(v * 2) is mpmath.mpf          # arithmetic gives plain mpf values
    assert v < 1 and v > 0.6 and v == relu.c_map(0.5, digits=40) and v != 0
    assert float(v) == pytest.approx(float(ref), rel=1e-15)
    with mpmath.workprec(1000):
        assert hash(v) == hash(+v)                # +v: the same number as a plain mpf
    with mpmath.workdps(45):
        back = mpmath.mpf(json.loads(json.dumps({"c": str(v)}))["c"])
        assert abs(back - ref) <= mpmath.mpf(10) ** -40
    again = pickle.loads(pickle.dumps(v))
    assert again == v and again.digits == 40


def test_arrays_of_values_show_their_digits(relu):
    out = relu.c_map(np.array([0.0, 0.5]), digits=30)
    assert out.dtype == object and all(isinstance(x, PreciseValue) for x in out)
    assert mpmath.nstr(relu_c(0, 40), 30) in repr(out)


def test_a_value_far_below_its_scale_is_not_given_false_digits():
    # C(0.95) of sin(100 x) is exp(-500) ~ 7e-218; at 30 digits the quadrature is good
    # to ~1e-33 absolute: the honest answer is 0 with that bound, not 9.2e-52
    phi = ks.activation("sin(100*x)")
    v = phi.c_map(0.95, digits=30)
    exact = sin_c(100, mpmath.mpf("0.95"), 60)
    assert v.digits == 0 and v == 0
    assert 0 < v.error <= mpmath.mpf(10) ** -30
    with mpmath.workdps(60):
        assert abs(v - exact) <= v.error
    assert "|value| <=" in repr(v)


def test_a_small_value_is_computed_to_relative_digits():
    # C(0.5) of sin(10 x) is ~1.9e-22: extra working digits give all 30 significant ones
    phi = ks.activation("sin(10*x)")
    v = phi.c_map(0.5, digits=30)
    exact = sin_c(10, mpmath.mpf("0.5"), 80)
    assert v.digits == 30
    with mpmath.workdps(80):
        assert abs(v - exact) <= mpmath.mpf(10) ** -30 * exact


def test_an_exact_zero_carries_only_its_bound():
    v = ks.activation("tanh").c_map(0.0, digits=25)     # odd phi: C(0) = 0
    assert v == 0 and v.digits == 0 and 0 < v.error <= mpmath.mpf(10) ** -25


def test_q_map_values_carry_digits(relu):
    v = relu.q_map(3.0, order=1, digits=30)              # Q'(q) = 1/2
    assert v.digits == 30 and v == mpmath.mpf(1) / 2


@pytest.mark.parametrize("method", ["q_map", "c_map"])
def test_more_digits_than_the_limit_are_refused(relu, method):
    with pytest.raises(PrecisionError, match=f"MAX_DIGITS = {MAX_DIGITS}"):
        getattr(relu, method)(0.5, digits=MAX_DIGITS + 1)


def test_the_command_line_prints_no_digit_a_value_does_not_have(capsys):
    from kernelshape.cli import main
    assert main(["maps", "sin(10*x)", "--c", "0.5", "--digits", "20", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["values"][0]
    exact = sin_c(10, mpmath.mpf("0.5"), 60)            # 1.93e-22, to 20 digits
    assert record["c_map"] == mpmath.nstr(exact, 20, strip_zeros=False)
    assert main(["maps", "tanh", "--c", "0", "--digits", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["values"][0]["c_map"] == "0.0"
