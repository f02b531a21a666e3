"""CIFAR VGG-8 / VGG-13 with batch norm, as in the CRD/RepDistiller KD benchmark (its vgg8_bn and
vgg13_bn).

Five stages of 3x3 conv (+bias) + BN + ReLU; a 2x2 max-pool after each of the first three
stages, and after the fourth only for 64-pixel inputs (RepDistiller's rule: at 32 px the last two
stages both run at 4x4); then global average pooling and a linear head on 512 features.
96.2M / 284.9M multiply-adds for vgg8 / vgg13 on 32x32 inputs.
Init (RepDistiller's): convs N(0, sqrt(2 / (k^2 out_channels))) with zero bias, BN 1/0, the
linear head N(0, 0.01) with zero bias.
"""
import math

import torch.nn as nn

from .base import Classifier
from .registry import register

_STAGES = {"vgg8": [[64], [128], [256], [512], [512]],
           "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]}


class VGG(Classifier):
    init_rule = "RepDistiller's VGG init: convs N(0, sqrt(2/(k^2 C_out))), BN 1/0, head N(0, 0.01)"

    def __init__(self, stages, num_classes):
        super().__init__()
        blocks, cin = [], 3
        for stage in stages:
            layers = []
            for cout in stage:
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
            blocks.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(cin, num_classes)
        self.feature_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def features(self, x):
        h = x.shape[2]
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < 3 or (i == 3 and h == 64):
                x = self.pool(x)
        return x.mean((2, 3))


for _name, _stages in _STAGES.items():
    register(_name)(lambda num_classes, s=_stages: VGG(s, num_classes))
