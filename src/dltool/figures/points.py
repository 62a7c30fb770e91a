"""Keypoints drawn on their images: a split's samples, and the truth beside the model's
prediction, worst first."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dltool.figures.canvas import grid_shape, message_figure, new_figure, show_image

COLUMNS = 6
TILE = 1.5  # inches per image
SAMPLES_SHOWN = 12  # a split's first images with their points
OFFSET = 0.5  # imshow puts pixel centres at whole numbers; points count from the corner


def worst_points_figure(
    images: list[np.ndarray], truth: np.ndarray, predicted: np.ndarray, errors: np.ndarray, split: str = "test"
) -> Figure:
    """uint8 (C, H, W) ``images`` with their points, (N, K, 2) in pixels of the image: the
    truth as green circles, the prediction as red crosses joined to it; ``errors`` (N,) the
    mean distance in pixels of the stored image, in the titles. Drawn in the order given."""
    if not images:
        return message_figure(f"No {split} image has a point to score: nothing to show.")
    rows, columns = grid_shape(len(images), COLUMNS)
    figure = new_figure(max(columns, 3) * TILE, rows * (TILE + 0.3) + 0.4)  # 3 tiles: room for the title
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, image, true, guess, error in zip(axes.flat, images, truth, predicted, errors):
        show_image(ax, image, f"error {error:.1f} px", colour="C3")
        shown = ~np.isnan(true).any(1)
        for (tx, ty), (px, py) in zip(true[shown] - OFFSET, guess[shown] - OFFSET):
            ax.plot([tx, px], [ty, py], color="yellow", linewidth=0.6)
        circles(ax, true[shown])
        ax.scatter(*(guess[shown] - OFFSET).T, s=14, marker="x", color="red", linewidths=1.0)
    for ax in axes.flat[len(images) :]:
        ax.set_axis_off()
    figure.suptitle(f"Largest keypoint errors ({split}): truth ○, prediction ×", fontsize=10)
    return figure


def points_samples_figure(samples: Any, points: int, split: str = "train") -> Figure:
    """The first images of a keypoint split with their ``points`` points (labels (N, K + 2, 2),
    in fractions of the image: see ``dltool.data.table_decode``); only those images are read."""
    shown = samples.take(np.arange(min(len(samples), SAMPLES_SHOWN)))
    if len(shown) == 0:
        return message_figure(f"No {split} images to show.")
    rows, columns = grid_shape(len(shown), COLUMNS)
    figure = new_figure(max(columns, 3) * TILE, rows * (TILE + 0.3) + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, image, labels in zip(axes.flat, shown.images, np.asarray(shown.labels)):
        show_image(ax, image)
        circles(ax, labels[:points] * np.array(image.shape[:0:-1]))
    for ax in axes.flat[len(shown) :]:
        ax.set_axis_off()
    figure.suptitle(f"Samples of the {split} split ({len(samples)} images) and their points", fontsize=10)
    return figure


def circles(ax: Any, points: np.ndarray) -> None:
    """Points (K, 2) in pixels as green circles; missing ones (NaN) left out."""
    present = points[~np.isnan(points).any(1)] - OFFSET
    ax.scatter(*present.T, s=14, facecolors="none", edgecolors="lime", linewidths=1.0)
