"""The compiled closed-form C maps (kernelshape.maps._closed64) and network loop.

Expected numbers: tests/reference/maps.json (40-digit mpmath references, provenance in the
file; the same claim as test_maps_accuracy: 1e-13 relative or 1e-15 absolute), here through
the array route, which skips the per-call numpy checks; mpmath's asin and exp for the
branch-free helpers; the general (layer-by-layer walk) network maps for the fused loop.
"""

import json
import math
import os
import subprocess
import sys

import mpmath
import numpy as np
import pytest

import kernelshape as ks
from kernelshape.errors import DomainError, KernelShapeError
from kernelshape.maps import _closed64, fast
from kernelshape.networks import _kernels, _walk
from kernelshape.networks._scalar import MapRules

REFERENCE = os.path.join(os.path.dirname(__file__), "reference", "maps.json")
RTOL, ATOL = 1e-13, 1e-15
#: Built-ins whose C map the closed forms must serve (at any input scale, no input shift).
CLOSED = ("erf", "gelu_exact", "relu", "leaky_relu[0.01]", "leaky_relu[0.2]", "sin", "cos",
          "gaussian")


def _activation(entry):
    spec = dict(entry["spec"])
    act = ks.activation(spec.pop("name"), **spec)
    a, b = entry["input_scale"], entry["input_shift"]
    return act.affine(a, b) if (a, b) != (1.0, 0.0) else act


def _entries():
    with open(REFERENCE) as fh:
        entries = json.load(fh)["entries"]
    return [e for e in entries if e["kind"] == "c_map" and e["case"] in CLOSED]


def test_closed_forms_are_recognised():
    for entry in _entries():
        act = _activation(entry)
        found = _closed64.constants(act, float(entry["q"]))
        if entry["input_shift"] == 0.0 or entry["case"] in ("sin", "cos"):
            assert found is not None, entry["case"]
        else:   # erf(a x + b) and the others with b != 0 have no closed form here
            assert found is None, entry["case"]
    for name in ("tanh", "elu", "swish", "x**3", "exp(x)"):
        assert _closed64.constants(ks.activation(name), 1.0) is None, name


@pytest.mark.parametrize("case", CLOSED)
def test_array_route_matches_references(case):
    checked = 0
    for entry in (e for e in _entries() if e["case"] == case):
        act = _activation(entry)
        if _closed64.constants(act, float(entry["q"])) is None:
            continue
        c = np.array([entry["c"], entry["c"]])
        for order, text in enumerate(entry["values"]):
            value = float(act.c_map(c, q=entry["q"], order=order)[1])
            if text in ("inf", "-inf"):
                assert math.isinf(value) and (value > 0) == (text == "inf"), value
                continue
            ref = float(text)
            assert abs(value - ref) <= max(RTOL * abs(ref), ATOL), (entry, order, value, ref)
            checked += 1
    assert checked >= 3 * 27


def test_value_at_one_is_exactly_one():
    for name in ("erf", "gelu_exact", "relu", "abs(x)", "sin", "cos", "exp(-x**2)"):
        out = ks.activation(name).c_map(np.array([1.0, 1.0 + 4e-16]), q=1.7)
        assert out.tolist() == [1.0, 1.0], name


def test_branch_free_helpers_within_a_few_ulp():
    mod = _closed64.kernels()
    xs = np.concatenate([np.linspace(-1.0, 1.0, 401), [0.5, -0.5, 0.5000001, 1e-9]])
    with mpmath.workdps(30):
        for x in xs:
            want = float(mpmath.asin(x))
            assert abs(mod._asin(x) - want) <= 4e-16 * abs(want) + 1e-300, x
            want = float(mpmath.acos(-x))
            assert abs(mod._acos_minus(x) - want) <= 4e-16 * abs(want) + 1e-300, x
        for y in np.linspace(-300.0, 300.0, 401):
            want = float(mpmath.exp(y))
            assert abs(mod._exp(y) - want) <= 4e-16 * want, y


@pytest.mark.parametrize("bad, message", [
    (np.array([0.2, np.nan]), "finite"),
    (np.array([0.2, 1.0 + 1e-12]), r"correlation in \[-1, 1\]"),
    (np.array([-1.5, 0.0]), r"correlation in \[-1, 1\]"),
])
def test_bad_c_still_raises(bad, message):
    for name in ("erf", "relu", "exp(-x**2)"):
        with pytest.raises(DomainError, match=message):
            ks.activation(name).c_map(bad)


@pytest.mark.parametrize("kwargs, message", [
    ({"q": 0.0}, "q must be > 0"), ({"q": -1.0}, "q must be > 0"),
    ({"q": math.nan}, "q must be finite"), ({"order": 3}, "order must be 0, 1 or 2"),
    ({"order": True}, "order must be 0, 1 or 2"), ({"order": -1}, "order must be 0, 1 or 2"),
])
def test_bad_arguments_still_raise(kwargs, message):
    phi = ks.activation("erf")
    with pytest.raises(KernelShapeError, match=message):
        phi.c_map(np.linspace(-1, 1, 5), **kwargs)


def test_shapes_layouts_and_types():
    phi = ks.activation("gelu_exact")
    grid = np.linspace(-1.0, 1.0, 12)
    flat = phi.c_map(grid, order=1)
    assert phi.c_map(grid.reshape(3, 4), order=1).shape == (3, 4)
    assert np.array_equal(phi.c_map(grid.reshape(3, 4), order=1).ravel(), flat)
    assert np.array_equal(phi.c_map(grid[::2], order=1), flat[::2])   # strided
    assert np.array_equal(phi.c_map(grid, q=1, order=1), flat)          # int q
    assert isinstance(phi.c_map(0.3, order=1), float)


def test_long_maps_are_chunked_and_consistent():
    # the general route in chunks gives what it gives per value (tanh: Hermite series)
    phi = ks.activation("tanh")
    c = np.linspace(-1.0, 1.0, fast._CHUNK * 2 + 17)
    out = phi.c_map(c)
    idx = [0, 5, fast._CHUNK - 1, fast._CHUNK, 2 * fast._CHUNK + 3, c.size - 1]
    assert np.allclose(out[idx], [phi.c_map(float(c[i])) for i in idx], rtol=1e-14,
                       atol=1e-16)


def _walked(net, phi, c, order):
    dc = np.ones_like(c) if order else None
    d2c = np.zeros_like(c) if order else None
    return _walk._evaluate((net,), (1.0, None, None, c, dc, d2c), MapRules(phi, order))[0][
        3 + order]


@pytest.mark.parametrize("name", ["erf", "relu", "gelu_exact", "sin", "exp(-x**2)"])
def test_network_loop_matches_the_walk(name):
    phi = ks.activation(name)
    net = ks.chain(*[ks.linear(sigma_w=1.5, sigma_b=0.3), ks.nonlinear(), ks.avg_pool(1)]
                   * 6, ks.linear(sigma_w=1.2), ks.layer_norm(), ks.nonlinear())
    c = np.linspace(-0.999, 0.999, 41)
    for order in range(3):
        fused = net.c_map(phi, c, order=order)
        walked = _walked(net, phi, c, order)
        assert np.allclose(fused, walked, rtol=1e-12, atol=1e-14), (order, fused - walked)


def test_deep_erf_network_matches_the_walk():
    phi = ks.activation("erf")
    net = ks.chain(*[ks.linear(sigma_w=2.0, sigma_b=0.5), ks.nonlinear()] * 50)
    c = np.linspace(-1.0, 1.0, 101)
    for order in range(3):
        fused, walked = net.c_map(phi, c, order=order), _walked(net, phi, c, order)
        assert np.allclose(fused, walked, rtol=1e-11, atol=1e-14), order
    with pytest.raises(DomainError):
        net.c_map(phi, np.array([0.1, 1.5]))


def test_module_cached_on_disk_and_loaded_from_it(tmp_path):
    # a fresh process with the same cache directory loads the machine code (cache hits)
    env = dict(os.environ, KERNELSHAPE_CACHE_DIR=str(tmp_path / "cache"))
    code = ("import numpy as np, kernelshape as ks; from kernelshape.maps import _closed64;"
            "ks.activation('erf').c_map(np.linspace(-1, 1, 100));"
            "m = _closed64.kernels();"
            "print(sum(sum(f.stats.cache_hits.values()) for f in vars(m).values()"
            " if hasattr(f, 'stats')))")
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True) for _ in range(2)]
    assert int(runs[0].stdout.split()[-1]) == 0
    assert int(runs[1].stdout.split()[-1]) > 0
    key, text = _closed64._module_text()
    assert (tmp_path / "cache" / f"{key}.py").read_text() == text


@pytest.mark.parametrize("name, conv", [("relu", True), ("erf", False), ("abs(x)", True),
                                        ("erf", True), ("2*erf(0.5*x) + 0.1", True)])
def test_kernels_on_inputs_match_the_general_route(name, conv, monkeypatch):
    # the compiled window sums and element-wise passes against the numpy route (closed
    # forms switched off): same NNGP and NTK to rounding
    x = np.random.default_rng(1).standard_normal((3, 5, 4, 2) if conv else (4, 6))
    if conv:
        layers = [ks.conv((3, 2), sigma_w=1.3, sigma_b=0.2), ks.nonlinear(name),
                  ks.conv(3, sigma_w=1.1, padding="valid", init="delta"), ks.nonlinear(name),
                  ks.global_avg_pool(), ks.linear()]
    else:
        layers = [ks.linear(sigma_w=1.4, sigma_b=0.1), ks.nonlinear(name)] * 3 + [ks.linear()]
    net = ks.chain(*layers)
    fused = net.kernel(x, ntk=True)
    monkeypatch.setattr(_closed64, "constants", lambda act, q: None)
    monkeypatch.setattr(_kernels, "COMPILED", False)
    plain = ks.chain(*layers).kernel(x, ntk=True)
    assert np.allclose(fused.nngp, plain.nngp, rtol=1e-13, atol=1e-15)
    assert np.allclose(fused.ntk, plain.ntk, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("shape", [(3, 6, 5, 2), (4, 7, 3)], ids=["2d", "1d"])
def test_upper_triangle_states_are_completed_for_every_rule(shape, monkeypatch):
    # the compiled convs and element-wise passes leave only the upper triangle of the
    # (input, position) matrix; branches, layer norm, pooling, a strided conv, a
    # non-closed-form activation and flatten each need the whole matrix
    x = np.random.default_rng(2).standard_normal(shape)
    block = ks.chain(ks.conv(3, sigma_w=1.2, sigma_b=0.1), ks.nonlinear("relu"))
    layers = [ks.conv(3, sigma_w=1.4, sigma_b=0.3), ks.nonlinear("relu"),
              ks.residual(block, 0.6), ks.conv(3, sigma_w=1.1), ks.layer_norm(),
              ks.nonlinear("erf"),
              ks.avg_pool(2, stride=1), ks.conv(3, padding="valid", init="delta"),
              ks.nonlinear("abs(x)"), ks.conv(2, stride=2, sigma_w=1.1),
              ks.nonlinear("x*tanh(x)"), ks.conv(3, sigma_w=1.3), ks.nonlinear("relu"),
              ks.flatten(), ks.linear(sigma_w=2.0)]
    fused = ks.chain(*layers).kernel(x, ntk=True)
    # a network ending in a compiled pass is completed at the end
    last = ks.chain(ks.linear(sigma_w=1.4, sigma_b=0.1), ks.nonlinear("relu")).kernel(
        x.reshape(len(x), -1), ntk=True)
    for k in (fused.nngp, fused.ntk, last.nngp, last.ntk):
        assert np.array_equal(k, k.T)
    monkeypatch.setattr(_closed64, "constants", lambda act, q: None)
    monkeypatch.setattr(_kernels, "COMPILED", False)
    plain = ks.chain(*layers).kernel(x, ntk=True)
    assert np.allclose(fused.nngp, plain.nngp, rtol=1e-13, atol=1e-15)
    assert np.allclose(fused.ntk, plain.ntk, rtol=1e-13, atol=1e-15)


def test_small_calls_need_no_numba():
    # a few values are served by the module's source run by Python: numba never starts
    code = ("import sys, numpy as np, kernelshape as ks;"
            "ks.activation('erf').c_map(0.3, order=2);"
            "ks.activation('relu').c_map(np.array([0.1, -1.0]), order=1);"
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split()[-1] == "False"


def test_python_source_agrees_with_compiled_loops():
    xs = np.linspace(-1.0, 1.0, 41)
    for kind, row in _closed64._SAMPLES.items():
        p = np.zeros(_closed64.WIDTH)
        p[:len(row)] = row
        for order in range(3):
            name = f"loop_{kind}_{order}"
            fast_out, slow_out = np.empty_like(xs), np.empty_like(xs)
            assert _closed64.compiled(name)(p, xs, fast_out) == 0
            assert _closed64.pure(name)(p, xs, slow_out) == 0
            assert np.allclose(fast_out, slow_out, rtol=1e-14, atol=1e-15), (kind, order)


def _gelu_kt(c, big):
    """Kt(c; P) of the GELU kind in mpmath (the closed form of E[U erf(kU) V erf(kV)])."""
    c, big = mpmath.mpf(c), mpmath.mpf(big)
    d = mpmath.sqrt((1 + big * (1 - c)) * (1 + big * (1 + c)))
    return (big * c * mpmath.asin(big * c / (1 + big))
            + big ** 2 * (1 + big + c ** 2 * (1 - big)) / ((1 + big) * d)) / (2 * mpmath.pi)


@pytest.mark.parametrize("k", [0.01, 1.0, 300.0, 1e4, 1e6])
def test_steep_erf_kinds_keep_every_digit(k):
    # asin of an argument within 1/(2 k^2) of 1: from the rounded argument it loses
    # eps / sqrt(1 - r) (2.8e-11 relative at k = 1e6 before); the complement is now
    # computed without cancellation. References: the closed forms in mpmath, 50 digits.
    with mpmath.workdps(50):
        big = 2 * mpmath.mpf(k) ** 2
        kinds = {f"x*erf({k:g}*x)": lambda t: _gelu_kt(t, big),
                 f"erf({k:g}*x)": lambda t: mpmath.asin(big * t / (1 + big))}
        for text, kernel in kinds.items():
            phi = ks.activation(text)
            norm = kernel(1)
            for c in (-1.0, -0.99, 0.5, 0.9999, 1.0):
                for order in (0, 1, 2):
                    ref = mpmath.diff(kernel, c, order) / norm
                    got = float(phi.c_map(np.array([c]), order=order)[0])
                    assert abs(got - ref) <= 1e-13 * abs(ref), (text, c, order, got)
