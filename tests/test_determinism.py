"""Same inputs, same bits (issue 3 "Deterministic", issue 7): across repeated calls in one
process and across fresh processes (different hash seeds, different numba thread counts).

Values are compared as ``float.hex`` strings, so "equal" means bit-for-bit. The workload is
small: maps of a smooth, a kinked and a transformed activation on a grid of c (including
+-1) and q, and DKS / TAT / leaky-ReLU TAT solves on an mlp and a resnet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import kernelshape as ks

_WORKLOAD = r'''
import json
import numpy as np
import kernelshape as ks
from kernelshape.networks import mlp, resnet
from kernelshape.transforms.dks import dks
from kernelshape.transforms.tat import tat


def hexes(values):
    return [float(v).hex() for v in np.ravel(values)]


def workload():
    out = {}
    cs = np.array([-1.0, -1.0 + 1e-12, -0.7, 0.0, 0.3, 0.99, 1.0 - 1e-12, 1.0])
    for name in ("tanh", "relu", "softplus"):
        phi = ks.activation(name)          # a fresh object: no per-object caches carried over
        for order in (0, 1, 2):
            out[f"{name} C{order}"] = hexes(phi.c_map(cs, q=1.7, order=order))
            out[f"{name} Q{order}"] = hexes(phi.q_map(np.array([1e-3, 0.5, 1.0, 9.0]),
                                                      order=order))
    t = dks("tanh", network=resnet(50, 0.6), zeta=1.5)
    out["dks tanh resnet50"] = hexes(list(t.params.values()))
    out["dks tanh residuals"] = hexes([r.achieved for r in t.residuals])
    out["transformed C"] = hexes(t.activation.c_map(cs))
    out["network C"] = hexes([resnet(50, 0.6).c_map(t.activation, 0.2)])
    t = tat("softplus", network=mlp(20), tau=0.3)
    out["tat softplus mlp20"] = hexes(list(t.params.values()))
    t = tat("leaky_relu", network=mlp(50), eta=0.9)
    out["tat leaky mlp50"] = hexes(list(t.params.values()))
    return out
'''

_namespace: dict = {}
exec(compile(_WORKLOAD, "<determinism workload>", "exec"), _namespace)  # noqa: S102 - our text
workload = _namespace["workload"]


def test_repeated_calls_give_the_same_bits():
    first, second = workload(), workload()
    assert first == second


def test_array_and_scalar_calls_agree_bitwise():
    phi = ks.activation("tanh")
    cs = np.array([-1.0, -0.25, 0.0, 0.5, 1.0])
    vector = phi.c_map(cs, order=1)
    scalars = [phi.c_map(float(c), order=1) for c in cs]
    assert [float(v).hex() for v in vector] == [float(v).hex() for v in scalars]


def test_fresh_processes_give_the_same_bits():
    script = _WORKLOAD + "\nprint(json.dumps(workload()))\n"
    runs = []
    for seed, threads in (("1", "1"), ("12345", "2")):
        env = dict(os.environ, PYTHONHASHSEED=seed, NUMBA_NUM_THREADS=threads)
        runs.append(subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    for proc in runs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    here = workload()
    assert results[0] == results[1]
    assert results[0] == here


@pytest.mark.parametrize("text", ["erf(2*x)", "x*erf(x)", "relu", "abs(x)", "sin(x)",
                                  "exp(-x**2)", "0.5*x*(1 + erf(x/sqrt(2)))"])
def test_closed_form_loops_give_the_same_bits_compiled_and_in_python(text):
    # Calls on a few values run the closed-form source in Python (numba need not start);
    # larger ones run it compiled. Both must give the same bits, or a result would depend
    # on what ran earlier in the process (fused multiply-adds broke this once).
    from kernelshape.maps import _closed64
    phi = ks.activation(text)
    kind, row, _ = _closed64.constants(phi, 1.7)
    cs = np.concatenate([np.linspace(-1.0, 1.0, 401), [-1 + 1e-12, 1 - 1e-12, 1e-300]])
    for order in (0, 1, 2):
        name = f"loop_{kind}_{order}"
        compiled, python = np.empty_like(cs), np.empty_like(cs)
        _closed64.compiled(name)(row, cs, compiled)
        _closed64.pure(name)(row, cs, python)
        assert [v.hex() for v in compiled] == [v.hex() for v in python], (text, order)
