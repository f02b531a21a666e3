"""CIFAR VGG-8 / VGG-13 with batch norm, as used in the CRD/RepDistiller KD benchmark."""
import torch.nn as nn

from .base import Classifier, init_weights
from .registry import register

_STAGES = {"vgg8": [[64], [128], [256], [512], [512]],
           "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]}


class VGG(Classifier):
    def __init__(self, stages, num_classes):
        super().__init__()
        layers, cin = [], 3
        for i, stage in enumerate(stages):
            for cout in stage:
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
            # max-pool between stages, global average pool after the last
            layers.append(nn.MaxPool2d(2) if i < len(stages) - 1 else nn.AdaptiveAvgPool2d(1))
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(cin, num_classes)
        self.feature_dim = cin
        init_weights(self)

    def features(self, x):
        return self.body(x)


for _name, _stages in _STAGES.items():
    register(_name)(lambda num_classes, s=_stages: VGG(s, num_classes))
