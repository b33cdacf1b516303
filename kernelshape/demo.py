"""The main job (``kernelshape demo``): real DKS and TAT solves on built-in defaults.

For a deep vanilla network (an MLP of 50 nonlinear layers, no skip connections, no
normalization) it solves DKS for tanh and TAT for softplus and leaky ReLU with the ``dks``
package's default targets, prints the parameters and the residual of every condition, writes
standalone NumPy / JAX / PyTorch code for each transform, the transforms as JSON, and a plot
of how the network's C map degenerates with depth with and without the transforms.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["run"]

DEPTH = 50


def run(outdir: Path, *, depth: int = DEPTH, verbose: bool = True,
        report: Callable[[object], None] | None = None) -> dict[str, Path]:
    """Run the demo into ``outdir``; returns the written files by label.

    Args:
        outdir: directory for the outputs (created if missing).
        depth: depth of the MLP the transforms are solved for.
        verbose: print progress and each transform.
        report: prints one solved Transform (the command line passes its table printer);
            None prints the Transform's repr. Taken as an argument so that this module
            never imports the command line (which imports it).
    """
    from . import activation, codegen
    from .networks import mlp
    from .transforms import dks, tat

    say = print if verbose else (lambda *a, **k: None)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    net = mlp(depth)
    jobs = [
        ("dks_tanh", lambda: dks(activation("tanh"), network=net, zeta=1.5)),
        ("tat_softplus", lambda: tat(activation("softplus"), network=net, tau=0.3)),
        ("tat_leaky_relu", lambda: tat(activation("leaky_relu"), network=net, eta=0.9)),
    ]
    written: dict[str, Path] = {}
    transforms = {}
    for label, solve in jobs:
        start = time.perf_counter()
        t = solve()
        elapsed = time.perf_counter() - start
        transforms[label] = t
        say("")
        if verbose:
            (report or print)(t)
        say(f"solved in {elapsed * 1e3:.1f} ms")
        for target in ("numpy", "jax", "torch"):
            path = outdir / f"{label}_{target}.py"
            codegen.write(t, target, path, name=label)
            written[f"{label}_{target}"] = path
        say(f"wrote {label}_{{numpy,jax,torch}}.py")
    json_path = outdir / "transforms.json"
    json_path.write_text(json.dumps({k: t.to_dict() for k, t in transforms.items()}, indent=2))
    written["json"] = json_path

    import matplotlib
    matplotlib.use("Agg")
    from . import plot
    for name in ("tanh", "softplus"):
        fig = plot.degeneration(activation(name), network=net)
        path = outdir / f"degeneration_{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        written[f"degeneration_{name}"] = path
        say(f"wrote {path}")
    say(f"\nall outputs in {outdir.resolve()}")
    return written
