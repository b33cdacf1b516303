"""Fresh-process timings: ``import kernelshape``, the first C map of a new expression (numba
cache on disk and not), and the floor set by the dependencies' own imports.

Every figure is a separate ``python -c`` process (the median of ``--repeat`` runs, range
printed), timed from inside the process, so interpreter start-up is left out:

* ``import kernelshape`` alone;
* the floor: ``import numpy, sympy, mpmath`` (what any first use of an expression needs:
  parsing and analysis are sympy) and ``import numba`` on top (what a float64 C map needs);
* numba's own first call in a process (a trivial cached function): its floor;
* the first use of an expression new to the process: ``ks.activation(text).c_map(0.5)``
  split into imports (numpy, sympy, mpmath and kernelshape's maps; not numba, which this
  path never loads), ``activation()`` (parsing and the sympy analysis) and ``c_map``
  (numpy branches printed from sympy; no numba), then the first float evaluation
  ``phi(0.3)`` (the numba kernels: loaded from disk or compiled), with the numba cache on
  disk (a temporary ``KERNELSHAPE_CACHE_DIR`` filled by one earlier process) and without
  (an empty one);
* the first DKS solve of the expression (no numba: the solvers use numpy branches).

Both wall and CPU (``time.process_time``) seconds are printed; on a shared machine the CPU
figure is the steadier one.

Run: ``python benchmarks/bench_startup.py [--repeat N]``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLOCK = ("import time\n"
         "def _now():\n"
         "    return time.perf_counter(), time.process_time()\n"
         "def _since(t):\n"
         "    w, c = _now()\n"
         "    return [w - t[0], c - t[1]]\n"
         "out = {}\n")

IMPORT = CLOCK + ("t = _now()\nimport kernelshape\nout['import kernelshape'] = _since(t)\n"
                  "import sys\n"
                  "out['modules'] = [m for m in ('numpy', 'sympy', 'numba') if m in sys.modules]\n")

FLOOR = CLOCK + ("t = _now()\nimport numpy, sympy, mpmath\n"
                 "out['import numpy+sympy+mpmath'] = _since(t)\n"
                 "t = _now()\nimport numba\nout['+ import numba'] = _since(t)\n")

# numba's own first call in a process, of a trivial function already cached on disk: the
# dispatcher loads its typing registries (numba.np.arraymath, which imports scipy.linalg to
# find BLAS) whatever the function does
NUMBA_MODULE = "from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1.0\n"
NUMBA_FIRST = CLOCK + ("import sys\nsys.path.insert(0, DIR)\n"
                       "t = _now()\nimport numba, trivial\nout['import numba'] = _since(t)\n"
                       "t = _now()\ntrivial.f(1.0)\n"
                       "out['first call of a cached njit function'] = _since(t)\n")

FIRST = CLOCK + ("t0 = t = _now()\nimport kernelshape as ks\n"
                 "import numpy, sympy, mpmath\n"
                 "import kernelshape.activations, kernelshape.maps\n"
                 "out['imports'] = _since(t)\n"
                 "t = _now()\nphi = ks.activation(EXPR)\nout['activation()'] = _since(t)\n"
                 "t = _now()\nphi.c_map(0.5)\nout['first c_map'] = _since(t)\n"
                 "out['total to first c_map'] = _since(t0)\n"
                 "t = _now()\nphi(0.3)\nout['then first phi(x), numba'] = _since(t)\n"
                 "t = _now()\nks.dks(phi, network=ks.resnet(101, 0.6))\n"
                 "out['then first dks solve'] = _since(t)\n")


def _run(code, env=None, expr=None, directory=None):
    if expr is not None:
        code = f"EXPR = {expr!r}\n" + code
    if directory is not None:
        code = f"DIR = {directory!r}\n" + code
    code += "import json\nprint(json.dumps(out))\n"
    full_env = {**os.environ, **(env or {}),
                "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True,
                          capture_output=True, text=True, env=full_env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report(title, runs):
    print(title)
    for key in runs[0]:
        if key == "modules":
            print(f"    heavy modules loaded by the import: {runs[0][key] or 'none'}")
            continue
        walls = [r[key][0] for r in runs]
        cpus = [r[key][1] for r in runs]
        print(f"    {key:28s} wall {statistics.median(walls):7.3f} s "
              f"({min(walls):.3f}-{max(walls):.3f})   cpu {statistics.median(cpus):7.3f} s")


def main(repeat=3):
    _report("import kernelshape (fresh process)", [_run(IMPORT) for _ in range(repeat)])
    _report("floor: the dependencies' own imports", [_run(FLOOR) for _ in range(repeat)])
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "trivial.py"), "w") as f:
            f.write(NUMBA_MODULE)
        _run(NUMBA_FIRST, directory=tmp)   # fills numba's cache
        _report("floor: numba, a trivial function cached on disk",
                [_run(NUMBA_FIRST, directory=tmp) for _ in range(repeat)])
    for expr in ("x*tanh(x) + 0.1*x", "x*tanh(log(1 + exp(x)))", "gelu"):
        with tempfile.TemporaryDirectory() as tmp:
            cold = []
            for i in range(repeat):
                cache = os.path.join(tmp, f"cold{i}")
                os.mkdir(cache, 0o700)
                cold.append(_run(FIRST, {"KERNELSHAPE_CACHE_DIR": cache}, expr))
            warm_dir = os.path.join(tmp, "warm")
            os.mkdir(warm_dir, 0o700)
            _run(FIRST, {"KERNELSHAPE_CACHE_DIR": warm_dir}, expr)   # fills the cache
            warm = [_run(FIRST, {"KERNELSHAPE_CACHE_DIR": warm_dir}, expr)
                    for _ in range(repeat)]
        _report(f"first use of {expr!r}, numba cache on disk (goal < 0.2 s)", warm)
        _report(f"first use of {expr!r}, empty numba cache (goal < 2 s)", cold)


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3
    main(n)
