"""ResNets: the paper's CIFAR ResNet-18, the CIFAR KD zoo (resnet8..110, x4) and ImageNet-style.

One class covers all of them; they differ in stem, stage widths, depths and block type.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import Classifier, init_weights
from .registry import register


def _conv_bn(cin, cout, k, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(_conv_bn(cin, width, 3, stride), nn.ReLU(inplace=True), _conv_bn(width, cout, 3, 1))
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            _conv_bn(cin, width, 1, 1), nn.ReLU(inplace=True),
            _conv_bn(width, width, 3, stride), nn.ReLU(inplace=True),  # stride on the 3x3 ("v1.5")
            _conv_bn(width, cout, 1, 1))
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(Classifier):
    def __init__(self, block, depths, widths, num_classes, *, stem_width, imagenet_stem=False, default_init=False):
        super().__init__()
        if imagenet_stem:
            self.stem = nn.Sequential(_conv_bn(3, stem_width, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(_conv_bn(3, stem_width, 3, 1), nn.ReLU(inplace=True))
        stages, cin = [], stem_width
        for i, (depth, width) in enumerate(zip(depths, widths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_classes)
        self.feature_dim = cin
        if not default_init:
            init_weights(self)
        self.init_rule = "PyTorch default layer init (the authors' code)" if default_init else init_weights.__doc__.strip()

    def features(self, x):
        return self.pool(self.stages(self.stem(x)))


# The paper's teacher: 3x3 stem, 64 channels, no max-pool, [2, 2, 2, 2] BasicBlocks, PyTorch's
# default layer init (the authors' code had no init of its own; docs/fidelity.md).
@register("resnet18")
def resnet18(num_classes):
    return ResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], num_classes, stem_width=64, default_init=True)


def _kd_resnet(depth, widths, num_classes):
    # The CIFAR KD zoo (He et al. 2016 sec. 4.2 with 1x1-conv projection shortcuts, as in the
    # CRD/RepDistiller benchmark): depth = 6n + 2, three stages.
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n, n, n], widths[1:], num_classes, stem_width=widths[0])


for _depth in (8, 14, 20, 32, 44, 56, 110):
    register(f"resnet{_depth}")(lambda num_classes, d=_depth: _kd_resnet(d, [16, 16, 32, 64], num_classes))
for _depth in (8, 32):
    register(f"resnet{_depth}x4")(lambda num_classes, d=_depth: _kd_resnet(d, [32, 64, 128, 256], num_classes))


@register("resnet18_imagenet")
def resnet18_imagenet(num_classes):
    return ResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], num_classes, stem_width=64, imagenet_stem=True)


@register("resnet34_imagenet")
def resnet34_imagenet(num_classes):
    return ResNet(BasicBlock, [3, 4, 6, 3], [64, 128, 256, 512], num_classes, stem_width=64, imagenet_stem=True)


@register("resnet50_imagenet")
def resnet50_imagenet(num_classes):
    return ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], num_classes, stem_width=64, imagenet_stem=True)
