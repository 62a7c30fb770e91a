"""Figures of masks: triptychs (image, true mask, predicted mask), IoU per class, and a
split's images beside their masks."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dltool.figures.canvas import message_figure, new_figure, show_image
from dltool.figures.eval_plots import TILE, per_class_bars
from dltool.figures.palette import colours

SAMPLES_SHOWN = 8  # a split's first images beside their masks
LEGEND_LIMIT = 30  # classes named under the masks (their colours repeat beyond the palette anyway)
IGNORED_COLOUR = (255, 255, 255)  # pixels marked 255 in a true mask


def coloured(mask: np.ndarray) -> np.ndarray:
    """A mask (H, W) as a colour image (3, H, W): class colours, ignored pixels white."""
    picture = colours(256)[mask]
    picture[mask == 255] = IGNORED_COLOUR
    return picture.transpose(2, 0, 1)


def triptych_figure(
    images: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    scores: np.ndarray,
    classes: list[str],
    split: str = "test",
) -> Figure:
    """One row per image: the image, its true mask, the prediction (titled with its mIoU);
    the classes' colours below."""
    if len(images) == 0:
        return message_figure(f"No {split} images to show.")
    figure = new_figure(3 * TILE, len(images) * (TILE + 0.3) + 0.4)
    axes = figure.subplots(len(images), 3, squeeze=False)
    for row, (image, true, guess, score) in enumerate(zip(images, truth, predicted, scores, strict=True)):
        show_image(axes[row, 0], image, "image" if row == 0 else None)
        show_image(axes[row, 1], coloured(true), "truth" if row == 0 else None)
        show_image(axes[row, 2], coloured(guess), f"prediction, mIoU {score:.3f}", colour="C3")
    figure.suptitle(f"Worst segmented ({split}), worst first", fontsize=10)
    class_legend(figure, classes, columns=3)
    return figure


def mask_samples_figure(samples: Any, classes: list[str], split: str = "train") -> Figure:
    """The first images of a split of masks, each beside its mask (only those are read);
    the classes' colours below."""
    shown = samples.take(np.arange(min(len(samples), SAMPLES_SHOWN)))
    if len(shown) == 0:
        return message_figure(f"No {split} images to show.")
    figure = new_figure(2 * TILE, len(shown) * (TILE + 0.3) + 0.4)
    axes = figure.subplots(len(shown), 2, squeeze=False)
    for row, (image, mask) in enumerate(zip(shown.images, shown.labels, strict=True)):
        show_image(axes[row, 0], image, "image" if row == 0 else None)
        show_image(axes[row, 1], coloured(np.asarray(mask)), "mask" if row == 0 else None)
    figure.suptitle(f"Samples of the {split} split ({len(samples)} images)", fontsize=10)
    class_legend(figure, classes, columns=2)
    return figure


def class_legend(figure: Figure, classes: list[str], columns: int) -> None:
    """A swatch of each class's mask colour with its name (the first LEGEND_LIMIT), under the
    pictures: without it a colour says nothing of its class."""
    from matplotlib.patches import Patch

    shown = classes[:LEGEND_LIMIT]
    swatches = [
        Patch(facecolor=colour / 255, edgecolor="0.6", label=name)
        for colour, name in zip(colours(len(shown)), shown, strict=True)
    ]
    figure.legend(handles=swatches, loc="outside lower center", ncols=columns, fontsize=7, frameon=False)


def per_class_iou_figure(per_class: dict[str, dict[str, Any]], miou: float, split: str = "test") -> Figure:
    """A horizontal bar per class, first at the top (absent classes empty), the mIoU dashed."""
    ious = [per_class[name]["iou"] for name in per_class]
    labels = ["absent" if iou is None else f"{iou:.3f}" for iou in ious]
    title = f"IoU per class ({split}); dashed: mIoU {miou:.3f}"
    return per_class_bars(list(per_class), [iou or 0.0 for iou in ious], labels, miou, "IoU", title)
