"""The light ResNet18 of MNTDP (docs/spec.md §7), the baselines' body (kind
``light_resnet18``, spec ``{"kind": "light_resnet18", "width": 64}``)."""
from __future__ import annotations

import torch
from torch import nn

from par.nets.blocks import BasicBlock
from par.nets.bodies import register_body


class LightResNet18(nn.Module):
    """The light ResNet18 of MNTDP (docs/spec.md §7): conv3×3 3→w, BN, ReLU, maxpool 3/2,
    4 stages × 2 BasicBlocks (par.nets.blocks, torchvision's), all ``width`` channels, strides 1/2/2/2,
    global average pool → (n, width).  ≈ 0.606 M parameters at width 64."""

    def __init__(self, width: int = 64, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)]
        for stride in (1, 2, 2, 2):
            down = None
            if stride != 1:
                down = nn.Sequential(nn.Conv2d(width, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))
            layers += [BasicBlock(width, width, stride, down), BasicBlock(width, width)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.out_features = width
        for m in self.modules():  # the authors' initialisation (src/models/resnet.py)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_body("light_resnet18")
def light_resnet18_body(spec: dict) -> LightResNet18:
    """``{"kind": "light_resnet18", "width": w}`` (width default 64)."""
    return LightResNet18(width=spec.get("width", 64))
