"""The CIFAR ResNets of He et al. 2016 (§4.2): depth 6n+2, 3 stages of n basic blocks.

With option A shortcuts and width 1 the parameter counts are the paper's: depth 20 → 0.27M,
32 → 0.46M, 44 → 0.66M, 56 → 0.85M, 110 → 1.7M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dltool.models.layers import activation_layer

STAGE_WIDTHS = (16, 32, 64)


class PadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the new channels; no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        extra = out_channels - in_channels
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))


class BasicBlock(nn.Module):
    """conv3×3-BN-activation → conv3×3-BN, plus the shortcut, then the activation."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str, activation: str):
        super().__init__()
        self.act = activation_layer(activation)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = (
                PadShortcut(in_channels, out_channels, stride)
                if shortcut == "A"
                else nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv3×3 → 3 stages (strides 1, 2, 2) of (depth-2)/6 blocks → GAP → linear."""

    dltool_head = "head"

    def __init__(
        self,
        *,
        depth: int,
        width_multiplier: float,
        shortcut: str,
        activation: str,
        in_shape: tuple[int, ...],
        num_classes: int,
    ):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"resnet depth must be 6n+2 with n ≥ 1, got {depth}")
        blocks = (depth - 2) // 6
        widths = [max(1, round(w * width_multiplier)) for w in STAGE_WIDTHS]
        self.stem = nn.Sequential(
            nn.Conv2d(in_shape[0], widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            activation_layer(activation),
        )
        stages: list[nn.Module] = []
        channels = widths[0]
        for index, width in enumerate(widths):
            layers = []
            for block in range(blocks):
                stride = 2 if index > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, width, stride, shortcut, activation))
                channels = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
