"""Wide ResNets (Zagoruyko & Komodakis 2016): pre-activation blocks, depth 6n+4, widen factor k."""
import torch
import torch.nn as nn

from .base import Classifier, init_weights
from .registry import register


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride, dropout):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride != 1) else None

    def forward(self, x):
        o = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv2(self.drop(torch.relu(self.bn2(self.conv1(o)))))
        return o + skip


class WideResNet(Classifier):
    def __init__(self, depth, widen, num_classes, dropout=0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers, cin = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)], widths[0]
        for i, w in enumerate(widths[1:]):
            for j in range(n):
                layers.append(PreActBlock(cin, w, 2 if (i > 0 and j == 0) else 1, dropout))
                cin = w
        self.body = nn.Sequential(*layers, nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_classes)
        self.feature_dim = cin
        init_weights(self)
        nn.init.zeros_(self.head.bias)  # RepDistiller's WRN init: convs and BN as init_weights, head bias 0

    def features(self, x):
        return self.body(x)


for _d, _k in ((16, 2), (40, 2), (16, 1), (40, 1), (28, 10)):
    register(f"wrn_{_d}_{_k}")(lambda num_classes, d=_d, k=_k: WideResNet(d, k, num_classes))
