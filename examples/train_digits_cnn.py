"""A deep vanilla CNN on scikit-learn's digits: default init, EOC, DKS and TAT.

The same network for every method: ``depth`` 3x3 convolutions of ``channels`` channels
(zero padding, stride 1), each followed by an activation, then global average pooling and
a dense head; no batch norm, no skip connections. scikit-learn's bundled digits (1797 images
of 8x8 pixels, 10 classes; no download) scaled so that every image has mean square 1 (the
input ``q0 = 1`` DKS assumes). Methods (same optimizer, learning rate, batch and steps):

- ``ReLU, default init``: what a PyTorch user gets (``nn.Conv2d``'s own initialization);
- ``EOC tanh``: tanh on the edge of chaos (``sigma_b^2 = 0.05``; ``ks.eoc`` gives
  ``sigma_w``), Delta-orthogonal weights times ``sigma_w``, Gaussian biases (Xiao et al. 2018);
- ``DKS tanh`` (``zeta = 1.5``), ``TAT tanh`` (``tau = 0.3``), ``TAT leaky ReLU``
  (``eta = 0.9``): the tanh (or leaky ReLU) model shaped in one call by
  ``ks.torch.shape(model, x, method=..., ...)`` when available; otherwise (``--route
  manual``) by solving ``ks.dks`` / ``ks.tat`` on the network's kernelshape description,
  loading the transformed activation from :mod:`kernelshape.codegen` and initializing with
  :func:`kernelshape.delta_orthogonal` (the first convolution, with a single input channel,
  as an orthogonal map of its 3x3 window) and zero biases.

Writes ``<outdir>/training_digits_cnn.png`` (training loss and test accuracy against steps,
mean and range over seeds) and ``<outdir>/training_digits_cnn.json`` (every curve, settings,
summary, versions). Run ``python examples/train_digits_cnn.py`` (a few minutes on two
cores) or ``--seeds 0 --steps 50`` for a quick look.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Every method, in plotting order.
METHODS = ("ReLU, default init", "EOC tanh", "DKS tanh", "TAT tanh", "TAT leaky ReLU")
#: What a plain run trains (TAT leaky ReLU on request, with --methods).
DEFAULT_METHODS = ("ReLU, default init", "EOC tanh", "DKS tanh", "TAT tanh")
COLORS = {"ReLU, default init": "#999999", "EOC tanh": "#56B4E9", "DKS tanh": "#D55E00",
          "TAT tanh": "#009E73", "TAT leaky ReLU": "#000000"}
#: Targets of the shaped methods: (method for ks.dks/ks.tat, activation, targets).
SHAPED = {"DKS tanh": ("dks", "tanh", {"zeta": 1.5}),
          "TAT tanh": ("tat", "tanh", {"tau": 0.3}),
          "TAT leaky ReLU": ("tat", "leaky_relu", {"eta": 0.9})}
EOC_SIGMA_B = math.sqrt(0.05)


def digits(*, n_test: int = 500, seed: int = 0):
    """``(x_train, y_train, x_test, y_test)``: images ``(n, 1, 8, 8)`` float32 with mean
    square 1 each, labels int64; a fixed random split (``seed``)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.images.astype(np.float64)
    x = x / np.sqrt(np.mean(x ** 2, axis=(1, 2), keepdims=True))
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order, None].astype(np.float32), data.target[order].astype(np.int64)
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def vanilla_cnn(activation, *, depth: int = 50, channels: int = 16, classes: int = 10):
    """``depth`` x (3x3 conv, activation), global average pool, dense head; no norm, no skips.

    ``activation`` is a module factory ``() -> nn.Module``.
    """
    import torch
    from torch import nn

    class VanillaCNN(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for i in range(depth):
                layers += [nn.Conv2d(1 if i == 0 else channels, channels, 3, padding=1),
                           activation()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(channels, classes)

        def forward(self, x):
            return self.head(torch.mean(self.body(x), dim=(2, 3)))

    return VanillaCNN()


def description(depth: int):
    """The kernelshape description of :func:`vanilla_cnn` (channels last, as ks.conv)."""
    import kernelshape as ks

    layers = [ks.conv(3, init="gaussian")]
    for i in range(depth):
        layers.append(ks.nonlinear())
        if i < depth - 1:
            layers.append(ks.conv(3, init="delta"))
    return ks.chain(*layers, ks.global_avg_pool(), ks.linear())


def _activation_module(name: str):
    from torch import nn
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}[name]


def _orthogonal_init(model, *, seed: int, sigma_w: float = 1.0, sigma_b: float = 0.0):
    """Delta-orthogonal convolutions (the first one orthogonal over its window: one input
    channel), SUO head, biases zero or ``N(0, sigma_b^2)``."""
    import torch

    import kernelshape as ks

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    for i, layer in enumerate(m for m in model.modules()
                              if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))):
        shape = tuple(layer.weight.shape)
        if isinstance(layer, torch.nn.Conv2d) and i > 0:
            w = ks.delta_orthogonal(shape, rng=rng, scale=sigma_w, layout="oi")
        else:
            w = ks.suo(shape, rng=rng, scale=sigma_w, delta=False, layout="oi")
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(w, dtype=layer.weight.dtype))
            if sigma_b and isinstance(layer, torch.nn.Conv2d):
                layer.bias.normal_(0.0, sigma_b, generator=gen)
            else:
                layer.bias.zero_()


def build(method: str, *, depth: int, channels: int, seed: int, example, route: str = "auto"):
    """The model of ``method``, initialized from ``seed``; ``(model, note)``.

    ``route``: ``"auto"`` shapes with ``ks.torch.shape`` when it exists, ``"torch"``
    requires it, ``"manual"`` solves and initializes by hand (see the module docstring).
    """
    import torch

    import kernelshape as ks

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    torch.manual_seed(seed)           # nn.Conv2d's default init draws from the global RNG
    if method == "ReLU, default init":
        return vanilla_cnn(torch.nn.ReLU, depth=depth, channels=channels), \
            "nn.Conv2d / nn.Linear default init"
    if method == "EOC tanh":
        e = ks.eoc(ks.activation("tanh"), sigma_b=EOC_SIGMA_B)
        model = vanilla_cnn(torch.nn.Tanh, depth=depth, channels=channels)
        _orthogonal_init(model, seed=seed, sigma_w=float(e.sigma_w), sigma_b=EOC_SIGMA_B)
        return model, f"sigma_w={float(e.sigma_w):.4g}, sigma_b={EOC_SIGMA_B:.4g}"
    kind, act, targets = SHAPED[method]
    model = vanilla_cnn(_activation_module(act), depth=depth, channels=channels)
    shape = getattr(ks.torch, "shape", None)
    if route == "torch" or (route == "auto" and shape is not None):
        shaped, report = shape(model, example, method=kind, seed=seed, **targets)
        params = "; ".join(f"{name}: " + ", ".join(f"{k}={float(v):.4g}"
                                                   for k, v in t.params.items())
                           for name, t in report.transforms.items())
        return shaped, f"ks.torch.shape(method={kind!r}): {params}"
    from kernelshape.codegen import as_torch

    phi = ks.activation(act)
    t = getattr(ks, kind)(phi, network=description(depth), **targets)
    model = vanilla_cnn(lambda: as_torch(t), depth=depth, channels=channels)
    _orthogonal_init(model, seed=seed)
    return model, "manual: " + ", ".join(f"{k}={float(v):.4g}" for k, v in t.params.items())


def train(model, data, *, steps: int = 200, batch: int = 64, lr: float = 2e-3,
          momentum: float = 0.9, seed: int = 0, eval_every: int = 10,
          eval_size: int = 500) -> dict:
    """SGD with momentum; every ``eval_every`` steps the training loss (on the first
    ``eval_size`` training images, a fixed subset) and the test accuracy."""
    import torch

    x_tr, y_tr, x_te, y_te = (torch.as_tensor(a) for a in data)
    x_ev, y_ev = x_tr[:eval_size], y_tr[:eval_size]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = torch.nn.CrossEntropyLoss()
    history = {"step": [], "train_loss": [], "test_accuracy": [], "diverged_at": None}
    start = time.perf_counter()
    order, pos = torch.randperm(len(x_tr), generator=gen), 0
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                history["step"].append(step)
                history["train_loss"].append(float(loss_fn(model(x_ev), y_ev)))
                history["test_accuracy"].append(
                    float((model(x_te).argmax(dim=1) == y_te).float().mean()))
        if step == steps:
            break
        if pos + batch > len(order):
            order, pos = torch.randperm(len(x_tr), generator=gen), 0
        idx = order[pos:pos + batch]
        pos += batch
        loss = loss_fn(model(x_tr[idx]), y_tr[idx])
        if not torch.isfinite(loss):
            history["diverged_at"] = step
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    history["seconds"] = time.perf_counter() - start
    history["final_train_loss"] = history["train_loss"][-1]
    history["final_test_accuracy"] = history["test_accuracy"][-1]
    return history


def run(*, methods: Sequence[str] = DEFAULT_METHODS, seeds: Sequence[int] = (0, 1, 2),
        depth: int = 50, channels: int = 16, steps: int = 200, batch: int = 64,
        lr: float = 2e-3, momentum: float = 0.9, eval_every: int = 20, route: str = "auto",
        threads: int = 1, log=print) -> dict:
    """Train every method with every seed: ``{"results": {method: [history per seed]},
    "notes": {method: how it was built}}``."""
    import torch

    torch.set_num_threads(threads)
    data = digits()
    example = torch.as_tensor(data[0][:8])
    results: dict[str, list[dict]] = {m: [] for m in methods}
    notes: dict[str, str] = {}
    for seed in seeds:
        for m in methods:
            model, notes[m] = build(m, depth=depth, channels=channels, seed=seed,
                                    example=example, route=route)
            h = train(model, data, steps=steps, batch=batch, lr=lr, momentum=momentum,
                      seed=seed, eval_every=eval_every)
            h["seed"] = seed
            results[m].append(h)
            if log:
                log(f"seed {seed}  {m:>20}: train loss {h['final_train_loss']:.4g}, test "
                    f"accuracy {h['final_test_accuracy']:.3f} ({h['seconds']:.0f} s)")
    return {"results": results, "notes": notes}


def summarize(results: dict) -> dict:
    """Mean, standard deviation (ddof 1) and range over seeds of the final numbers."""
    out = {}
    for m, runs in results.items():
        acc = np.array([r["final_test_accuracy"] for r in runs])
        loss = np.array([r["final_train_loss"] for r in runs])
        out[m] = {"test_accuracy_mean": float(acc.mean()),
                  "test_accuracy_std": float(acc.std(ddof=1)) if acc.size > 1 else 0.0,
                  "test_accuracy_min": float(acc.min()), "test_accuracy_max": float(acc.max()),
                  "train_loss_mean": float(loss.mean()),
                  "train_loss_std": float(loss.std(ddof=1)) if loss.size > 1 else 0.0,
                  "diverged": sum(r["diverged_at"] is not None for r in runs),
                  "seeds": len(runs)}
    return out


def plot(results: dict, settings: dict):
    """Training loss and test accuracy against steps: mean over seeds, band = range."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for m, runs in results.items():
        steps = runs[0]["step"]
        for ax, key in ((ax_loss, "train_loss"), (ax_acc, "test_accuracy")):
            curves = np.full((len(runs), len(steps)), np.nan)
            for i, r in enumerate(runs):
                curves[i, :len(r[key])] = r[key]
            ax.plot(steps, np.nanmean(curves, axis=0), color=COLORS[m], label=m)
            ax.fill_between(steps, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0),
                            color=COLORS[m], alpha=0.2, lw=0)
    ax_loss.axhline(math.log(10), color="k", ls=":", lw=1)
    ax_loss.text(0, math.log(10) * 1.04, "chance (log 10)", fontsize=8, va="bottom")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss (cross-entropy)")
    ax_acc.axhline(0.1, color="k", ls=":", lw=1)
    ax_acc.set_ylim(0, 1)
    ax_acc.set_ylabel("test accuracy")
    ax_acc.legend(fontsize=8, loc="upper left")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("SGD step")
    n = len(next(iter(results.values())))
    fig.suptitle(f"Digits (8x8): vanilla CNN, {settings['depth']} conv 3x3 layers x "
                 f"{settings['channels']} channels, no norm, no skips; SGD lr "
                 f"{settings['lr']:g}, momentum {settings['momentum']:g}, batch "
                 f"{settings['batch']}; mean over {n} seeds, band = range", fontsize=8)
    return fig


def _versions() -> dict:
    import sklearn
    import torch

    import kernelshape
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "sklearn": sklearn.__version__,
            "kernelshape": kernelshape.__version__}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--depth", type=int, default=50, help="conv layers (and activations)")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="SGD learning rate")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--route", choices=("auto", "torch", "manual"), default="auto",
                        help="how DKS/TAT models are built (see the module docstring)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        choices=METHODS, metavar="METHOD")
    parser.add_argument("--outdir", type=Path, default=Path("kernelshape-training"))
    args = parser.parse_args(argv)
    if args.depth < 1 or args.steps < 1:
        parser.error("--depth and --steps must be positive")
    start = time.perf_counter()
    out = run(methods=args.methods, seeds=args.seeds, depth=args.depth,
              channels=args.channels, steps=args.steps, batch=args.batch, lr=args.lr,
              momentum=args.momentum, eval_every=args.eval_every, route=args.route,
              threads=args.threads)
    summary = summarize(out["results"])
    print(f"\n{'method':>20}  {'test accuracy (mean +- std)':>28}  {'train loss':>18}")
    for m, s in summary.items():
        print(f"{m:>20}  {s['test_accuracy_mean']:20.3f} +- {s['test_accuracy_std']:.3f}  "
              f"{s['train_loss_mean']:9.3f} +- {s['train_loss_std']:.3f}")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    fig = plot(out["results"], settings)
    args.outdir.mkdir(parents=True, exist_ok=True)
    png = args.outdir / "training_digits_cnn.png"
    fig.savefig(png, dpi=100)
    document = {"settings": settings, "versions": _versions(), "notes": out["notes"],
                "seconds": time.perf_counter() - start, "summary": summary,
                "results": out["results"]}
    (args.outdir / "training_digits_cnn.json").write_text(json.dumps(document, indent=1))
    print(f"wrote {png}")
    return document


if __name__ == "__main__":
    main()
