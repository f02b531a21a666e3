"""The paper's CIFAR AlexNet student, as the authors' code had it when the students were trained.

conv 3->64 3x3 pad 2, ReLU, max-pool 2; conv 64->192 3x3 pad 2, ReLU, max-pool 2; convs
192->384->256->256 3x3 pad 1 with ReLUs; max-pool 3 stride 2; flatten 256x4x4 = 4096; dropout 0.6,
fc 4096->2048, ReLU, dropout 0.6, fc 2048->2048, ReLU, fc 2048->K. Feature maps 32 -> 34 -> 17
-> 19 -> 9 -> 9 -> 4; 227.7M multiply-adds and 14,859,082 parameters for 10 classes.
Init: PyTorch's default layer initialisation, as the authors' code (docs/fidelity.md).
"""
import torch.nn as nn

from .base import Classifier
from .registry import register


class AlexNet(Classifier):
    input_size = 32  # the flatten after the last pool fixes the input size
    init_rule = "PyTorch default layer init (the authors' code)"

    def __init__(self, num_classes):
        super().__init__()

        def conv(cin, cout, pad):
            return [nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *conv(3, 64, 2), nn.MaxPool2d(2),
            *conv(64, 192, 2), nn.MaxPool2d(2),
            *conv(192, 384, 1), *conv(384, 256, 1), *conv(256, 256, 1), nn.MaxPool2d(3, stride=2),
            nn.Flatten(),
            nn.Dropout(0.6), nn.Linear(256 * 4 * 4, 2048), nn.ReLU(inplace=True),
            nn.Dropout(0.6), nn.Linear(2048, 2048), nn.ReLU(inplace=True))
        self.head = nn.Linear(2048, num_classes)
        self.feature_dim = 2048

    def features(self, x):
        return self.body(x)


register("alexnet")(AlexNet)
