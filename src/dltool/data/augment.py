"""Batched augmentation of uint8 image batches on the training device: no per-sample Python.

Random crop with zero padding and horizontal flip are one ``gather`` over the padded batch
(each sample's row and column indices are its offset plus, for flipped samples, reversed
columns); cutout is one ``masked_fill`` with per-sample squares. Everything happens before
normalisation, on uint8 pixels: the padding and the cutout square are black (0), as with
torchvision's ``RandomCrop(padding=p)`` on PIL images.

The random numbers of a batch come from a ``torch.Generator`` seeded from (seed, epoch,
batch index) alone, never from the global RNG: a run resumed in the middle of an epoch
augments every batch exactly as an uninterrupted run does, and the choices are the same
on every device (they are drawn on the CPU).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dltool.config.schema import AugmentConfig

# Keeps the augmentation stream apart from the shuffle's (seed, epoch) stream.
_STREAM = 0x417567


class BatchAugment:
    """``augment(images, epoch, batch)``: a uint8 batch (B, C, H, W) augmented per ``config``."""

    def __init__(self, config: AugmentConfig, seed: int):
        self.config = config
        self.seed = seed

    @property
    def enabled(self) -> bool:
        c = self.config
        return c.crop_padding > 0 or c.flip or c.cutout > 0

    def __call__(self, images: torch.Tensor, epoch: int, batch: int) -> torch.Tensor:
        if not self.enabled or len(images) == 0:
            return images
        n, _, height, width = images.shape
        generator = self.generator(epoch, batch)
        pad, side = self.config.crop_padding, self.config.cutout
        # All draws in a fixed order, whatever is enabled, so turning one op on or off
        # does not change the others' choices.
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        centres = torch.stack([torch.randint(0, height, (n,), generator=generator),
                               torch.randint(0, width, (n,), generator=generator)], 1)
        draws = torch.cat([offsets, flips[:, None].long() * int(self.config.flip), centres], 1).to(images.device)
        if pad > 0 or self.config.flip:
            images = crop_and_flip(images, draws[:, :2], draws[:, 2].bool(), pad)
        if side > 0:
            images = cutout(images, draws[:, 3:5], side)
        return images

    def generator(self, epoch: int, batch: int) -> torch.Generator:
        seed = int(np.random.SeedSequence([self.seed, epoch, batch, _STREAM]).generate_state(1)[0])
        return torch.Generator().manual_seed(seed)


def crop_and_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image zero-padded by ``padding`` then cropped back to its size at (row, column)
    ``offsets`` (B, 2) in [0, 2·padding], and mirrored left-right where ``flips`` (B,)."""
    n, channels, height, width = images.shape
    padded = F.pad(images, (padding,) * 4) if padding else images
    padded_width = width + 2 * padding
    columns = torch.arange(width, device=images.device)
    columns = torch.where(flips[:, None], columns.flip(0), columns) + offsets[:, 1:2]  # (B, W)
    rows = torch.arange(height, device=images.device) + offsets[:, 0:1]  # (B, H)
    flat = (rows[:, :, None] * padded_width + columns[:, None, :]).view(n, 1, height * width)
    out = padded.reshape(n, channels, -1).gather(2, flat.expand(n, channels, height * width))
    return out.view(n, channels, height, width)


def cutout(images: torch.Tensor, centres: torch.Tensor, side: int) -> torch.Tensor:
    """Zero a ``side``-wide square per image, centred at (row, column) ``centres`` (B, 2)
    (its top-left corner at centre − side//2), clipped at the image borders."""
    _, _, height, width = images.shape
    top = (centres[:, 0] - side // 2)[:, None]
    left = (centres[:, 1] - side // 2)[:, None]
    rows = torch.arange(height, device=images.device)[None, :]
    columns = torch.arange(width, device=images.device)[None, :]
    in_rows = (rows >= top) & (rows < top + side)  # (B, H)
    in_columns = (columns >= left) & (columns < left + side)  # (B, W)
    mask = in_rows[:, None, :, None] & in_columns[:, None, None, :]
    return images.masked_fill(mask, 0)
