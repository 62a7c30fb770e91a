"""MixUp and CutMix of a normalised batch, with soft targets (timm's ``Mixup``, batch mode).

Each image is mixed with its neighbour in the batch (the batch rolled by one), with one
weight λ ~ Beta(α, α) for the whole batch; with both on, each batch is one or the other
(even odds). CutMix pastes a box of about 1 − λ of the area and then sets λ to the share
actually kept, so the targets always match the pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def cutmix_box(lam: float, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box with sides √(1 − λ) of the image's, centred at a
    uniform pixel and clipped at the borders."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


def mix_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    alphas: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mixed images, float targets (B, K) summing to 1) for ``alphas`` = (mixup, cutmix)."""
    mixup, cutmix = alphas
    use_cutmix = cutmix > 0 and (mixup == 0 or rng.random() < 0.5)
    lam = float(rng.beta(cutmix, cutmix) if use_cutmix else rng.beta(mixup, mixup))
    partner = images.roll(1, 0)
    if use_cutmix:
        height, width = images.shape[-2:]
        top, bottom, left, right = cutmix_box(lam, height, width, rng)
        images = images.clone()
        images[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    else:
        images = images * lam + partner * (1.0 - lam)
    one_hot = F.one_hot(labels, num_classes).to(images.dtype)
    return images, one_hot * lam + one_hot.roll(1, 0) * (1.0 - lam)
