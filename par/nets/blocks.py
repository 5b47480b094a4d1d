"""ResNet's basic block, the building block of the light ResNet18 (docs/spec.md §7) and of
the growing networks' stages (par.nets.growing_bodies).

The same module as ``torchvision.models.resnet.BasicBlock`` (groups 1, dilation 1,
BatchNorm): the same submodules, created in the same order (so the same seed draws
the same weights), the same state_dict keys and the same forward pass;
tests/test_startup.py checks all three against torchvision's.  It is written out
here because importing anything from torchvision runs ``torchvision/__init__``,
which imports its detection ops and with them ``torch._dynamo`` and sympy: about
as long as ``import torch`` itself, paid by every learn job (issue 28), which never
uses them.
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv3×3(stride) → BN → ReLU → conv3×3 → BN, plus the identity (or ``downsample(x)``
    where the shape changes), then ReLU: (n, inplanes, H, W) → (n, planes, H/stride, W/stride).
    Convolutions without bias, as torchvision's."""

    expansion: int = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)
