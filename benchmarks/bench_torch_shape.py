"""Time ``ks.torch.trace`` and ``ks.torch.shape`` on a ResNet-50-sized PyTorch model.

Run: ``python benchmarks/bench_torch_shape.py [--repeat N] [--size S] [--threads T]``.

The model: a torchvision-style ResNet-50 (Bottleneck blocks 3-4-6-3, base width 64, 25.5M
parameters) with BatchNorm removed and the stem's max pooling replaced by average pooling,
ReLU activations, plain ``out += identity`` skips; written in this file (torchvision is not
a dependency). ``shape`` runs TAT (``eta=0.3``, leaky ReLU) with ``shortcut_weight=0.8``.
The example input is one ``S x S`` image (default 64; only shapes are read from it). Each
call is timed ``--repeat`` times after one warm-up call (numba kernels and sympy caches);
the best and the range are printed, and the phases of one ``shape`` call: reading (deep copy,
``torch.fx`` trace, one forward pass for the shapes, the rule walk), the transform solve,
graph rewriting, SUO / Delta-orthogonal initialization (QR decompositions), and the
report. Timings on a shared machine are noisy: compare ranges, not single figures.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch import nn

import kernelshape as ks
from kernelshape.torch import _api


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Conv2d(cin, planes * 4, 1, stride, bias=False)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out))
        out = self.conv3(out)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AvgPool2d(3, 2, 1)
        cin, stages = 64, []
        for g, n in enumerate((3, 4, 6, 3)):
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(cin, 64 * 2 ** g, 2 if j == 0 and g else 1))
                cin = 64 * 2 ** g * 4
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@contextlib.contextmanager
def phases(totals):
    """Accumulate the time spent in the phases of ``shape`` (wrapping _api's helpers)."""
    names = {"_read": "read", "_solve": "solve", "_rewrite": "rewrite",
             "_initialize": "initialize (QR)"}
    saved = {name: getattr(_api, name) for name in names}

    def timed(fn, label):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[label] = totals.get(label, 0.0) + time.perf_counter() - start
        return run

    for name, label in names.items():
        setattr(_api, name, timed(saved[name], label))
    try:
        yield totals
    finally:
        for name, fn in saved.items():
            setattr(_api, name, fn)


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = ResNet50()
    x = torch.randn(1, 3, args.size, args.size)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"ResNet-50 style model: {n_params / 1e6:.1f}M parameters, input {tuple(x.shape)}, "
          f"torch {torch.__version__}, {args.threads} thread(s)")

    def shape():
        return ks.torch.shape(model, x, method="tat", eta=0.3, shortcut_weight=0.8, seed=0)

    net = ks.torch.trace(model, x, shortcut_weight=0.8)   # warm-up
    _, report = shape()
    print(f"network: {net.n_nonlinear} nonlinear layers on the longest path, "
          f"{len(report.layers)} report rows")
    lo, hi = best_of(lambda: ks.torch.trace(model, x, shortcut_weight=0.8), args.repeat)
    print(f"trace:  best {lo:.2f} s (range {lo:.2f}-{hi:.2f} s over {args.repeat})")
    lo, hi = best_of(shape, args.repeat)
    print(f"shape:  best {lo:.2f} s (range {lo:.2f}-{hi:.2f} s over {args.repeat})")
    with phases({}) as totals:
        start = time.perf_counter()
        shape()
        total = time.perf_counter() - start
    rest = total - sum(totals.values())
    print(f"one shape call, {total:.2f} s: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in totals.items()) + f", report and rest {rest:.2f} s")


if __name__ == "__main__":
    main()
