"""ks.jax.trace: jaxprs read as networks (issue 16 point 4).

Every expected activation is the JAX function itself: the traced sympy expression is
evaluated in float64 (``sympy.lambdify`` with scipy) against the function in float64
(``jax.enable_x64``) at 41 points in [-5, 5], to 1e-12. Structures are compared with
networks written by hand in the kernelshape vocabulary (``==`` on layers, ``repr``).
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
nn = pytest.importorskip("flax.linen")

import itertools

import sympy as sp

import kernelshape as ks
from kernelshape.jax._elementwise import X

KEY = jax.random.key(0)


def _dense_params(*sizes, seed=0):
    rng = np.random.default_rng(seed)
    return {f"w{i}": jnp.asarray(rng.standard_normal((a, b)) / np.sqrt(a))
            for i, (a, b) in enumerate(itertools.pairwise(sizes))}


def _nonlinear_layers(net):
    return [layer for layer in net.layers if getattr(layer, "kind", "") == "nonlinear"]


ACTIVATIONS = {
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.2),
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "gelu_tanh": jax.nn.gelu,
    "gelu_erf": lambda x: jax.nn.gelu(x, approximate=False),
    "silu": jax.nn.silu,
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
    "where": lambda x: jnp.where(x > 0, x, 0.1 * x),
    "maximum": lambda x: jnp.maximum(x, 0.0) - 0.5,
    "log1p_exp": lambda x: jnp.log1p(jnp.exp(x)),
    "erf_scaled": lambda x: 2.0 * jax.scipy.special.erf(x / 1.5),
    "clip": lambda x: jnp.clip(x, -1.0, 1.0),
    "square_poly": lambda x: x + 0.1 * x**2 - x**3 / 10,
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_chain_is_the_function(name):
    act = ACTIVATIONS[name]
    with jax.enable_x64(True):
        params = _dense_params(3, 5, 2)
        net = ks.jax.trace(lambda p, x: act(x @ p["w0"]) @ p["w1"], params, jnp.ones((4, 3)))
        (layer,) = _nonlinear_layers(net)
        grid = np.linspace(-5.0, 5.0, 41)
        traced = sp.lambdify(X, layer.phi.expr, ["scipy", "numpy"])(grid)
        expected = np.asarray(act(jnp.asarray(grid)))
    np.testing.assert_allclose(np.broadcast_to(traced, grid.shape), expected, rtol=1e-12,
                               atol=1e-12)
    assert [type(x).__name__ for x in net.layers]
    assert repr(net).startswith("chain(linear, nonlinear(phi=") and repr(net).endswith(
        "linear)")


def test_leaky_relu_keeps_its_slope():
    net = ks.jax.trace(lambda p, x: jax.nn.leaky_relu(x @ p["w0"], 0.25) @ p["w1"],
                       _dense_params(3, 5, 2), jnp.ones((4, 3)))
    phi = _nonlinear_layers(net)[0].phi
    assert [k.location for k in phi.kinks] == [0.0]
    assert float(phi.expr.subs(X, -2)) == -0.5 and float(phi.expr.subs(X, 3)) == 3.0


def test_flax_layers_read_in_order():
    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(8, (3, 3))(x)
            x = nn.tanh(x)
            x = nn.avg_pool(x, (2, 2), strides=(2, 2))
            x = nn.Conv(8, (3, 3), padding="VALID", strides=(1, 1))(x)
            x = nn.LayerNorm()(x)
            x = nn.gelu(x)
            x = jnp.mean(x, axis=(1, 2))
            x = nn.Dense(8)(x)
            x = nn.softplus(x)
            return nn.Dense(3)(x.reshape(x.shape[0], -1))

    x = jnp.ones((2, 8, 8, 3))
    model = CNN()
    # abstract params suffice to read a model (no XLA compile of model.init)
    variables = jax.eval_shape(model.init, KEY, x)
    net = ks.jax.trace(model.apply, variables, x)
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["conv", "nonlinear", "avg_pool", "conv", "layer_norm", "nonlinear",
                     "global_avg_pool", "linear", "nonlinear", "linear"]
    assert net.layers[0] == ks.conv((3, 3), stride=(1, 1), init="delta")
    assert net.layers[2] == ks.avg_pool((2, 2), stride=(2, 2))
    assert net.layers[3] == ks.conv((3, 3), padding="valid", stride=(1, 1), init="delta")
    assert ks.jax.trace(model.apply, variables, x, conv_init="gaussian"
                        ).layers[0] == ks.conv((3, 3), stride=(1, 1))


def test_flatten_and_concatenate():
    def fn(p, x):
        h = jnp.tanh(x.reshape(x.shape[0], -1) @ p["w0"])            # flatten, dense
        a = jnp.tanh(h @ p["wa"])
        b = h @ p["wb"]
        return jnp.concatenate([a, b], axis=-1) @ p["w2"]             # 6 + 2 channels

    rng = np.random.default_rng(0)
    params = {k: jnp.asarray(rng.standard_normal(s)) for k, s in
              {"w0": (12, 4), "wa": (4, 6), "wb": (4, 2), "w2": (8, 3)}.items()}
    net = ks.jax.trace(fn, params, jnp.ones((2, 2, 2, 3)))
    tanh = ks.nonlinear(net.layers[2].branches[0].layers[0].phi)
    # the shared tanh(h) is moved into both branches (as ks.resnet's projection branch)
    expected = ks.chain(ks.flatten(), ks.linear(),
                        ks.parallel([ks.chain(tanh, ks.linear(), tanh),
                                     ks.chain(tanh, ks.linear())], [0.75, 0.25]),
                        ks.linear())
    assert repr(net) == repr(expected)
    assert net.max_slope(1.3) == pytest.approx(expected.max_slope(1.3), abs=1e-14)


def test_normalized_sum_and_constant_scalings():
    def fn(p, x):
        h = x @ p["w0"]
        return 0.6 * h + 0.8 * jnp.tanh(jnp.tanh(h) @ p["w1"])

    net = ks.jax.trace(fn, _dense_params(3, 4, 4), jnp.ones((2, 3)))
    tanh = ks.nonlinear(_nonlinear_layers(net.layers[1].branches[1])[0].phi)
    expected = ks.chain(ks.linear(), ks.residual(ks.chain(tanh, ks.linear(), tanh), 0.6))
    assert net.max_slope(1.2) == pytest.approx(expected.max_slope(1.2), rel=1e-6)
    assert net.c_map(None, 0.3) == pytest.approx(expected.c_map(None, 0.3), rel=1e-6)


def test_shortcut_weight_normalizes_a_plain_residual_sum():
    def fn(p, x):
        h = x @ p["w0"]
        return h + jnp.tanh(h) @ p["w1"]

    params = _dense_params(3, 4, 4)
    net = ks.jax.trace(fn, params, jnp.ones((2, 3)), shortcut_weight=0.8)
    assert net.layers[1].squares == pytest.approx((0.64, 0.36), abs=1e-15)


def _problems(fn, params, x, **kw):
    with pytest.raises(ks.ModelError) as info:
        ks.jax.trace(fn, params, x, **kw)
    return info.value


def _batch_norm(p, x):
    h = x @ p["w0"]
    mean = jnp.mean(h, axis=0)
    return (h - mean) * jax.lax.rsqrt(jnp.mean((h - mean) ** 2, axis=0) + 1e-5)


IMAGES = jnp.ones((2, 4, 4, 3))
REFUSALS = {
    "batch_norm": (_batch_norm, None, "batch axis"),
    "max_pool": (lambda p, x: nn.max_pool(x, (2, 2)), IMAGES, "max pooling"),
    "gating": (lambda p, x: (x @ p["w0"]) * jax.nn.sigmoid(x @ p["w1"]), None, "gating"),
    "unnormalized": (lambda p, x: x @ p["w0"] + jnp.tanh(x @ p["w1"]), None,
                     "unnormalized sum"),
    "while": (lambda p, x: jax.lax.while_loop(lambda h: jnp.all(h < 1.0), lambda h: 2 * h,
                                              x @ p["w0"]), None, "control flow"),
    "unknown": (lambda p, x: jnp.sort(x @ p["w0"], axis=-1), None, "'sort' is not supported"),
    "scale_param": (lambda p, x: (x @ p["w0"]) * p["s"], None, "parameter ['s']"),
    "shared_weight": (lambda p, x: jnp.tanh(x @ p["w0"]) @ p["w0"], None, "weight sharing"),
    "odd_padding": (lambda p, x: jax.lax.conv_general_dilated(
        x, p["k"], (1, 1), ((2, 0), (0, 2)), dimension_numbers=("NHWC", "HWIO", "NHWC")),
        IMAGES, "neither 'SAME' nor 'VALID'"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusals_name_the_reason_and_the_source_line(name):
    fn, x, reason = REFUSALS[name]
    params = {**_dense_params(3, 3, 3), "s": jnp.ones(3), "k": jnp.ones((3, 3, 3, 4))}
    err = _problems(fn, params, jnp.ones((2, 3)) if x is None else x)
    assert any(reason in text for _, text in err.problems), err.problems
    assert reason in str(err)
    assert any("test_jax_trace.py" in where for where, _ in err.problems), err.problems


def test_every_problem_is_reported_together():
    def fn(p, x):
        a = nn.max_pool(x, (2, 2), padding="SAME")                     # max pooling
        g = (x @ p["w0"]) * jax.nn.sigmoid(x @ p["w1"])                # gating
        s = jnp.sort(x @ p["w2"], axis=-1)                             # unknown primitive
        return a + g + s + x.sum(axis=0)                               # batch statistics

    err = _problems(fn, _dense_params(3, 3, 3, 3), IMAGES)
    reasons = " | ".join(text for _, text in err.problems)
    for part in ("max pooling", "gating", "'sort'", "batch axis"):
        assert part in reasons
    assert len(err.problems) >= 4


def test_python_branch_on_data_is_refused():
    def fn(p, x):
        return jnp.tanh(x @ p["w0"]) if float(x.sum()) > 0 else x @ p["w0"]

    err = _problems(fn, _dense_params(3, 3), jnp.ones((2, 3)))
    assert "branches on data" in str(err)


def test_layer_norm_without_centering_is_refused():
    def rms_norm(p, x):
        h = x @ p["w0"]
        return h * jax.lax.rsqrt(jnp.mean(h * h, axis=-1, keepdims=True) + 1e-6) @ p["w1"]

    err = _problems(rms_norm, _dense_params(3, 4, 2), jnp.ones((2, 3)))
    assert "not a layer norm" in str(err)


@jax.custom_vjp
def _custom_tanh(x):
    return jnp.tanh(x)


_custom_tanh.defvjp(lambda x: (jnp.tanh(x), x),
                    lambda x, g: (g * (1 - jnp.tanh(x) ** 2),))


def test_custom_vjp_body_and_eval_dropout_are_read():
    net = ks.jax.trace(lambda p, x: _custom_tanh(x @ p["w0"]) @ p["w1"],
                       _dense_params(3, 4, 2), jnp.ones((2, 3)))
    assert repr(net) == "chain(linear, nonlinear(phi='tanh(x)'), linear)"
    model = nn.Sequential([nn.Dense(4), nn.Dropout(0.5, deterministic=True), nn.relu,
                           nn.Dense(3)])
    x = jnp.ones((2, 3))
    net = ks.jax.trace(model.apply, jax.eval_shape(model.init, KEY, x), x)
    assert repr(net) == "chain(linear, nonlinear(phi='Max(0, x)'), linear)"


def test_batch_norm_with_running_statistics_is_refused():
    model = nn.Sequential([nn.Dense(4), nn.BatchNorm(use_running_average=True), nn.relu])
    x = jnp.ones((2, 3))
    err = _problems(model.apply, jax.eval_shape(model.init, KEY, x), x)
    (where, reason), = err.problems
    assert where.startswith("Sequential/layers_1") and "['batch_stats']" in reason
