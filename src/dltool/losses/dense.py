"""Losses of dense (per-pixel) class targets: soft Dice, and cross-entropy plus Dice.

``output`` is logits (N, K, H, W), ``target`` int64 class indices (N, H, W) with ``IGNORE``
(255) on pixels that count for nothing. Computed in float32 under autocast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dltool.losses.functions import Loss
from dltool.tasks.pixels import IGNORE


def soft_dice(output: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 − the mean over classes of (2·Σ p·g + s) / (Σ p + Σ g + s), sums over the batch's
    pixels that are not ignored (Milletari et al. 2016's soft Dice on the softmax, with
    additive smoothing ``s``: a class absent from both target and prediction scores 1)."""
    probs = output.float().softmax(1)
    valid = target != IGNORE
    onehot = F.one_hot(torch.where(valid, target, 0), probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    keep = valid[:, None].to(probs.dtype)
    probs, onehot = probs * keep, onehot * keep
    dims = (0, 2, 3)
    overlap = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * overlap + smooth) / (total + smooth)).mean()


def dense_cross_entropy(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy per pixel, averaged over the pixels that are not ignored."""
    return F.cross_entropy(output.float(), target, weight=weight, ignore_index=IGNORE)


class Dice(Loss):
    """``soft_dice`` of the logits against the masks."""

    name = "dice"

    def __init__(
        self, *, smooth: float, task: str, num_classes: int | None = None, class_counts: Sequence[int] | None = None
    ):
        super().__init__(task)
        self.smooth = smooth

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_dice(output, target, self.smooth)


class CrossEntropyDice(Loss):
    """Cross-entropy per pixel plus ``dice_weight`` × ``soft_dice``."""

    name = "ce_dice"

    def __init__(
        self,
        *,
        dice_weight: float,
        smooth: float,
        task: str,
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
    ):
        super().__init__(task)
        self.dice_weight, self.smooth = dice_weight, smooth

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dense_cross_entropy(output, target) + self.dice_weight * soft_dice(output, target, self.smooth)
