"""The network of airbench94 (Jordan 2024, after hlb-CIFAR10 and Page 2018), the fastest
known way to 94% on CIFAR-10: a whitening stem and three conv-pool-BN blocks, no residuals.

- Stem: a 2×2 convolution with 2·C·4 filters and a bias, then GELU. ``init_from_data``
  fits it to training patches: the eigenvectors of their covariance, scaled by
  1/√(eigenvalue + ε), and their negations; it is then frozen. Unfitted (``whiten: false``)
  it is a plain trainable conv.
- Per width: conv3×3 → 2×2 max-pool → BN → GELU → conv3×3 → BN → GELU. The convs start as
  identity maps where their shapes allow (``dirac_``, as airbench does).
- BatchNorm learns a shift but no scale (the convs before it are scale-invariant), with
  fast-moving running statistics (torch momentum 0.4: airbench's 0.6 in its convention).
- Head: a global max-pool, a bias-free linear layer, logits multiplied by ``logit_scale``.

Where this differs from airbench94: any input size (a block pools only while its map is at
least 2 pixels on a side, and the global max-pool is airbench's 3×3 pool on 32×32 inputs),
and the stem's bias trains throughout (airbench freezes it after 3 epochs).
"""

from __future__ import annotations

import torch
from torch import nn

STEM_KERNEL = 2
WHITENING_EPS = 5e-4  # airbench's: keeps near-zero-variance directions from blowing up


def batch_norm(channels: int) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=0.4)
    norm.weight.requires_grad_(False)  # stays 1: no learned scale
    return norm


def identity_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:in_channels])
    return conv


class Block(nn.Module):
    """conv → max-pool (while the map is ≥ 2 px) → BN → GELU → conv → BN → GELU."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool):
        super().__init__()
        self.conv1 = identity_conv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.norm1 = batch_norm(out_channels)
        self.conv2 = identity_conv(out_channels, out_channels)
        self.norm2 = batch_norm(out_channels)
        self.activation = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation(self.norm1(self.pool(self.conv1(x))))
        return self.activation(self.norm2(self.conv2(x)))


class Airbench(nn.Module):
    dltool_head = "head"

    def __init__(
        self,
        *,
        widths: list[int],
        logit_scale: float,
        whiten: bool,
        in_shape: tuple[int, ...],
        num_classes: int,
    ):
        super().__init__()
        channels, height, width = in_shape
        self.whiten = whiten
        self.stem = nn.Conv2d(channels, 2 * channels * STEM_KERNEL**2, STEM_KERNEL)
        side = min(height, width) - STEM_KERNEL + 1
        blocks: list[nn.Module] = []
        channels = self.stem.out_channels
        for block_width in widths:
            blocks.append(Block(channels, block_width, pool=side >= 2))
            channels, side = block_width, side // 2 if side >= 2 else side
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes, bias=False))
        self.logit_scale = logit_scale
        self.activation = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.activation(self.stem(x)))) * self.logit_scale

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Fit the stem to ``images`` (normalised training images, N×C×H×W) and freeze its
        weights; nothing when ``whiten`` is off."""
        if not self.whiten:
            return
        channels, k = self.stem.in_channels, STEM_KERNEL
        # Every k×k patch as a row, flattened in the weights' (channel, row, column) order.
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * k * k)
        covariance = patches.T @ patches / max(1, len(patches))
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending: largest first after flip
        scale = (eigenvalues.flip(0).clamp_min(0) + WHITENING_EPS).rsqrt()
        basis = (eigenvectors.T.flip(0) * scale[:, None]).reshape(-1, channels, k, k)
        self.stem.weight.copy_(torch.cat([basis, -basis]))
        self.stem.weight.requires_grad_(False)
