"""U-Net (Ronneberger, Fischer and Brox, 2015), as the course builds it, for semantic segmentation.

An encoder of ``depth`` down-sampling steps (2×2 max-pool, then two 3×3 convs) that double
the width from ``width``, and a decoder that mirrors it: up-sample (bilinear, then a 1×1 conv
halving the channels; or a 2×2 transposed conv), concatenate the encoder's map of the same
level (the skip connection), two 3×3 convs. A last 1×1 conv gives one logit per class and
pixel: the output is (N, classes, H, W) for an input (N, C, H, W), any H and W — pooling
rounds up, and each up-sampled map is padded or cropped to its skip's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def double_conv(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """(3×3 conv → [BatchNorm] → ReLU) twice; the convs carry a bias only without BN."""
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Up(nn.Module):
    """Up-sample ×2 to half the channels, join the skip, two convs."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool, upsampling: str):
        super().__init__()
        half = in_channels // 2
        self.up: nn.Module
        if upsampling == "transposed":
            self.up = nn.ConvTranspose2d(in_channels, half, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(in_channels, half, 1)
            )
        self.conv = double_conv(half + out_channels, out_channels, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dh or dw:  # odd sides: pad (or crop, with negative padding) to the skip's size
            x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        return self.conv(torch.cat([skip, x], 1))


class UNet(nn.Module):
    """``encoder[0]`` at full resolution, ``encoder[k]`` after k poolings; ``decoder`` mirrors
    them; ``head`` the 1×1 conv to the class logits."""

    def __init__(
        self,
        *,
        depth: int,
        width: int,
        batch_norm: bool,
        upsampling: str,
        in_shape: tuple[int, ...],
        num_classes: int,
    ):
        super().__init__()
        widths = [width * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList([double_conv(in_shape[0], width, batch_norm)])
        self.encoder.extend(double_conv(widths[k], widths[k + 1], batch_norm) for k in range(depth))
        self.decoder = nn.ModuleList(
            Up(widths[k + 1], widths[k], batch_norm, upsampling) for k in reversed(range(depth))
        )
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.encoder):
            if level:
                x = F.max_pool2d(x, 2, ceil_mode=True)
            x = block(x)
            skips.append(x)
        for up, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            x = up(x, skip)
        return self.head(x)
