"""Code generation: every emitted module is written, imported and executed.

References: values and derivatives of ``transform.activation.mp`` in mpmath at 30 digits
(the exact function at the exact float inputs), rounded to float64.

Tolerance (values): the issue asks for 1e-13 relative in float64 and 1e-6 in float32. Plain
relative error is unbounded where ``phi_hat`` crosses zero (``g (phi(u) + d)`` cancels) and
where rounding ``u = a x + b`` is amplified, for any float implementation; so the error is
measured relative to the size of what the float computation combines:

    |got - ref| <= rtol * (|ref| + |g| (|phi(u)| + |d| + |phi'(u)| (|a x| + |b|)))

Gradients likewise, with ``|g a| (|phi'(u)| + 1 + (1 + |phi''(u)|) (|a x| + |b|))``: the
``1 + |u|`` part covers autodiff forming derivatives like ``u (1 - tanh(s)**2)``, whose
rounding error is about ``eps |u|``. Within rounding distance of a kink of ``phi`` the
one-sided derivative is undefined in floating point and is not compared.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import subprocess
import sys
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

import kernelshape as ks
import kernelshape.transforms
from kernelshape import codegen
from kernelshape.errors import CodegenError, KernelShapeError
from kernelshape.parsing import X
from kernelshape.pln import pln as pln_reference
from kernelshape.transforms.result import Transform

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

RTOL = {np.float64: 1e-13, np.float32: 1e-6}
DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["float64", "float32"]


# -- transforms ----------------------------------------------------------------------------
NETWORK = "mlp(depth=50)"

#: Cases the solvers reject on NETWORK, with the reason. Checked by
#: test_excluded_cases_are_really_unsolvable, so the list cannot go stale.
UNSOLVABLE = {
    ("identity", "dks"): "linear: every C map is the identity, C'(1) = xi > 1 unreachable",
    ("square", "dks"): "the solver reports C'(1) = xi unreachable for x**2",
    ("identity", "tat"): "linear: C''(1) = 0, tau unreachable",
    ("relu", "tat"): "TAT does not support plain ReLU (THEORY §5)",
    ("selu", "tat"): "kink (phi' jumps): C''(1) infinite",
    ("square", "tat"): "the solver reports Q'(1) = 1 unreachable for x**2",
    ("sigmoid", "tat"): "only solutions with input_scale * output_scale >= 2 (rejected as dks)",
    ("gaussian", "tat"): "only solutions with input_scale * output_scale >= 2 (rejected as dks)",
}

CASES = [(n, m) for m in ("dks", "tat") for n in ks.builtins() if (n, m) not in UNSOLVABLE]


@functools.cache
def solve(name, method):
    """The real solver's transform of ``name`` for :data:`NETWORK` (defaults: zeta = 1.5,
    tau = 0.3, eta = 0.9); leaky ReLU with its negative slope solved."""
    from kernelshape.networks import mlp
    solver = {"dks": ks.transforms.dks, "tat": ks.transforms.tat}[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ks.transforms.ReluWarning)  # DKS on ReLU warns
        return solver(ks.activation(name), network=mlp(depth=50))


# -- emitted modules -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Per (case, target): the path of the written file and the imported module."""
    root = tmp_path_factory.mktemp("emitted")
    out = {}
    for name, method in CASES:
        for target in codegen.TARGETS:
            path = root / f"{method}_{name}_{target}.py"
            codegen.write(solve(name, method), target, path)
            spec = importlib.util.spec_from_file_location(f"ks_emitted_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            out[name, method, target] = (path, module)
    return out


def _grid():
    core = np.linspace(-1e3, 1e3, 101)
    logs = np.logspace(-8, 3, 23)
    return np.concatenate([core, logs, -logs, np.linspace(-3.0, 3.0, 61), [0.0]])


#: Far points: values and gradients must be finite there (no reference comparison).
FAR = np.concatenate([np.linspace(-1e4, 1e4, 41), [-1e4 + 1, 1e4 - 1]])


@functools.cache
def reference(name, method, dtype):
    """x, phi_hat(x), phi_hat'(x) and the two error scales, from mpmath at 30 digits.

    Every case has the same number of points (so JAX reuses its compiled primitives):
    the grid, four probes around the first kink (or around u = 0), and :data:`FAR`.
    """
    t = solve(name, method)
    act, base = t.activation, t.activation.base
    a, b, d, g = (float(v) for v in act.affine_params)
    kink = (base.kinks[0].location - b) / a if base.kinks else -b / a
    x = np.concatenate([_grid(), kink + np.array([-1e-3, -1e-9, 1e-9, 1e-3])])
    x = x.astype(dtype).astype(np.float64)
    cols = []
    with mpmath.workdps(30):
        for xi in x:
            u = a * mpmath.mpf(xi) + b
            p0, p1, p2 = (base.mp(u, k) for k in range(3))
            spread = abs(a * xi) + abs(b)
            cols.append((act.mp(xi), act.mp(xi, 1),
                         abs(g) * (abs(p0) + abs(d) + abs(p1) * spread),
                         abs(g * a) * (abs(p1) + 1 + (1 + abs(p2)) * spread)))
    ref, dref, scale, dscale = (np.array([float(c[k]) for c in cols]) for k in range(4))
    # Where phi' jumps, rounding u = a x + b in `dtype` may land on the other side of the
    # kink: the derivative is then the other one-sided value. Skip those gradient points.
    jumps = [k.location for k in base.kinks if k.order <= 1]
    u = a * x + b
    slack = 8 * np.finfo(dtype).eps * (np.abs(a * x) + abs(b))
    smooth_at = np.all([np.abs(u - k) > slack for k in jumps], axis=0) if jumps else True
    return x, ref, dref, np.abs(ref) + scale, np.where(smooth_at, np.abs(dref) + dscale, np.inf)


def evaluate(target, module, fname, x, dtype):
    """Values and derivatives of the emitted activation at ``x`` in ``dtype``."""
    f = getattr(module, fname)
    if target == "numpy":
        xs = np.asarray(x, dtype=dtype)
        return f(xs), getattr(module, f"{fname}_grad")(xs)
    if target == "torch":
        xt = torch.tensor(np.asarray(x, dtype=dtype), requires_grad=True)
        y = f(xt)
        y.sum().backward()
        return y.detach().numpy(), xt.grad.numpy()
    with jax.enable_x64(dtype == np.float64):
        xj = jnp.asarray(np.asarray(x, dtype=dtype))
        return np.asarray(f(xj)), np.asarray(jax.vmap(jax.grad(f))(xj))


def _worst(err, bound, x):
    ratio = err / np.maximum(bound, np.finfo(float).tiny)
    return f"{ratio.max():.2e} of the tolerance at x = {x[ratio.argmax()]!r}"


CASE_IDS = [f"{m}-{n}" for n, m in CASES]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("target", codegen.TARGETS)
@pytest.mark.parametrize(("name", "method"), CASES, ids=CASE_IDS)
def test_values_and_gradients_match_mpmath_and_stay_finite(written, name, method, target,
                                                           dtype):
    _, module = written[name, method, target]
    x, ref, dref, scale, dscale = reference(name, method, dtype)
    values, grads = evaluate(target, module, f"{method}_{name}", np.concatenate([x, FAR]),
                             dtype)
    assert values.dtype == dtype and grads.dtype == dtype
    # x in [-1e4, 1e4]: finite values and gradients in both precisions.
    assert np.all(np.isfinite(values)), np.concatenate([x, FAR])[~np.isfinite(values)]
    assert np.all(np.isfinite(grads)), np.concatenate([x, FAR])[~np.isfinite(grads)]
    # x in [-1e3, 1e3]: values and sympy derivative within rtol (see the module docstring).
    n, rtol = len(x), RTOL[dtype]
    err = np.abs(values[:n].astype(np.float64) - ref)
    assert np.all(err <= rtol * scale), "values: " + _worst(err, rtol * scale, x)
    derr = np.abs(grads[:n].astype(np.float64) - dref)
    assert np.all(derr <= rtol * dscale), "gradients: " + _worst(derr, rtol * dscale, x)


@pytest.mark.parametrize("target", codegen.TARGETS)
def test_nan_input_propagates(written, target):
    _, module = written["elu", "dks", target]
    values, _ = evaluate(target, module, "dks_elu", np.array([np.nan, 1.0]), np.float64)
    assert np.isnan(values[0]) and np.isfinite(values[1])


# -- framework transformations -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["selu", "gelu"])
def test_jax_jit_grad_vmap(written, name):
    _, module = written[name, "dks", "jax"]
    f = getattr(module, f"dks_{name}")
    x, ref, dref, scale, dscale = reference(name, "dks", np.float32)
    xj = jnp.asarray(x.astype(np.float32))
    np.testing.assert_array_less(np.abs(np.asarray(jax.jit(f)(xj)) - ref), 1e-6 * scale)
    grad = jax.jit(jax.vmap(jax.grad(f)))(xj)
    np.testing.assert_array_less(np.abs(np.asarray(grad) - dref), 1e-6 * dscale)
    batched = jax.vmap(f)(xj.reshape(-1, 1)).reshape(-1)
    np.testing.assert_array_equal(np.asarray(batched), np.asarray(f(xj)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own imports (torch.jit)
def test_torch_compile_fullgraph_module(written):
    _, module = written["softsign", "tat", "torch"]
    layer = module.TatSoftsign()
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    x, ref, dref, scale, dscale = reference("softsign", "tat", np.float64)
    xt = torch.tensor(x, requires_grad=True)
    y = compiled(xt)
    y.sum().backward()
    np.testing.assert_array_less(np.abs(y.detach().numpy() - ref), 1e-13 * scale)
    np.testing.assert_array_less(np.abs(xt.grad.numpy() - dref), 1e-13 * dscale)
    assert isinstance(layer, torch.nn.Module) and not list(layer.parameters())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torch_compile_inductor(written):
    _, module = written["swish", "dks", "torch"]
    compiled = torch.compile(module.dks_swish, fullgraph=True)
    x, ref, _, scale, _ = reference("swish", "dks", np.float32)
    y = compiled(torch.tensor(x.astype(np.float32)))
    np.testing.assert_array_less(np.abs(y.numpy() - ref), 1e-6 * scale)


def test_runtime_callables_equal_the_written_modules(written):
    t = solve("mish", "dks")
    x = np.linspace(-20, 20, 101)
    _, m_np = written["mish", "dks", "numpy"]
    np.testing.assert_array_equal(codegen.as_numpy(t)(x), m_np.dks_mish(x))
    _, m_torch = written["mish", "dks", "torch"]
    layer = codegen.as_torch(t)
    assert isinstance(layer, torch.nn.Module)
    np.testing.assert_array_equal(layer(torch.tensor(x)).numpy(),
                                  m_torch.dks_mish(torch.tensor(x)).numpy())
    _, m_jax = written["mish", "dks", "jax"]
    xj = jnp.asarray(x.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(codegen.as_jax(t)(xj)),
                                  np.asarray(m_jax.dks_mish(xj)))


# -- piecewise forms written by users ----------------------------------------------------------
PIECEWISE = ["Max(0.1*x, x)", "Abs(x)", "x*Heaviside(x)", "Min(Max(x, -1), 1) + x/4",
             "tanh(Max(0, x)) + x/3", "exp(-Abs(x))"]


@pytest.mark.parametrize("target", codegen.TARGETS)
@pytest.mark.parametrize("text", PIECEWISE)
def test_piecewise_activations_finite_gradients_everywhere(text, target):
    base = ks.activation(text)
    t = Transform("dks", base, {"input_scale": 0.7, "input_shift": 0.1,
                                "output_shift": -0.3, "output_scale": 1.7}, {}, "mlp", ())
    module = codegen.load(t, target, name="act")
    # kinks of phi at u = k lie at x = (k - 0.1) / 0.7: probe them exactly and nearby.
    kinks = [(k.location - 0.1) / 0.7 for k in base.kinks]
    x = np.concatenate([np.linspace(-1e4, 1e4, 9), np.linspace(-3, 3, 61), kinks,
                        np.add.outer(kinks, [-1e-7, 1e-7]).ravel()])
    values, grads = evaluate(target, module, "act", x, np.float64)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(grads))
    with mpmath.workdps(30):
        ref = np.array([float(t.activation.mp(v)) for v in x])
    np.testing.assert_allclose(values, ref, rtol=1e-13, atol=1e-13 * 1.7 * 1e4)


# -- text: ruff, stability, header ---------------------------------------------------------------
def test_emitted_files_pass_ruff(written):
    paths = [str(path) for path, _ in written.values()]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *paths],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("target", codegen.TARGETS)
def test_same_input_same_bytes(target):
    t = solve("gelu", "tat")
    first = codegen.emit(t, target)
    assert codegen.emit(t, target) == first
    assert codegen.emit(Transform.from_dict(t.to_dict()), target) == first


@pytest.mark.parametrize("target", codegen.TARGETS)
def test_header_states_the_transform(written, target):
    t = solve("tanh", "dks")
    _, module = written["tanh", "dks", target]
    doc = module.__doc__
    for text in ("Method: dks", f"Network: {NETWORK}", "zeta = 1.5", "phi(x) = tanh(x)",
                 f"kernelshape {ks.__version__}"):
        assert text in doc
    assert t.residuals
    for r in t.residuals:
        assert f"{r.condition}: {float(r.target)!r} -> {float(r.achieved)!r}" in doc
    for key, value in t.params.items():
        assert f"{key} = {float(value)!r}" in doc
        assert module.PARAMS[key] == float(value)


def test_constants_print_as_shortest_round_trip_and_affine_input_on_its_own_line():
    t = Transform("dks", ks.activation("tanh"), {
        "input_scale": 0.1, "input_shift": 1 / 3, "output_shift": -0.2,
        "output_scale": 2 / 3}, {}, "mlp", ())
    src = codegen.emit(t, "numpy")
    assert "    u = 0.1 * x + 0.3333333333333333\n" in src
    assert "return 0.6666666666666666 * (y - 0.2)\n" in src


def test_stable_rewrites_in_the_emitted_text():
    def body(name):
        src = codegen.emit(solve(name, "dks"), "torch")
        return src[src.index("    u = "):src.index("class ")]
    assert "torch.logaddexp(" in body("softplus") and "torch.log(" not in body("softplus")
    assert "torch.sigmoid(" in body("swish") and "torch.exp(" not in body("swish")
    assert "torch.expm1(" in body("elu")
    assert "torch.sigmoid(" in body("gelu") and "torch.tanh(" not in body("gelu")
    assert "torch.erfc(" in body("gelu_exact")


# -- bad input -------------------------------------------------------------------------------
def test_unknown_target_lists_the_valid_ones():
    with pytest.raises(CodegenError, match=r"'fortran'.*\['jax', 'numpy', 'torch'\]"):
        codegen.emit(solve("tanh", "dks"), "fortran")
    with pytest.raises(CodegenError, match="tensorflow is not installed"):
        codegen.emit(solve("tanh", "dks"), "tensorflow")


@pytest.mark.parametrize("bad", ["class", "match", "1x", "a-b", "x): import os  #", "np",
                                 "torch", "jnp", "pln", "suo", "PARAMS", "_private", "print",
                                 "ñame", "", 3])
def test_bad_names_are_refused(bad):
    target = "numpy" if bad not in ("torch",) else "torch"
    with pytest.raises(CodegenError, match="name"):
        codegen.emit(solve("tanh", "dks"), target, name=bad)


def test_docstring_text_cannot_break_out():
    network = 'evil"""\nimport os\nos.system("echo pwned")\n"""\\ \x00 \u2028 end'
    base = ks.activation("tanh")
    t = Transform("tat", base, {"input_scale": 0.5}, {"tau": 0.3}, network, ())
    for target in codegen.TARGETS:
        module = codegen.load(t, target)
        assert network.replace("\x00", "") in module.__doc__.replace("\x00", "")
        assert set(vars(module)) >= {"tat_tanh", "PARAMS"}
        assert "os" not in vars(module)


def test_unmapped_function_is_named():
    t = Transform("dks", ks.activation(sp.besselj(0, X)), {"input_scale": 0.5}, {}, "mlp", ())
    for target in codegen.TARGETS:
        with pytest.raises(CodegenError, match="besselj"):
            codegen.emit(t, target)


@pytest.mark.parametrize(("name", "method"), sorted(UNSOLVABLE))
def test_excluded_cases_are_really_unsolvable(name, method):
    with pytest.raises((ks.TransformError, ks.UnsupportedError)):
        solve.__wrapped__(name, method)


def test_not_a_transform():
    with pytest.raises(CodegenError, match="Transform"):
        codegen.emit(ks.activation("tanh"), "numpy")
    assert issubclass(CodegenError, KernelShapeError) and issubclass(CodegenError, ValueError)


# -- initializers and PLN in each framework ------------------------------------------------------
SHAPES = [(16, 32), (32, 32), (32, 16)]


def _suo(target, module, shape_io, *, delta=True):
    """Sample in the target's layout; return it converted to the "io" layout (float64)."""
    if target == "numpy":
        return module.suo(shape_io, rng=np.random.default_rng(0), delta=delta)
    if target == "jax":
        with jax.enable_x64(True):
            return np.asarray(module.suo(jax.random.key(0), shape_io, jnp.float64, delta=delta))
    shape_oi = (shape_io[-1], shape_io[-2], *shape_io[:-2])
    w = module.suo_(torch.empty(shape_oi, dtype=torch.float64), delta=delta,
                    generator=torch.Generator().manual_seed(0)).numpy()
    return np.moveaxis(w, (0, 1), (-1, -2))


def _check_scaled_orthogonal(m):
    n_in, n_out = m.shape
    if n_in <= n_out:   # orthonormal rows times sqrt(out / in)
        np.testing.assert_allclose(m @ m.T, n_out / n_in * np.eye(n_in), atol=1e-13)
    else:               # orthonormal columns, scale 1
        np.testing.assert_allclose(m.T @ m, np.eye(n_out), atol=1e-13)


@pytest.mark.parametrize("target", codegen.TARGETS)
@pytest.mark.parametrize("fans", SHAPES, ids=["in<out", "in=out", "in>out"])
def test_emitted_suo_dense_and_delta_conv(written, target, fans):
    _, module = written["tanh", "dks", target]
    _check_scaled_orthogonal(_suo(target, module, fans))
    conv = _suo(target, module, (3, 3, *fans))
    _check_scaled_orthogonal(conv[1, 1])
    mask = np.ones((3, 3), bool)
    mask[1, 1] = False
    assert np.all(conv[mask] == 0.0)
    flat = _suo(target, module, (3, 3, *fans), delta=False).reshape(9 * fans[0], fans[1])
    _check_scaled_orthogonal(flat)


def test_emitted_numpy_suo_equals_the_reference():
    from kernelshape.init import suo
    module = codegen.load(solve("tanh", "dks"), "numpy")
    for shape in [(16, 32), (32, 16), (3, 3, 8, 4)]:
        for delta in (True, False):
            np.testing.assert_array_equal(
                module.suo(shape, rng=np.random.default_rng(5), delta=delta),
                suo(shape, rng=np.random.default_rng(5), delta=delta))


@pytest.mark.parametrize("fans", SHAPES, ids=["in<out", "in=out", "in>out"])
@pytest.mark.parametrize("target", ["torch", "jax"])
def test_conv_layout_preserves_q(written, target, fans):
    """A Delta 3x3 conv through the framework's own conv op: q per location preserved
    exactly when in <= out (the layout is right), within sampling error otherwise."""
    _, module = written["tanh", "dks", target]
    n_in, n_out = fans
    x = np.random.default_rng(1).standard_normal((8, 12, 12, n_in))    # NHWC, q = 1
    if target == "torch":
        w = module.suo_(torch.empty(n_out, n_in, 3, 3, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(2))
        xt = torch.tensor(np.moveaxis(x, -1, 1))
        y = np.moveaxis(torch.nn.functional.conv2d(xt, w, padding=1).numpy(), 1, -1)
    else:
        with jax.enable_x64(True):
            w = module.suo(jax.random.key(2), (3, 3, n_in, n_out), jnp.float64)
            y = np.asarray(jax.lax.conv_general_dilated(
                jnp.asarray(x), w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    q_in, q_out = np.mean(x**2, axis=-1), np.mean(y**2, axis=-1)
    if n_in <= n_out:
        np.testing.assert_allclose(q_out, q_in, rtol=1e-12)
    else:
        # y entries are iid N(0, 1) given orthonormal columns: mean q has std sqrt(2 / N).
        assert abs(q_out.mean() - 1.0) < 5 * math.sqrt(2 / y.size)


@pytest.mark.parametrize("mode", [None, "one", "rms"])
@pytest.mark.parametrize("target", codegen.TARGETS)
def test_emitted_pln_matches_reference_and_has_q_one(written, target, mode):
    _, module = written["tanh", "dks", target]
    x = np.random.default_rng(3).standard_normal((4, 5, 6, 7)) * np.linspace(0.1, 9, 7)
    ref = pln_reference(x, homogeneous=mode, homogeneous_scale=0.5)
    if target == "numpy":
        y = module.pln(x, homogeneous=mode, homogeneous_scale=0.5)
    elif target == "torch":
        y = module.pln(torch.tensor(x), homogeneous=mode, homogeneous_scale=0.5).numpy()
    else:
        with jax.enable_x64(True):
            y = np.asarray(module.pln(jnp.asarray(x), homogeneous=mode, homogeneous_scale=0.5))
    np.testing.assert_allclose(y, ref, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(np.mean(y**2, axis=-1), 1.0, rtol=1e-14)


def test_torch_suo_init_module():
    module = codegen.load(solve("tanh", "dks"), "torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 4))
    module.suo_init_(net, generator=torch.Generator().manual_seed(0))
    w = net[0].weight.detach().numpy()
    assert np.all(w[:, :, 0, 0] == 0) and np.all(net[0].bias.detach().numpy() == 0)
    with pytest.raises(ValueError, match="ConvTranspose2d"):
        module.suo_init_(torch.nn.ConvTranspose2d(2, 2, 3))
