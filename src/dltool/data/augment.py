"""Batched augmentation of uint8 image batches on the training device: no per-sample Python.

- Random crop with zero padding: the batch is padded once, and every possible crop window
  of it is a strided view (window k starts at flat element k); each sample's crop is one
  row of that view, picked with a single ``index_select``.
- Horizontal flip: the chosen samples are mirrored in one ``index_copy_``. A crop at column
  offset x of a mirrored image is the mirror of the crop at 2·padding − x, so flipping
  first and mirroring the offset gives exactly "crop, then flip".
- Cutout: one multiply by a per-sample mask that is 0 on a square.

Everything happens before normalisation, on uint8 pixels: the padding and the cutout
square are black (0), as with torchvision's ``RandomCrop(padding=p)`` on PIL images.
(These formulations were chosen by measurement: on CPU, ``torch.where`` and ``masked_fill``
with broadcast masks, and 4-D ``flip``, are several times slower.)

The random numbers of a batch come from a ``torch.Generator`` seeded from (seed, epoch,
batch index) alone, never from the global RNG: a run resumed in the middle of an epoch
augments every batch exactly as an uninterrupted run does, and the choices are the same
on every device (they are drawn on the CPU, then queued to the device without a sync).
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
        flips = (torch.rand(n, generator=generator) < 0.5) & self.config.flip
        centres = torch.stack(
            [torch.randint(0, height, (n,), generator=generator), torch.randint(0, width, (n,), generator=generator)], 1
        )
        device = images.device
        if pad > 0 or self.config.flip:
            flipped = flips.nonzero().squeeze(1)  # on the CPU: no device sync
            images = crop_and_flip(images, to_device(offsets, device), to_device(flipped, device), pad)
        if side > 0:
            images = cutout(images, to_device(centres, device), side)
        return images

    def generator(self, epoch: int, batch: int) -> torch.Generator:
        seed = int(np.random.SeedSequence([self.seed, epoch, batch, _STREAM]).generate_state(1)[0])
        return torch.Generator().manual_seed(seed)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor copied to ``device`` without waiting for it: a plain copy from pageable
    memory to a GPU first waits for every queued kernel, which would stall the CPU once per
    batch; a pinned copy is queued behind them instead."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.contiguous().pin_memory().to(device, non_blocking=True)


def crop_and_flip(images: torch.Tensor, offsets: torch.Tensor, flipped: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image zero-padded by ``padding``, cropped back to its size at (row, column)
    ``offsets`` (B, 2) in [0, 2·padding], then mirrored left-right if its index is in
    ``flipped`` (a 1-D tensor of sample indices)."""
    n, channels, height, width = images.shape
    columns = offsets[:, 1]
    if len(flipped):
        mirrored = images.index_select(0, flipped)
        # A 2-D fliplr is much faster than a 4-D flip on CPU.
        mirrored = mirrored.view(-1, width).fliplr().view(mirrored.shape)
        images = images.clone().index_copy_(0, flipped, mirrored)
        columns = torch.where(_mask(flipped, n), 2 * padding - columns, columns)
    if padding == 0:
        return images
    padded = F.pad(images, (padding,) * 4).contiguous()
    padded_height, padded_width = height + 2 * padding, width + 2 * padding
    windows = padded.as_strided(
        (padded.numel() - (height - 1) * padded_width - width + 1, height, width), (1, padded_width, 1)
    )
    plane = padded_height * padded_width
    first = (offsets[:, 0] * padded_width + columns)[:, None]  # (B, 1) within a plane
    starts = (torch.arange(n * channels, device=images.device).view(n, channels) * plane + first).view(-1)
    return windows.index_select(0, starts).view(n, channels, height, width)


def _mask(indices: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.bool, device=indices.device).index_fill_(0, indices, True)


def cutout(images: torch.Tensor, centres: torch.Tensor, side: int) -> torch.Tensor:
    """Zero a ``side``-wide square per image, centred at (row, column) ``centres`` (B, 2)
    (its top-left corner at centre − side//2), clipped at the image borders."""
    _, _, height, width = images.shape
    top = (centres[:, 0] - side // 2)[:, None]
    left = (centres[:, 1] - side // 2)[:, None]
    rows = torch.arange(height, device=images.device)[None, :]
    columns = torch.arange(width, device=images.device)[None, :]
    outside_rows = (rows < top) | (rows >= top + side)  # (B, H)
    outside_columns = (columns < left) | (columns >= left + side)  # (B, W)
    keep = (outside_rows[:, :, None] | outside_columns[:, None, :]).to(images.dtype)
    return images * keep[:, None]  # a multiply: faster than masked_fill with a broadcast mask
