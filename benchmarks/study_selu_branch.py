"""Which DKS solution of selu the ``dks`` package returns is decided by rounding.

selu has two DKS solutions on most networks: input scale ~0.1 with a negative shift
("small") and input scale ~1 with shift ~1.5 ("large"). Its phi' jumps at 0, so ``dks``'s
fixed 100,000-point Gauss-Legendre rule on [-10, 10] (never split at the kink) puts an
error of about 3e-4 into C'(1) that oscillates with the node spacing; near the large
solution its MINPACK ``hybr`` meets a cloud of roots about 1e-3 apart (or none it can
converge to) and falls through to its next start. This script moves every weight of
``dks``'s rule by one ulp (random signs, one seed per trial) and reports which solution
``dks``'s local solve returns each time, next to kernelshape's two exact roots (the default
starts, and ``start=(0.1, -0.3)``).

The outcome depends on numpy / scipy / BLAS rounding, so it is a study, not a test (it
was one, and failed on a fresh environment with numpy 2.4.6, scipy 1.17.1). The versions
are printed with the results. Seen with python 3.11.7, numpy 2.4.6, scipy 1.17.1, dks 0.1.2
(x86_64, 5 trials each): resnet(50, 0.0): plain rule small, nudged 3 small / 2 large;
resnet(101, 0.6): plain small, nudged 5 small; mlp(50): plain large, nudged 5 large. A
fresh environment with the same numpy and scipy versions gave "large" for the plain rule
on resnet(50, 0.0) (issue 13), so even the plain outcome is not fixed by the versions.

Run: ``python benchmarks/study_selu_branch.py [--trials N]`` (needs the test extra, which
installs ``dks``; each ``dks`` solve takes ~1 s).
"""

from __future__ import annotations

import argparse
import platform
import sys
import warnings
from importlib import metadata


def _versions():
    names = ("numpy", "scipy", "dks", "kernelshape", "mpmath")
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _branch(params):
    """'large' or 'small' by the input shift (selu is not odd about any point, so the
    shift's sign is not folded; the maps are even in input_scale)."""
    return "large" if float(params["input_shift"]) > 0.5 else "small"


def _dks_local(at, name, target, seed=None):
    """dks's local DKS solve; with ``seed``, every weight of its rule moved by one ulp
    (random signs from ``seed``), restored afterwards."""
    import numpy as np
    at._precompute_or_load_roots(at._QUADRATURE_ORDER)
    cache = at._cached_roots_legendre.cache
    nodes, weights = cache[at._QUADRATURE_ORDER]
    if seed is not None:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=np.shape(weights))
        cache[at._QUADRATURE_ORDER] = (nodes, np.asarray(weights) * (1 + signs * 2.0**-52))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = at._solve_for_activation_params(name, 1.0, 0.0, target, None, None)
    finally:
        cache[at._QUADRATURE_ORDER] = (nodes, weights)
    return {k: float(v) for k, v in p.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5,
                        help="nudged rules per network (seeds 1..N; default 5)")
    args = parser.parse_args(argv)

    print("versions:", ", ".join(f"{k} {v}" for k, v in _versions().items()))
    try:
        from dks.base import activation_transform as at
    except ImportError:
        sys.exit("this study needs the dks package: pip install -e '.[test]'")
    import kernelshape as ks

    selu = ks.activation("selu")
    for net in (ks.resnet(50, 0.0), ks.resnet(101, 0.6), ks.mlp(50)):
        large = ks.dks(selu, network=net)
        small = ks.dks(selu, network=net, start=(0.1, -0.3))
        xi = large.targets["xi"]
        print(f"\n{net!r}: xi = {float(xi)!r}")
        for label, t in (("kernelshape default", large), ("kernelshape start=(0.1,-0.3)", small)):
            p = t.params
            print(f"  {label:30s} {_branch(p):5s} input_scale={float(p['input_scale']):.9f} "
                  f"input_shift={float(p['input_shift']):.9f} "
                  f"max residual {float(t.max_residual):.1e}")
        counts = {"small": 0, "large": 0}
        for seed in [None, *range(1, args.trials + 1)]:
            p = _dks_local(at, "selu", float(xi), seed)
            branch = _branch(p)
            if seed is not None:
                counts[branch] += 1
            label = "dks plain rule" if seed is None else f"dks rule nudged, seed {seed}"
            print(f"  {label:30s} {branch:5s} input_scale={p['input_scale']:.9f} "
                  f"input_shift={p['input_shift']:.9f}")
        print(f"  nudged rules: {counts['small']} small, {counts['large']} large "
              f"of {args.trials}")


if __name__ == "__main__":
    main()
