"""The shared shape of every model: a feature extractor followed by a linear head."""
from __future__ import annotations

import torch
import torch.nn as nn


class Classifier(nn.Module):
    """``features(x)`` gives the penultimate representation, ``forward(x)`` the logits."""

    head: nn.Module
    init_rule: str = ""  # how the weights are initialised, after which source (docs/fidelity.md)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.head(f), f


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions, unit/zero batch norm (He et al. 2015; the zoo's usual init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
