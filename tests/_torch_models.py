"""PyTorch models for the ks.torch tests, written here (never torchvision).

* :class:`KSResNet` — the ``ks.resnet`` family (dks's modified ResNet, V1 and V2) as a
  torch module, with explicit shortcut weights or plain ``x + f(x)`` (``weight=None``);
* :class:`TVResNet` — torchvision-style ResNet (BasicBlock / Bottleneck, stem conv,
  optional BatchNorm and max pooling);
* :func:`vanilla_cnn`, :func:`mlp`, :func:`pool_cnn`, :class:`DenseResNet`.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from kernelshape.networks import RESNET_CONFIGS


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module: on 2 shared cores torch's thread pool only adds
    contention for these small models."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _conv(cin, cout, k=3, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class _KSBlock(nn.Module):
    def __init__(self, cin, cout, stride, bottleneck, projection, weight, act, v2):
        super().__init__()
        mid = cout // 4 if bottleneck else cout
        self.v2, self.weight, self.act = v2, weight, act
        if bottleneck:
            self.convs = nn.ModuleList([_conv(cin, mid, 1), _conv(mid, mid, 3, stride),
                                        _conv(mid, cout, 1)])
        else:
            self.convs = nn.ModuleList([_conv(cin, cout, 3, stride), _conv(cout, cout, 3)])
        self.proj = _conv(cin, cout, 1, stride) if projection else None

    def _sum(self, skip, branch):
        if self.weight is None:
            return skip + branch
        return self.weight * skip + math.sqrt(1.0 - self.weight ** 2) * branch

    def forward(self, x):
        if self.v2:
            out = self.act(x)
            skip = x if self.proj is None else self.proj(out)
            h = out
            for i, conv in enumerate(self.convs):
                h = conv(h if i == 0 else self.act(h))
            return self._sum(skip, h)
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h if i == 0 else self.act(h))
        skip = x if self.proj is None else self.proj(x)
        return self.act(self._sum(skip, h))


class KSResNet(nn.Module):
    """``ks.resnet(depth, weight, version=...)`` as a torch module: a stem conv, the four
    groups of blocks, one more activation, global average pooling and a dense head."""

    def __init__(self, depth, weight=0.0, act=None, *, version="v2", width=4, classes=3):
        super().__init__()
        counts, bottleneck, projection = RESNET_CONFIGS[depth]
        act = nn.Tanh() if act is None else act
        self.act = act
        self.stem = _conv(3, width * (4 if bottleneck else 1))
        cin = width * (4 if bottleneck else 1)
        blocks = []
        for g, n in enumerate(counts):
            cout = width * 2 ** g * (4 if bottleneck else 1)
            for j in range(n):
                first = j == 0
                blocks.append(_KSBlock(cin, cout, 2 if first and g else 1, bottleneck,
                                       first and (projection[g] or cin != cout), weight, act,
                                       version == "v2"))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        h = self.act(self.blocks(self.stem(x)))
        return self.fc(h.mean((2, 3)))


class _TVBasic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, norm):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, planes, 3, stride), norm(planes)
        self.conv2, self.bn2 = _conv(planes, planes), norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(_conv(cin, planes, 1, stride), norm(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class _TVBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, norm):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, planes, 1), norm(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3, stride), norm(planes)
        self.conv3, self.bn3 = _conv(planes, planes * 4, 1), norm(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(_conv(cin, planes * 4, 1, stride), norm(planes * 4))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TVResNet(nn.Module):
    """torchvision-style ResNet; ``norm=False`` puts ``nn.Identity`` where BatchNorm was,
    ``maxpool=False`` average pooling where the stem's max pooling was."""

    def __init__(self, layers=(2, 2, 2, 2), bottleneck=False, *, norm=True, maxpool=True,
                 width=8, classes=10):
        super().__init__()
        block = _TVBottleneck if bottleneck else _TVBasic
        norm_layer = nn.BatchNorm2d if norm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = (nn.MaxPool2d(3, 2, 1) if maxpool else nn.AvgPool2d(3, 2, 1))
        cin, stages = width, []
        for g, n in enumerate(layers):
            planes = width * 2 ** g
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if j == 0 and g else 1, norm_layer))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def vanilla_cnn(depth=50, width=8, act=nn.Tanh, classes=10):
    """``depth`` 3x3 convolutions with an activation after each, one average pooling in
    the middle, global average pooling and a dense head."""
    layers = [_conv(3, width), act()]
    for i in range(depth - 1):
        layers += [_conv(width, width), act()]
        if i == depth // 2:
            layers.append(nn.AvgPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes)]
    return nn.Sequential(*layers)


def mlp(widths, act=nn.Tanh):
    layers = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers)


class DenseResNet(nn.Module):
    """Dense residual blocks, V2 (pre-activation) or V1 (post-activation)."""

    def __init__(self, width, blocks, weight, act=None, *, version="v2"):
        super().__init__()
        self.act = nn.Tanh() if act is None else act
        self.inp = nn.Linear(width, width)
        self.branches = nn.ModuleList(
            nn.ModuleList([nn.Linear(width, width), nn.Linear(width, width)])
            for _ in range(blocks))
        self.weight, self.v2 = weight, version == "v2"

    def forward(self, x):
        h = self.inp(x)
        for first, second in self.branches:
            if self.v2:
                f = second(self.act(first(self.act(h))))
                h = self.weight * h + math.sqrt(1 - self.weight ** 2) * f
            else:
                f = second(self.act(first(h)))
                h = self.act(self.weight * h + math.sqrt(1 - self.weight ** 2) * f)
        return h


def pool_cnn(width=256, act=nn.Tanh):
    """Convolutions (strided, 'same' padded), average pooling, global pooling, dense head."""
    return nn.Sequential(
        _conv(width, width), act(), _conv(width, width, 3, stride=2), act(),
        nn.AvgPool2d(2), _conv(width, width, 1), act(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, width), act())
