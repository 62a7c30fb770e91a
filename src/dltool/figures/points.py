"""Keypoints drawn on their images: the truth beside the model's prediction, worst first."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from dltool.figures.canvas import grid_shape, message_figure, new_figure, show_image

COLUMNS = 6
TILE = 1.5  # inches per image


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
        offset = 0.5  # imshow puts pixel centres at whole numbers; points count from the corner
        for (tx, ty), (px, py) in zip(true[shown] - offset, guess[shown] - offset):
            ax.plot([tx, px], [ty, py], color="yellow", linewidth=0.6)
        ax.scatter(*(true[shown] - offset).T, s=14, facecolors="none", edgecolors="lime", linewidths=1.0)
        ax.scatter(*(guess[shown] - offset).T, s=14, marker="x", color="red", linewidths=1.0)
    for ax in axes.flat[len(images) :]:
        ax.set_axis_off()
    figure.suptitle(f"Largest keypoint errors ({split}): truth ○, prediction ×", fontsize=10)
    return figure
