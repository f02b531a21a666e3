"""The paper's LeNet student: conv 3->6 5x5, pool, conv 6->16 5x5, pool, fc 400-120-84-10."""
import torch.nn as nn

from .base import Classifier
from .registry import register


class LeNet(Classifier):
    input_size = 32  # the flatten after the last pool fixes the input size
    init_rule = "PyTorch default layer init (the authors' code)"

    def __init__(self, num_classes):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True))
        self.head = nn.Linear(84, num_classes)
        self.feature_dim = 84

    def features(self, x):
        return self.body(x)


register("lenet")(LeNet)
