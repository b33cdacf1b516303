"""Regenerate neural-tangents' NNGP and NTK for the cases of nt_cases.py (nt_kernels.json).

Runs in its own environment, never in the test suite (neural-tangents is not a dependency):

    python -m venv /work/ntvenv
    /work/ntvenv/bin/pip install neural-tangents==0.6.5 jax==0.4.30 jaxlib==0.4.30 tf2jax==0.3.6
    /work/ntvenv/bin/python tests/reference/make_nt_kernels.py

Inputs are drawn here (numpy ``default_rng(seed).standard_normal(shape)``) and stored with
the kernels, so the test reads the very same numbers. Everything runs in float64
(``jax_enable_x64``); every activation used has a closed-form kernel in neural-tangents.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from nt_cases import CASES


def _activation(stax, name):
    if name == "relu":
        return stax.Relu()
    if name == "erf":
        return stax.Erf()
    if name == "gelu":
        return stax.Gelu(approximate=False)
    if name == "sin":
        return stax.Sin()
    if name.startswith("leaky:"):
        return stax.LeakyRelu(float(name.split(":")[1]))
    raise ValueError(name)


def _layers(stax, spec, ndim):
    out = []
    for item in spec:
        kind, args = item[0], item[1:]
        if kind == "dense":
            out.append(stax.Dense(1, W_std=args[0], b_std=args[1]))
        elif kind == "conv":
            size, w, b, padding, stride = args
            out.append(stax.Conv(1, (size,) * ndim, strides=(stride,) * ndim,
                                 padding=padding.upper(), W_std=w, b_std=b))
        elif kind == "delta":
            _, w, b = args   # centre tap only, 'same', stride 1: a 1x1 convolution
            out.append(stax.Conv(1, (1,) * ndim, padding="SAME", W_std=w, b_std=b))
        elif kind == "act":
            out.append(_activation(stax, args[0]))
        elif kind == "avg_pool":
            window, stride, padding = args
            out.append(stax.AvgPool((window,) * ndim, strides=(stride,) * ndim,
                                    padding=padding.upper()))
        elif kind == "global_avg_pool":
            out.append(stax.GlobalAvgPool())
        elif kind == "flatten":
            out.append(stax.Flatten())
        elif kind == "layer_norm":
            out.append(stax.LayerNorm(eps=0.0))
        elif kind == "residual":
            # neural-tangents sums Gaussian branches without weights: scale the branch's
            # last dense/conv layer by v / w (NNGP and NTK of the branch both scale by
            # (v / w)^2) and let the layer norm after the sum cancel the common 1 / w^2.
            w, branch = args
            v = math.sqrt(1.0 - w * w)
            last = list(branch[-1])
            assert last[0] in ("dense", "conv"), "a residual branch ends with dense or conv"
            last[1 if last[0] == "dense" else 2] *= v / w
            out.append(stax.serial(
                stax.FanOut(2),
                stax.parallel(stax.Identity(),
                              stax.serial(*_layers(stax, branch[:-1] + [last], ndim))),
                stax.FanInSum(), stax.LayerNorm(eps=0.0)))
        else:
            raise ValueError(kind)
    return out


def main():
    from jax import config
    config.update("jax_enable_x64", True)
    import jax
    import neural_tangents as nt
    from neural_tangents import stax

    cases = []
    for name, shape, seed, spec in CASES:
        x = np.random.default_rng(seed).standard_normal(shape)
        _, _, kernel_fn = stax.serial(*_layers(stax, spec, len(shape) - 2))
        k = kernel_fn(x, None, ("nngp", "ntk"))
        cases.append({"name": name, "shape": list(shape), "seed": seed, "layers": spec,
                      "x": x.tolist(), "nngp": np.asarray(k.nngp).tolist(),
                      "ntk": np.asarray(k.ntk).tolist()})
        print(name, "done", flush=True)
    doc = {"provenance": {"generator": "tests/reference/make_nt_kernels.py",
                          "neural_tangents": nt.__version__, "jax": jax.__version__,
                          "numpy": np.__version__, "python": platform.python_version(),
                          "float": "float64 (jax_enable_x64)"},
           "cases": cases}
    with open(os.path.join(HERE, "nt_kernels.json"), "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
