"""The paper's CIFAR AlexNet student: 3x3 convs 64/192/384/256/256, fc 4096-2048-2048-K.

Three 2x2 max-pools take 32x32 inputs to 256 x 4 x 4 = 4096 features; dropout 0.5 before the
first and 0.6 before the second hidden layer. 14,859,082 parameters for 10 classes.
"""
import torch.nn as nn

from .base import Classifier, init_weights
from .registry import register


class AlexNet(Classifier):
    input_size = 32  # the flatten after the last pool fixes the input size

    def __init__(self, num_classes):
        super().__init__()

        def conv(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *conv(3, 64), nn.MaxPool2d(2),
            *conv(64, 192), nn.MaxPool2d(2),
            *conv(192, 384), *conv(384, 256), *conv(256, 256), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.5), nn.Linear(256 * 4 * 4, 2048), nn.ReLU(inplace=True),
            nn.Dropout(0.6), nn.Linear(2048, 2048), nn.ReLU(inplace=True))
        self.head = nn.Linear(2048, num_classes)
        self.feature_dim = 2048
        init_weights(self)

    def features(self, x):
        return self.body(x)


register("alexnet")(AlexNet)
