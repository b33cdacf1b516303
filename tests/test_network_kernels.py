"""Kernels on inputs (NNGP, NTK) against neural-tangents, and the scalar path against them.

Reference values: tests/reference/nt_kernels.json, written by make_nt_kernels.py with
neural-tangents 0.6.5 / jax 0.4.30 in float64 (closed-form kernels for every activation
used). neural-tangents is never imported here.
"""

import json
import pathlib

import numpy as np
import pytest

import kernelshape as ks

REFERENCE = pathlib.Path(__file__).parent / "reference" / "nt_kernels.json"
CASES = json.loads(REFERENCE.read_text())["cases"]

#: neural-tangents' NNGP/NTK agree with ours to this (relative to the largest entry).
RTOL = 1e-12


def _phi(name):
    if name.startswith("leaky:"):
        return ks.activation("leaky_relu", negative_slope=float(name.split(":")[1]))
    return ks.activation({"gelu": "gelu_exact"}.get(name, name))


def build(spec):
    """A kernelshape network from the grammar of tests/reference/nt_cases.py."""
    layers = []
    for item in spec:
        kind, args = item[0], item[1:]
        if kind == "dense":
            layers.append(ks.linear(sigma_w=args[0], sigma_b=args[1]))
        elif kind == "conv":
            size, w, b, padding, stride = args
            layers.append(ks.conv(size, sigma_w=w, sigma_b=b, padding=padding, stride=stride))
        elif kind == "delta":
            layers.append(ks.conv(args[0], sigma_w=args[1], sigma_b=args[2], init="delta"))
        elif kind == "act":
            layers.append(ks.nonlinear(_phi(args[0])))
        elif kind == "avg_pool":
            layers.append(ks.avg_pool(args[0], stride=args[1], padding=args[2]))
        elif kind == "residual":
            layers += [ks.residual(build(args[1]), args[0]), ks.layer_norm()]
        else:
            layers.append(getattr(ks, kind)())
    return ks.chain(*layers)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


#: Cases where neural-tangents' own NTK diagonal carries a rounding error: its ReLU rule
#: takes sqrt(K11 K22 - K12^2) with K11, K22 from a separately computed ``cov1`` that
#: differs from the NNGP's diagonal K12 in the last bit after a convolution, so at c = 1
#: the angle is ~1e-8 instead of 0 and E[phi'(u) phi'(v)] = 1/2 - angle / (2 pi) comes out
#: ~1e-9 low. Ours takes both from one array (c = 1 exactly, the exact 1/2). Measured:
#: relative differences 1.2e-10 to 1.8e-9 on those diagonal entries only, < 1e-15 elsewhere.
NT_DIAGONAL_ROUNDING = {"conv_same_flatten", "conv_delta"}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_kernels_match_neural_tangents(case):
    net = build(case["layers"])
    x = np.array(case["x"])
    k = net.kernel(x, ntk=True)
    nngp, ntk = np.array(case["nngp"]), np.array(case["ntk"])
    assert _rel(k.nngp, nngp) <= RTOL
    off = ~np.eye(len(ntk), dtype=bool)
    scale = np.max(np.abs(ntk))
    assert np.max(np.abs(k.ntk - ntk)[off], initial=0.0) / scale <= RTOL
    diag = (np.diag(k.ntk) - np.diag(ntk)) / scale
    if case["name"] in NT_DIAGONAL_ROUNDING:
        # neural-tangents' rounding only lowers the diagonal (angle >= 0), by < 1e-8
        assert np.all(diag >= -RTOL) and np.all(diag <= 1e-8)
    else:
        assert np.max(np.abs(diag)) <= RTOL
    assert np.array_equal(net.kernel(x).nngp, k.nngp)   # asking for the NTK changes nothing


def test_relu_slope_at_c_one_is_exactly_one_half():
    # the entry behind NT_DIAGONAL_ROUNDING: E[relu'(u)^2] = 1/2 at any second moment
    from kernelshape.networks._dual import expectations
    q = np.array([0.3, 1.7, 12.5])
    value, slope = expectations(ks.activation("relu"), q, q, q, derivative=True)
    assert np.array_equal(slope, np.full(3, 0.5))
    assert np.array_equal(value, q / 2)


def test_the_array_pool_hands_out_only_arrays_nobody_holds():
    # Kernel evaluation recycles its megabyte arrays across layers (fresh ones cost a page
    # fault per 4 KB): an array comes back only when no array, view or state refers to it.
    from kernelshape.networks._kernels import _Pool
    pool = _Pool()
    a = pool.empty((4, 4))
    b = pool.empty((16,))
    assert not np.shares_memory(a, b)
    view = a[1:]
    del a
    c = pool.empty((4, 4))
    assert not np.shares_memory(c, view) and not np.shares_memory(c, b)
    del view
    d = pool.empty((2, 8))
    assert np.shares_memory(d, pool.arrays[0])        # the first array, now free again


def test_results_of_one_call_are_not_touched_by_the_next():
    net = ks.chain(ks.conv(3, sigma_w=1.5, sigma_b=0.1), ks.nonlinear("relu"),
                   ks.conv(3), ks.nonlinear("erf"), ks.global_avg_pool(), ks.linear(sigma_w=2.0))
    rng = np.random.default_rng(0)
    first = net.kernel(rng.standard_normal((3, 5, 5, 2)), ntk=True)
    kept = first.nngp.copy(), first.ntk.copy()
    net.kernel(rng.standard_normal((3, 5, 5, 2)), ntk=True)
    assert np.array_equal(first.nngp, kept[0]) and np.array_equal(first.ntk, kept[1])
