"""Semantic segmentation: a class per pixel, logits (N, K, H, W) against int64 masks (N, H, W).

Pixels marked 255 in a mask are ignored by the losses and the scores. Every evaluation
accumulates a K×K confusion matrix over pixels (``dltool.tasks.pixels``): pixel accuracy,
per-class IoU and Dice, and mIoU over the classes present, in bounded memory.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dltool.tasks.pixels import IGNORE, image_miou, pixel_confusion, segmentation_scores
from dltool.tasks.task import Batches, Drawable, Figures, Forward, Scored, Task

TRIPTYCHS_SHOWN = 8  # worst images drawn by dltool visualize
# An untrained network should be unsure about every pixel: its cross-entropy near ln(classes),
# and above this multiple of it something is off.
PREFLIGHT_HIGH = 1.5


class Segmentation(Task):
    name = "segmentation"
    export_output = "logits"
    export_meaning = (
        "a logit per class for each pixel of the {height}×{width} input, classes in the order of classes:"
        " the largest is the pixel's class index; dltool predict first resizes each class's logits to the"
        " image's own size (bilinear)"
    )

    def zero_sums(self, confusion_classes: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Validation sums carry the confusion matrix (``confusion_classes`` is the class count,
        see ``SegmentationTask.class_sums``); the training epoch's (0 classes) the loss alone."""
        return super().zero_sums(confusion_classes, device) | self.zero_confusion(confusion_classes, device)

    def batch_sums(
        self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, confusion_classes: int
    ) -> dict[str, torch.Tensor]:
        return {
            "loss_sum": per_image_loss(output, labels).sum().double(),
            "confusion": pixel_confusion(output.argmax(1), labels, output.shape[1]),
        }

    def means(self, sums: dict[str, Any]) -> dict[str, float]:
        means = super().means(sums)
        if "confusion" in sums:
            scores = segmentation_scores(sums["confusion"].cpu().numpy(), [])
            means |= {"miou": scores["miou"], "pixel_accuracy": scores["pixel_accuracy"]}
        return means

    def record(self, train: dict[str, float], val: dict[str, float]) -> dict[str, float]:
        return {"val_miou": val["miou"], "val_pixel_acc": val["pixel_accuracy"]}

    def preflight(self, loss: float, classes: list[str], source: str | None = None) -> str:
        """The loss against an unsure network's cross-entropy, ln(classes) per pixel; a Dice
        term (``dice``, ``ce_dice``) adds at most 1, so only a loss above both is suspect."""
        expected = math.log(len(classes))
        line = f"initial loss {loss:.3f}; an unsure network's cross-entropy is ln({len(classes)}) = {expected:.3f} per pixel"
        if loss <= PREFLIGHT_HIGH * expected + 1:
            return f"pre-flight: {line} (a Dice term adds up to 1)"
        return f"warning: pre-flight: {line}; check the masks, the input normalisation and the output layer's init"

    @torch.inference_mode()
    def evaluate(self, forward: Forward, batches: Batches, classes: list[str], std: list[float]) -> Scored:
        """Pixel accuracy, IoU and Dice per class, mIoU, the pixel confusion matrix; ``loss``:
        the mean over images of each image's cross-entropy per pixel. ``outputs``: each
        image's own mIoU (N,), for plots of the worst."""
        confusion = np.zeros((len(classes), len(classes)), np.int64)
        loss_sum, per_image = 0.0, []
        for images, masks in batches:
            output = forward(images).float()
            loss_sum += float(per_image_loss(output, masks).sum())
            predicted = output.argmax(1)
            confusion += pixel_confusion(predicted, masks, len(classes)).cpu().numpy()
            per_image.append(image_miou(predicted, masks, len(classes)).cpu().numpy())
        scores = np.concatenate(per_image) if per_image else np.zeros(0)
        document = {"n": len(scores), "loss": loss_sum / max(1, len(scores)), **segmentation_scores(confusion, classes)}
        return Scored(document, scores)

    def output_shape(self, classes: list[str], in_shape: tuple[int, int, int]) -> list[int]:
        return [len(classes), *in_shape[1:]]

    def figures(self, scored: Drawable) -> Figures:
        """The pixel confusion matrix, IoU per class, and triptychs (image, true mask,
        prediction) of the images with the lowest mIoU of their own, worst first."""
        from dltool.figures.confusion import confusion_figure
        from dltool.figures.masks import per_class_iou_figure, triptych_figure

        document, per_image = scored.document, scored.outputs
        assert per_image is not None  # evaluate keeps each image's mIoU
        rows = worst_rows(per_image)
        shown = scored.samples.take(rows)
        predicted = scored.run(shown.images).argmax(1).numpy()
        truth = np.asarray(shown.targets)
        return [
            (
                "confusion_normalised",
                confusion_figure(document["confusion_matrix"], scored.classes, normalised=True, split=scored.split),
                "pixels: each row divided by the true class's count",
            ),
            (
                "per_class_iou",
                per_class_iou_figure(document["per_class"], document["miou"], scored.split),
                "IoU of each class; the dashed line is the mIoU",
            ),
            (
                "worst",
                triptych_figure(shown.images, truth, predicted, per_image[rows], scored.classes, scored.split),
                "the images the model segments worst (their own mIoU): image, true mask, prediction",
            ),
        ]


def worst_rows(scores: np.ndarray, limit: int = TRIPTYCHS_SHOWN) -> np.ndarray:
    """Indices of the lowest per-image scores, worst first (images with no scored pixel last)."""
    order = np.argsort(np.where(np.isnan(scores), np.inf, scores), kind="stable")
    return order[:limit]


def per_image_loss(output: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Each image's cross-entropy, averaged over its pixels that are not ignored (0 when all are)."""
    pixels = F.cross_entropy(output.float(), masks, ignore_index=IGNORE, reduction="none").flatten(1)
    counted = (masks != IGNORE).flatten(1).sum(1)
    return pixels.sum(1) / counted.clamp(min=1)
