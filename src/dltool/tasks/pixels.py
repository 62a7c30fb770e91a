"""Scores of per-pixel class predictions, from a confusion matrix over pixels.

The matrix is accumulated batch by batch (``pixel_confusion``: a bincount of the valid
pixels, on the batch's device): memory is K×K whatever the split's size, and shards
evaluated on several ranks add up exactly. Pixels marked ``IGNORE`` in the truth count
nowhere.

A class with no pixel in the truth and none predicted has no IoU or Dice (null): mIoU and
mean Dice average over the other classes — what torchmetrics' macro ``JaccardIndex`` does
(a class with a zero union gets weight 0), and what ``absent_classes`` in the document says.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

IGNORE = 255


def pixel_confusion(predicted: torch.Tensor, target: torch.Tensor, classes: int) -> torch.Tensor:
    """(K, K) int64 counts of (true, predicted) over the pixels of ``target`` (N, H, W) that
    are not ``IGNORE``; ``predicted`` (N, H, W) class indices."""
    valid = target != IGNORE
    pairs = target[valid] * classes + predicted[valid]
    return torch.bincount(pairs, minlength=classes * classes).view(classes, classes)


def segmentation_scores(confusion: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Pixel accuracy, per-class IoU and Dice (null for an absent class), their means over the
    classes present, and the confusion matrix (rows true, columns predicted)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    hits = np.diag(confusion).astype(np.float64)
    truth, predicted = confusion.sum(1), confusion.sum(0)
    union = truth + predicted - hits
    present = union > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(present, hits / union, np.nan)
        dice = np.where(present, 2 * hits / (truth + predicted), np.nan)
    pixels = int(confusion.sum())
    return {
        "pixels": pixels,
        "pixel_accuracy": float(hits.sum() / pixels) if pixels else math.nan,
        "miou": float(iou[present].mean()) if present.any() else math.nan,
        "mean_dice": float(dice[present].mean()) if present.any() else math.nan,
        "absent_classes": [name for name, seen in zip(classes, present) if not seen],
        "per_class": {
            name: {"iou": _number(i), "dice": _number(d), "pixels": int(t), "predicted": int(p)}
            for name, i, d, t, p in zip(classes, iou, dice, truth, predicted)
        },
        "confusion_matrix": confusion.tolist(),
    }


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def image_miou(predicted: torch.Tensor, target: torch.Tensor, classes: int) -> torch.Tensor:
    """Each image's mIoU (N,) float64, over the classes in its truth or its prediction (NaN
    when every pixel is ignored): what ``visualize`` ranks images by, worst first."""
    n = len(target)
    valid = (target != IGNORE).flatten(1)
    image = torch.arange(n, device=target.device)[:, None].expand_as(valid)
    pairs = (image * classes + target.flatten(1)) * classes + predicted.flatten(1)
    counts = torch.bincount(pairs[valid], minlength=n * classes * classes).view(n, classes, classes).double()
    hits = counts.diagonal(dim1=1, dim2=2)
    union = counts.sum(2) + counts.sum(1) - hits
    present = union > 0
    iou = torch.where(present, hits / union.clamp(min=1), 0.0)
    return iou.sum(1) / present.sum(1)  # 0 / 0 = NaN: no pixel scored
